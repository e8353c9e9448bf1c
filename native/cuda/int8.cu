// LLM.int8 kernels, bit-identical with assembly/int8.ts: row-wise quantization
// (kInt8VectorQuant with bnb's reciprocal), the column half of int8_double_quant,
// int8_vectorwise_dequant, int8_mm_dequant (a real fmaf where the reference emulates
// one) and an exact integer GEMM for the shapes cuBLASLt's IMMA does not take.
#include <algorithm>
#include "common.cuh"

namespace bnb {

namespace {

// ---- int8_vectorwise_quant ----

__device__ __forceinline__ float row_candidate(float v, float thr) {
  // (threshold == 0 || v < threshold) ? v : ignored; NaN is dropped by fmaxf
  return (thr == 0.0f || v < thr) ? v : 0.0f;
}

// rint(x * scale) as __float2int_rn does it (round half even, NaN -> 0); outliers -> 0
__device__ __forceinline__ int8_t quant_elem(float x, float scale, float thr) {
  const bool outlier = thr > 0.0f && fabsf(x) >= thr;
  return outlier ? (int8_t)0 : (int8_t)__float2int_rn(__fmul_rn(x, scale));
}

// TPR threads per row, each holding CH chunks of 8 halves (16-byte loads) in registers.
// TPR == 32: 8 rows per CTA of 256 threads; else one row per CTA of TPR threads.
template <int TPR, int CH>
__global__ void __launch_bounds__(TPR == 32 ? 256 : TPR) k_int8_vq(const uint16_t* __restrict__ a, long long rows, int cols,
                                                                   float thr, int8_t* __restrict__ cb, float* __restrict__ stats) {
  constexpr int RPC = TPR == 32 ? 8 : 1;
  __shared__ float sRed[TPR == 32 ? 1 : TPR / 32];
  const int t = TPR == 32 ? (threadIdx.x & 31) : threadIdx.x;
  const long long row = (long long)blockIdx.x * RPC + (TPR == 32 ? (threadIdx.x >> 5) : 0);
  if (TPR == 32 && row >= rows) return;  // whole warps only
  const uint16_t* ra = a + (size_t)row * cols;
  uint4 v[CH];
  float m = 0.0f;
#pragma unroll
  for (int c = 0; c < CH; c++) {
    const int col = (t + c * TPR) * 8;
    if (col < cols) {
      v[c] = __ldcs(reinterpret_cast<const uint4*>(ra + col));
      const uint32_t w[4] = {v[c].x, v[c].y, v[c].z, v[c].w};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        m = fmaxf(m, row_candidate(fabsf(f16_to_f32_hw(w[j] & 0xffffu)), thr));
        m = fmaxf(m, row_candidate(fabsf(f16_to_f32_hw(w[j] >> 16)), thr));
      }
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if (TPR > 32) {
    if ((threadIdx.x & 31) == 0) sRed[threadIdx.x >> 5] = m;
    __syncthreads();
    m = sRed[0];
#pragma unroll
    for (int w = 1; w < TPR / 32; w++) m = fmaxf(m, sRed[w]);
  }
  if (t == 0) stats[row] = m;
  const float scale = __fmul_rn(127.0f, cuda_rcp(m));
  int8_t* rc = cb + (size_t)row * cols;
#pragma unroll
  for (int c = 0; c < CH; c++) {
    const int col = (t + c * TPR) * 8;
    if (col < cols) {
      const uint32_t w[4] = {v[c].x, v[c].y, v[c].z, v[c].w};
      uint32_t o[2] = {0, 0};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        const uint32_t lo = (uint8_t)quant_elem(f16_to_f32_hw(w[j] & 0xffffu), scale, thr);
        const uint32_t hi = (uint8_t)quant_elem(f16_to_f32_hw(w[j] >> 16), scale, thr);
        o[j >> 1] |= (lo | (hi << 8)) << (16 * (j & 1));
      }
      __stcs(reinterpret_cast<uint2*>(rc + col), make_uint2(o[0], o[1]));
    }
  }
}

// Any shape and alignment: one CTA per row, two passes (the second re-reads the row).
__global__ void __launch_bounds__(256) k_int8_vq_generic(const uint16_t* a, long long rows, long long cols, float thr, int8_t* cb,
                                                         float* stats) {
  __shared__ float sRed[8];
  const long long row = blockIdx.x;
  const uint16_t* ra = a + (size_t)row * cols;
  float m = 0.0f;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row_candidate(fabsf(f16_to_f32_hw(ra[c])), thr));
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  if ((threadIdx.x & 31) == 0) sRed[threadIdx.x >> 5] = m;
  __syncthreads();
  m = sRed[0];
  for (int w = 1; w < 8; w++) m = fmaxf(m, sRed[w]);
  if (threadIdx.x == 0) stats[row] = m;
  const float scale = __fmul_rn(127.0f, cuda_rcp(m));
  int8_t* rc = cb + (size_t)row * cols;
  for (long long c = threadIdx.x; c < cols; c += blockDim.x) rc[c] = quant_elem(f16_to_f32_hw(ra[c]), scale, thr);
}

// ---- int8_double_quant's column half ----

__global__ void k_col_stats(const uint16_t* a, long long rows, long long cols, float thr, long long rowsPerBlock, unsigned int* stats) {
  const long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const long long r0 = (long long)blockIdx.y * rowsPerBlock, r1 = min(rows, r0 + rowsPerBlock);
  float m = 0.0f;
  for (long long r = r0; r < r1; r++) {
    const float v = fabsf(f16_to_f32_hw(a[(size_t)r * cols + c]));
    if ((thr == 0.0f || v < thr) && v > m) m = v;
  }
  // non-negative floats order as their bit patterns
  if (m > 0.0f) atomicMax(stats + c, __float_as_uint(m));
}

__global__ void k_col_quant(const uint16_t* a, long long rows, long long cols, float thr, const float* stats, int8_t* cat) {
  const long long n = rows * cols;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const float x = f16_to_f32_hw(a[i]);
    float q = 0.0f;
    if (!(thr > 0.0f && fabsf(x) >= thr)) {
      q = rintf(__fdiv_rn(f16_to_f32(f32_to_f16(__fmul_rn(x, 127.0f))), stats[i % cols]));
    }
    cat[i] = q != q ? (int8_t)0 : (int8_t)__float2int_rz(fmaxf(-128.0f, fminf(127.0f, q)));
  }
}

// ---- int8_vectorwise_dequant: f32(f32(A * stats[row]) * f32(1/127)) ----

__global__ void k_int8_vdq(const int8_t* __restrict__ a, long long rows, long long cols, const float* __restrict__ stats,
                           float* __restrict__ out, bool vec) {
  const float k = __uint_as_float(0x3c010204u);
  const long long stride = (long long)gridDim.x * blockDim.x;
  if (vec) {  // cols % 4 == 0, aligned: 4 elements (one 16-byte store) per thread step
    const long long nv = rows * cols / 4;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < nv; v += stride) {
      const uint32_t w = __ldcs(reinterpret_cast<const unsigned int*>(a) + v);
      const float s = __ldg(stats + (v * 4) / cols);
      float e[4];
#pragma unroll
      for (int b = 0; b < 4; b++) e[b] = __fmul_rn(__fmul_rn((float)(int8_t)(w >> (8 * b)), s), k);
      __stcs(reinterpret_cast<float4*>(out) + v, make_float4(e[0], e[1], e[2], e[3]));
    }
  } else {
    const long long n = rows * cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
      out[i] = __fmul_rn(__fmul_rn((float)a[i], stats[i / cols]), k);
    }
  }
}

// ---- int8_mm_dequant ----

template <int BK>
__device__ __forceinline__ uint32_t mm_dequant_h(int32_t acc, float rs, float cs, const void* bias, long long c) {
  const float kInv = __uint_as_float(0x38820610u);  // f32(1/16129)
  const float x = __fmul_rn(__fmul_rn(__int2float_rn(acc), rs), cs);
  if (BK == 1) return f32_to_f16(__fmaf_rn(x, kInv, f16_to_f32(static_cast<const uint16_t*>(bias)[c])));
  uint32_t h = f32_to_f16(__fmaf_rn(x, kInv, 0.0f));
  if (BK == 2) h = f32_to_f16(__fadd_rn(f16_to_f32(h), static_cast<const float*>(bias)[c]));
  if (BK == 3) h = f32_to_f16(__fadd_rn(f16_to_f32(h), bf16_to_f32(static_cast<const uint16_t*>(bias)[c])));
  return h;
}

template <int DT>
__device__ __forceinline__ uint32_t from_h(uint32_t h) {  // f16 result -> output bits
  if (DT == DT_F32) return __float_as_uint(f16_to_f32(h));
  if (DT == DT_BF16) return f32_to_bf16(f16_to_f32(h));
  return h;
}

template <int BK, int DT>
__global__ void __launch_bounds__(256) k_mm_dequant(const int32_t* __restrict__ a, long long rows, long long cols,
                                                   const float* __restrict__ rowStats, const float* __restrict__ colStats,
                                                   const void* __restrict__ bias, void* __restrict__ out, bool vec) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  if (vec) {  // cols % 4 == 0, aligned: 4 elements (one 16-byte load) per thread step
    const long long nv = rows * cols / 4;
    for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < nv; v += stride) {
      const int4 x = __ldcs(reinterpret_cast<const int4*>(a) + v);
      const long long i = v * 4, r = i / cols, c = i - r * cols;
      const float rs = __ldg(rowStats + r);
      const int32_t xs[4] = {x.x, x.y, x.z, x.w};
      uint32_t o[4];
#pragma unroll
      for (int j = 0; j < 4; j++) o[j] = from_h<DT>(mm_dequant_h<BK>(xs[j], rs, __ldg(colStats + c + j), bias, c + j));
      if (DT == DT_F32) __stcs(reinterpret_cast<uint4*>(out) + v, make_uint4(o[0], o[1], o[2], o[3]));
      else __stcs(reinterpret_cast<uint2*>(out) + v, make_uint2(o[0] | (o[1] << 16), o[2] | (o[3] << 16)));
    }
  } else {
    const long long n = rows * cols;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
      const long long r = i / cols, c = i - r * cols;
      const uint32_t o = from_h<DT>(mm_dequant_h<BK>(a[i], rowStats[r], colStats[c], bias, c));
      if (DT == DT_F32) static_cast<uint32_t*>(out)[i] = o;
      else static_cast<uint16_t*>(out)[i] = (uint16_t)o;
    }
  }
}

// ---- exact int8 GEMM: out[i, j] = sum_t A[i, t] B[j, t] (int32, wrapping) ----

constexpr int GT = 64, GK = 32;  // 64x64 outputs per CTA of 256 threads (4x4 each)

__global__ void __launch_bounds__(256) k_int8_gemm(const int8_t* __restrict__ A, long long m, long long k, const int8_t* __restrict__ B,
                                                   long long n, int32_t* __restrict__ out) {
  __shared__ int sA[GK][GT + 1];
  __shared__ int sB[GK][GT + 1];
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const long long i0 = (long long)blockIdx.y * GT, j0 = (long long)blockIdx.x * GT;
  unsigned int acc[4][4] = {};
  for (long long t0 = 0; t0 < k; t0 += GK) {
    for (int e = threadIdx.x; e < GT * GK; e += 256) {
      const int r = e / GK, t = e % GK;
      const long long ia = i0 + r, jb = j0 + r, tt = t0 + t;
      sA[t][r] = (ia < m && tt < k) ? (int)A[(size_t)ia * k + tt] : 0;
      sB[t][r] = (jb < n && tt < k) ? (int)B[(size_t)jb * k + tt] : 0;
    }
    __syncthreads();
#pragma unroll 8
    for (int t = 0; t < GK; t++) {
      int av[4], bv[4];
#pragma unroll
      for (int u = 0; u < 4; u++) av[u] = sA[t][ty * 4 + u];
#pragma unroll
      for (int u = 0; u < 4; u++) bv[u] = sB[t][tx * 4 + u];
#pragma unroll
      for (int u = 0; u < 4; u++)
#pragma unroll
        for (int v = 0; v < 4; v++) acc[u][v] += (unsigned int)(av[u] * bv[v]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < 4; u++) {
    const long long i = i0 + ty * 4 + u;
    if (i >= m) continue;
#pragma unroll
    for (int v = 0; v < 4; v++) {
      const long long j = j0 + tx * 4 + v;
      if (j < n) out[(size_t)i * n + j] = (int32_t)acc[u][v];
    }
  }
}

int grid_cap(long long items, int threads) {
  return (int)std::max(1LL, std::min((items + threads - 1) / threads, (long long)smCount() * 8));
}

}  // namespace

void int8VectorwiseQuant(const void* a, long long rows, long long cols, float thr, void* cb, void* stats) {
  if (rows < 0 || cols < 0) throw_arg("int8VectorwiseQuant: rows and cols must be non-negative");
  need_align(a, 2, "int8VectorwiseQuant", "a");
  need_align(stats, 4, "int8VectorwiseQuant", "stats");
  if (rows == 0) return;
  if (cols == 0) {
    BNB_CHECK(cudaMemsetAsync(stats, 0, (size_t)rows * 4, 0));
    return;
  }
  const bool vec = cols % 8 == 0 && aligned(a, 16) && aligned(cb, 8) && aligned(stats, 4);
  const uint16_t* A = (const uint16_t*)a;
  int8_t* CB = (int8_t*)cb;
  float* S = (float*)stats;
  const int c = (int)std::min<long long>(cols, 1 << 30);
  if (vec && cols <= 256) k_int8_vq<32, 1><<<(unsigned)((rows + 7) / 8), 256>>>(A, rows, c, thr, CB, S);
  else if (vec && cols <= 1024) k_int8_vq<32, 4><<<(unsigned)((rows + 7) / 8), 256>>>(A, rows, c, thr, CB, S);
  else if (vec && cols <= 4096) k_int8_vq<256, 2><<<(unsigned)rows, 256>>>(A, rows, c, thr, CB, S);
  else if (vec && cols <= 8192) k_int8_vq<256, 4><<<(unsigned)rows, 256>>>(A, rows, c, thr, CB, S);
  else if (vec && cols <= 16384) k_int8_vq<512, 4><<<(unsigned)rows, 512>>>(A, rows, c, thr, CB, S);
  else k_int8_vq_generic<<<(unsigned)rows, 256>>>(A, rows, cols, thr, CB, S);
  check_launch("int8VectorwiseQuant kernel");
}

void int8ColumnQuant(const void* a, long long rows, long long cols, float thr, void* cat, void* stats) {
  if (rows < 0 || cols < 0) throw_arg("int8ColumnQuant: rows and cols must be non-negative");
  need_align(a, 2, "int8ColumnQuant", "a");
  need_align(stats, 4, "int8ColumnQuant", "stats");
  if (cols == 0) return;
  BNB_CHECK(cudaMemsetAsync(stats, 0, (size_t)cols * 4, 0));
  if (rows == 0) return;
  const long long colBlocks = (cols + 255) / 256;
  const long long rowSplits = std::max(1LL, std::min(rows, ((long long)smCount() * 8 + colBlocks - 1) / colBlocks));
  const long long rowsPerBlock = std::max((rows + rowSplits - 1) / rowSplits, (rows + 65534) / 65535);
  dim3 grid((unsigned)((cols + 255) / 256), (unsigned)((rows + rowsPerBlock - 1) / rowsPerBlock));
  k_col_stats<<<grid, 256>>>((const uint16_t*)a, rows, cols, thr, rowsPerBlock, (unsigned int*)stats);
  check_launch("int8ColumnQuant stats kernel");
  k_col_quant<<<grid_cap(rows * cols, 256), 256>>>((const uint16_t*)a, rows, cols, thr, (const float*)stats, (int8_t*)cat);
  check_launch("int8ColumnQuant kernel");
}

void int8VectorwiseDequant(const void* a, long long rows, long long cols, const void* stats, void* out) {
  if (rows < 0 || cols < 0) throw_arg("int8VectorwiseDequant: rows and cols must be non-negative");
  need_align(stats, 4, "int8VectorwiseDequant", "stats");
  need_align(out, 4, "int8VectorwiseDequant", "out");
  if (rows == 0 || cols == 0) return;
  const bool vec = cols % 4 == 0 && aligned(a, 4) && aligned(out, 16);
  const long long items = vec ? rows * cols / 4 : rows * cols;
  k_int8_vdq<<<grid_cap(items, 256), 256>>>((const int8_t*)a, rows, cols, (const float*)stats, (float*)out, vec);
  check_launch("int8VectorwiseDequant kernel");
}

void int8MmDequant(const void* a, long long rows, long long cols, const void* rowStats, const void* colStats, const void* bias,
                   int biasKind, int dtype, void* out) {
  if (rows < 0 || cols < 0) throw_arg("int8MmDequant: rows and cols must be non-negative");
  if (biasKind < 0 || biasKind > 3) throw_arg("int8MmDequant: biasKind must be 0 (none), 1 (f16), 2 (f32) or 3 (bf16)");
  if (biasKind != 0 && bias == nullptr) throw_arg("int8MmDequant: bias is 0 but biasKind is " + std::to_string(biasKind));
  if (dtype < 0 || dtype > 2) throw_arg("int8MmDequant: dtype must be 0, 1 or 2");
  need_align(a, 4, "int8MmDequant", "a");
  need_align(rowStats, 4, "int8MmDequant", "rowStats");
  need_align(colStats, 4, "int8MmDequant", "colStats");
  if (biasKind != 0) need_align(bias, biasKind == 2 ? 4 : 2, "int8MmDequant", "bias");
  need_align(out, dtype_size(dtype), "int8MmDequant", "out");
  if (rows == 0 || cols == 0) return;
  const bool vec = cols % 4 == 0 && aligned(a, 16) && aligned(out, dtype == DT_F32 ? 16 : 8);
  const long long items = vec ? rows * cols / 4 : rows * cols;
  const int grid = grid_cap(items, 256);
  const int32_t* A = (const int32_t*)a;
  const float *R = (const float*)rowStats, *C = (const float*)colStats;
#define MMDQ(BK)                                                                                              \
  if (dtype == DT_F32) k_mm_dequant<BK, DT_F32><<<grid, 256>>>(A, rows, cols, R, C, bias, out, vec);          \
  else if (dtype == DT_F16) k_mm_dequant<BK, DT_F16><<<grid, 256>>>(A, rows, cols, R, C, bias, out, vec);     \
  else k_mm_dequant<BK, DT_BF16><<<grid, 256>>>(A, rows, cols, R, C, bias, out, vec);
  switch (biasKind) {
    case 0: MMDQ(0); break;
    case 1: MMDQ(1); break;
    case 2: MMDQ(2); break;
    default: MMDQ(3); break;
  }
#undef MMDQ
  check_launch("int8MmDequant kernel");
}

void int8MatmulKernel(const void* a, long long m, long long k, const void* b, long long n, void* out) {
  need_align(out, 4, "int8LinearMatmul", "out");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    BNB_CHECK(cudaMemsetAsync(out, 0, (size_t)m * n * 4, 0));
    return;
  }
  if ((m + GT - 1) / GT > 65535) throw_arg("int8LinearMatmul: m is too large for the integer kernel");
  dim3 grid((unsigned)((n + GT - 1) / GT), (unsigned)((m + GT - 1) / GT));
  k_int8_gemm<<<grid, 256>>>((const int8_t*)a, m, k, (const int8_t*)b, n, (int32_t*)out);
  check_launch("int8LinearMatmul kernel");
}

}  // namespace bnb
