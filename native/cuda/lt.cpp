// int8 A @ B^T through cuBLASLt's IMMA kernels, loaded with dlopen at first use so
// that the addon loads (and everything else works) where libcublasLt is absent; and the
// f32/f16/bf16 GEMM of gemv4bit's large-M path (ltGemm, f32 compute, no TF32).
// Layout as bitsandbytes' igemmlt: column-major C[n, m] = op(B)[n, k] * A^T[k, m]
// with TRANSA = T, i.e. row-major out[m, n] = A[m, k] B[n, k]^T, int32 accumulation.
// Shapes IMMA does not take (k % 4 != 0, or no algorithm) use the exact integer
// kernel of int8.cu.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include "errors.h"
#include "kernels.h"

#if __has_include(<cublasLt.h>)
#include <cublasLt.h>
#define BNB_HAVE_CUBLASLT_H 1
#endif

namespace bnb {

namespace lt {

// The few cuBLASLt declarations we use (stable C ABI); checked against the header
// when the build machine has it.
typedef int status_t;
typedef void* handle_t;
typedef void* desc_t;
typedef void* layout_t;
typedef void* pref_t;
struct algo_t {
  uint64_t data[8];
};
struct heuristic_t {
  algo_t algo;
  size_t workspaceSize;
  status_t state;
  float wavesCount;
  int reserved[4];
};
enum : int { STATUS_SUCCESS = 0, STATUS_NOT_SUPPORTED = 15 };
enum : int { COMPUTE_32I = 72, COMPUTE_32F = 68 };
enum : int { R_8I = 3, R_32I = 10, R_32F = 0, R_16F = 2, R_16BF = 14 };
enum : int { DESC_TRANSA = 3, DESC_TRANSB = 4 };
enum : int { OP_N = 0, OP_T = 1 };
enum : int { PREF_MAX_WORKSPACE_BYTES = 1, PREF_MIN_ALIGNMENT_A = 5, PREF_MIN_ALIGNMENT_B = 6, PREF_MIN_ALIGNMENT_C = 7,
             PREF_MIN_ALIGNMENT_D = 8 };

#ifdef BNB_HAVE_CUBLASLT_H
static_assert(CUBLAS_STATUS_SUCCESS == STATUS_SUCCESS && CUBLAS_STATUS_NOT_SUPPORTED == STATUS_NOT_SUPPORTED, "cublasStatus_t");
static_assert(CUBLAS_COMPUTE_32I == COMPUTE_32I && CUBLAS_COMPUTE_32F == COMPUTE_32F, "cublasComputeType_t");
static_assert(CUDA_R_8I == R_8I && CUDA_R_32I == R_32I, "cudaDataType");
static_assert(CUDA_R_32F == R_32F && CUDA_R_16F == R_16F && CUDA_R_16BF == R_16BF, "cudaDataType");
static_assert(CUBLASLT_MATMUL_DESC_TRANSA == DESC_TRANSA && CUBLASLT_MATMUL_DESC_TRANSB == DESC_TRANSB, "desc attributes");
static_assert(CUBLAS_OP_N == OP_N && CUBLAS_OP_T == OP_T, "cublasOperation_t");
static_assert(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES == PREF_MAX_WORKSPACE_BYTES, "pref attributes");
static_assert(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES == PREF_MIN_ALIGNMENT_A &&
                  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES == PREF_MIN_ALIGNMENT_B &&
                  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES == PREF_MIN_ALIGNMENT_C &&
                  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES == PREF_MIN_ALIGNMENT_D,
              "pref alignment attributes");
static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(algo_t), "cublasLtMatmulAlgo_t");
static_assert(sizeof(cublasLtMatmulHeuristicResult_t) == sizeof(heuristic_t), "cublasLtMatmulHeuristicResult_t");
#endif

struct Api {
  status_t (*Create)(handle_t*);
  status_t (*MatmulDescCreate)(desc_t*, int, int);
  status_t (*MatmulDescDestroy)(desc_t);
  status_t (*MatmulDescSetAttribute)(desc_t, int, const void*, size_t);
  status_t (*MatrixLayoutCreate)(layout_t*, int, uint64_t, uint64_t, int64_t);
  status_t (*MatrixLayoutDestroy)(layout_t);
  status_t (*MatmulPreferenceCreate)(pref_t*);
  status_t (*MatmulPreferenceDestroy)(pref_t);
  status_t (*MatmulPreferenceSetAttribute)(pref_t, int, const void*, size_t);
  status_t (*MatmulAlgoGetHeuristic)(handle_t, desc_t, layout_t, layout_t, layout_t, layout_t, pref_t, int, heuristic_t*, int*);
  status_t (*Matmul)(handle_t, desc_t, const void*, const void*, layout_t, const void*, layout_t, const void*, const void*, layout_t,
                     void*, layout_t, const algo_t*, void*, size_t, cudaStream_t);
  const char* (*GetStatusName)(status_t);
  const char* (*GetStatusString)(status_t);
};

std::mutex mu;
Api api;
bool loaded = false;
std::string loadError;

const Api& load() {
  std::lock_guard<std::mutex> lock(mu);
  if (loaded) return api;
  if (!loadError.empty()) throw Error(loadError);
  std::string tried;
  void* h = nullptr;
  const char* env = getenv("BNBJS_CUBLASLT");
  const char* names[] = {env, "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
                         "/usr/local/cuda/lib64/libcublasLt.so.13", "/usr/local/cuda/lib64/libcublasLt.so.12",
                         "/usr/local/cuda/lib64/libcublasLt.so"};
  for (const char* name : names) {
    if (name == nullptr || !*name) continue;
    h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h) break;
    const char* e = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + (e ? e : name);
  }
  if (!h) {
    loadError = "CUDA error cublasLtNotFound: libcublasLt could not be loaded (" + tried +
                "); install the CUDA toolkit's cuBLAS or set BNBJS_CUBLASLT to its path in int8LinearMatmul";
    throw Error(loadError);
  }
  auto sym = [&](const char* name) {
    void* p = dlsym(h, name);
    if (!p) {
      loadError = std::string("CUDA error cublasLtSymbolMissing: ") + name + " not found in libcublasLt in int8LinearMatmul";
      throw Error(loadError);
    }
    return p;
  };
#define LT_SYM(field, name) api.field = reinterpret_cast<decltype(api.field)>(sym(name))
  LT_SYM(Create, "cublasLtCreate");
  LT_SYM(MatmulDescCreate, "cublasLtMatmulDescCreate");
  LT_SYM(MatmulDescDestroy, "cublasLtMatmulDescDestroy");
  LT_SYM(MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
  LT_SYM(MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
  LT_SYM(MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
  LT_SYM(MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
  LT_SYM(MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
  LT_SYM(MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
  LT_SYM(MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
  LT_SYM(Matmul, "cublasLtMatmul");
  LT_SYM(GetStatusName, "cublasLtGetStatusName");
  LT_SYM(GetStatusString, "cublasLtGetStatusString");
#undef LT_SYM
  loaded = true;
  return api;
}

[[noreturn]] void fail(const Api& a, status_t s, const char* call) {
  throw Error(std::string("CUDA error ") + a.GetStatusName(s) + ": " + a.GetStatusString(s) + " in " + call);
}

#define LT_CHECK(call)                          \
  do {                                          \
    status_t lt_s_ = (a.call);                  \
    if (lt_s_ != STATUS_SUCCESS) fail(a, lt_s_, #call); \
  } while (0)

struct DeviceState {
  handle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspaceSize = 0;
  std::map<std::tuple<long long, long long, long long, uint32_t>, std::pair<bool, algo_t>> algos;
  // ltGemm's: also keyed by the input and output types
  std::map<std::tuple<long long, long long, long long, uint32_t, int, int>, std::pair<bool, algo_t>> falgos;
};
std::map<int, DeviceState> devices;

constexpr size_t kWorkspace = 32u << 20;

uint32_t align_of(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v & (a - 1)) != 0) a >>= 1;
  return a;
}

// RAII for the per-call descriptors
struct Descs {
  const Api& a;
  desc_t op = nullptr;
  layout_t la = nullptr, lb = nullptr, lc = nullptr;
  pref_t pref = nullptr;
  explicit Descs(const Api& api) : a(api) {}
  ~Descs() {
    if (pref) a.MatmulPreferenceDestroy(pref);
    if (lc) a.MatrixLayoutDestroy(lc);
    if (lb) a.MatrixLayoutDestroy(lb);
    if (la) a.MatrixLayoutDestroy(la);
    if (op) a.MatmulDescDestroy(op);
  }
};

// This device's handle and workspace, made on first use.
DeviceState& state(const Api& a) {
  int dev = 0;
  BNB_CHECK(cudaGetDevice(&dev));
  DeviceState* st;
  {
    std::lock_guard<std::mutex> lock(mu);
    st = &devices[dev];
  }
  if (!st->handle) LT_CHECK(Create(&st->handle));
  if (!st->workspace) {
    BNB_CHECK(cudaMalloc(&st->workspace, kWorkspace));
    st->workspaceSize = kWorkspace;
  }
  return *st;
}

// The algorithm cuBLASLt's heuristic gives for d's descriptors and these alignments of A, B and
// C/D, cached under `key` (first: whether it has one).
template <class Cache, class Key>
const std::pair<bool, algo_t>& cachedAlgo(const Api& a, DeviceState& st, Descs& d, Cache& cache, const Key& key,
                                          uint32_t alA, uint32_t alB, uint32_t alC) {
  auto it = cache.find(key);
  if (it == cache.end()) {
    LT_CHECK(MatmulPreferenceCreate(&d.pref));
    const uint64_t ws = st.workspaceSize;
    LT_CHECK(MatmulPreferenceSetAttribute(d.pref, PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    LT_CHECK(MatmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_A, &alA, sizeof(alA)));
    LT_CHECK(MatmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_B, &alB, sizeof(alB)));
    LT_CHECK(MatmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_C, &alC, sizeof(alC)));
    LT_CHECK(MatmulPreferenceSetAttribute(d.pref, PREF_MIN_ALIGNMENT_D, &alC, sizeof(alC)));
    heuristic_t res[1];
    int count = 0;
    const status_t s = a.MatmulAlgoGetHeuristic(st.handle, d.op, d.la, d.lb, d.lc, d.lc, d.pref, 1, res, &count);
    if (s != STATUS_SUCCESS && s != STATUS_NOT_SUPPORTED) fail(a, s, "cublasLtMatmulAlgoGetHeuristic");
    const bool ok = s == STATUS_SUCCESS && count > 0 && res[0].state == STATUS_SUCCESS;
    it = cache.emplace(key, std::make_pair(ok, ok ? res[0].algo : algo_t{})).first;
  }
  return it->second;
}

// true when cuBLASLt computed it; false when it has no algorithm for this case
bool matmul(const void* A, long long m, long long k, const void* B, long long n, void* out) {
  const Api& a = load();
  DeviceState* st = &state(a);
  Descs d(a);
  LT_CHECK(MatmulDescCreate(&d.op, COMPUTE_32I, R_32I));
  const int32_t opT = OP_T, opN = OP_N;
  LT_CHECK(MatmulDescSetAttribute(d.op, DESC_TRANSA, &opT, sizeof(opT)));
  LT_CHECK(MatmulDescSetAttribute(d.op, DESC_TRANSB, &opN, sizeof(opN)));
  // column-major: "A" = B as [k, n] (ld k), transposed; "B" = A as [k, m] (ld k); C = [n, m] (ld n)
  LT_CHECK(MatrixLayoutCreate(&d.la, R_8I, (uint64_t)k, (uint64_t)n, (int64_t)k));
  LT_CHECK(MatrixLayoutCreate(&d.lb, R_8I, (uint64_t)k, (uint64_t)m, (int64_t)k));
  LT_CHECK(MatrixLayoutCreate(&d.lc, R_32I, (uint64_t)n, (uint64_t)m, (int64_t)n));
  const uint32_t alA = align_of(B), alB = align_of(A), alC = align_of(out);
  const uint32_t alignKey = alA | (alB << 9) | (alC << 18);
  const auto key = std::make_tuple(m, n, k, alignKey);
  const std::pair<bool, algo_t>& algo = cachedAlgo(a, *st, d, st->algos, key, alA, alB, alC);
  if (!algo.first) return false;
  const int32_t alpha = 1, beta = 0;
  const status_t s = a.Matmul(st->handle, d.op, &alpha, B, d.la, A, d.lb, &beta, out, d.lc, out, d.lc, &algo.second,
                              st->workspace, st->workspaceSize, (cudaStream_t)0);
  if (s == STATUS_NOT_SUPPORTED) return false;
  if (s != STATUS_SUCCESS) fail(a, s, "cublasLtMatmul");
  return true;
}


int dataType(int dt) { return dt == DT_F32 ? R_32F : dt == DT_F16 ? R_16F : R_16BF; }

// The layout of matmul() with f32 compute: column-major C[n, m] = W^T... i.e. row-major
// out[m, n] = A[m, k] W[n, k]^T; A and W of type abType, out of type dType.
bool gemm(const void* A, const void* W, int abType, long long m, long long k, long long n, void* out, int dType) {
  const Api& a = load();
  DeviceState& st = state(a);
  Descs d(a);
  LT_CHECK(MatmulDescCreate(&d.op, COMPUTE_32F, R_32F));
  const int32_t opT = OP_T, opN = OP_N;
  LT_CHECK(MatmulDescSetAttribute(d.op, DESC_TRANSA, &opT, sizeof(opT)));
  LT_CHECK(MatmulDescSetAttribute(d.op, DESC_TRANSB, &opN, sizeof(opN)));
  const int ab = dataType(abType), dt = dataType(dType);
  LT_CHECK(MatrixLayoutCreate(&d.la, ab, (uint64_t)k, (uint64_t)n, (int64_t)k));
  LT_CHECK(MatrixLayoutCreate(&d.lb, ab, (uint64_t)k, (uint64_t)m, (int64_t)k));
  LT_CHECK(MatrixLayoutCreate(&d.lc, dt, (uint64_t)n, (uint64_t)m, (int64_t)n));
  const uint32_t alA = align_of(W), alB = align_of(A), alC = align_of(out);
  const uint32_t alignKey = alA | (alB << 9) | (alC << 18);
  const auto key = std::make_tuple(m, n, k, alignKey, ab, dt);
  const std::pair<bool, algo_t>& algo = cachedAlgo(a, st, d, st.falgos, key, alA, alB, alC);
  if (!algo.first) return false;
  const float alpha = 1.0f, beta = 0.0f;
  const status_t s = a.Matmul(st.handle, d.op, &alpha, W, d.la, A, d.lb, &beta, out, d.lc, out, d.lc, &algo.second,
                              st.workspace, st.workspaceSize, (cudaStream_t)0);
  if (s == STATUS_NOT_SUPPORTED) return false;
  if (s != STATUS_SUCCESS) fail(a, s, "cublasLtMatmul");
  return true;
}

bool available() {
  try {
    load();
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace lt

bool ltGemm(const void* a, const void* w, int abType, long long m, long long k, long long n, void* out, int dType) {
  if (m <= 0 || n <= 0 || k <= 0 || !lt::available()) return false;
  return lt::gemm(a, w, abType, m, k, n, out, dType);
}

void gemmLt(const void* a, const void* w, int dtype, long long m, long long k, long long n, void* out, int outDtype) {
  if (dtype < 0 || dtype > 2) throw_arg("gemmLt: dtype must be 0, 1 or 2");
  if (outDtype != dtype && outDtype != DT_F32) throw_arg("gemmLt: outDtype must be dtype or 0 (float32)");
  if (m == 0 || n == 0 || k == 0) throw_arg("gemmLt: m, k and n must be positive");
  if (!ltGemm(a, w, dtype, m, k, n, out, outDtype))
    throw Error(std::string("gemmLt: cuBLASLt is missing or has no algorithm for this case"));
}

void int8LinearMatmul(const void* a, long long m, long long k, const void* b, long long n, void* out) {
  if (m < 0 || k < 0 || n < 0) throw_arg("int8LinearMatmul: m, k and n must be non-negative");
  if ((reinterpret_cast<uintptr_t>(out) & 3) != 0) throw_arg("int8LinearMatmul: out must be aligned to 4 bytes");
  if (m == 0 || n == 0) return;
  if (k > 0 && k % 4 == 0 && lt::matmul(a, m, k, b, n, out)) return;
  int8MatmulKernel(a, m, k, b, n, out);
}

}  // namespace bnb
