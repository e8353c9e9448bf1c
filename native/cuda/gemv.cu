// 4-bit GEMV: out[i, j] = sum_t A[i, t] W[j, t] (+ bias[j]), W row j = flat nibbles
// [j*k, (j+1)*k) of the packed weight, decoded as code[q] with the block's absmax.
// f32 accumulation; not bit-identical with the WebAssembly order (the absmax is
// applied once per 32-element chunk, products are fused), well inside bitsandbytes'
// test_gemv_4bit bars (the check script compares with a float64 reference).
//
// Fast paths (k % 32 == 0, blocksize a power of two >= 32, aligned pointers): thread t
// of a row's slice reads 16 bytes (32 weights) of the row, chunk t (k_gemv4_single, k <=
// 8192, its 32 inputs kept in registers) or chunks t, t + 256, ... (k_gemv4_multi).
// Everything else: k_gemv4_generic, one warp per output.
#include <algorithm>
#include "common.cuh"

namespace bnb {

namespace {

constexpr int GV_THREADS = 256;

__device__ __forceinline__ float lut_at(const float* lut, uint32_t byteOffset) {
  return *reinterpret_cast<const float*>(reinterpret_cast<const char*>(lut) + byteOffset);
}

template <int ADT>
__device__ __forceinline__ void load_a32(const void* A, size_t off, float a[32]) {
  if (ADT == DT_F32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(A) + off);
#pragma unroll
    for (int q = 0; q < 8; q++) {
      const float4 v = __ldg(p + q);
      a[4 * q] = v.x; a[4 * q + 1] = v.y; a[4 * q + 2] = v.z; a[4 * q + 3] = v.w;
    }
  } else {
    const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(A) + off);
#pragma unroll
    for (int q = 0; q < 4; q++) {
      const uint4 v = __ldg(p + q);
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        if (ADT == DT_BF16) {
          a[8 * q + 2 * j] = __uint_as_float(w[j] << 16);
          a[8 * q + 2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
        } else {
          a[8 * q + 2 * j] = f16_to_f32_hw(w[j] & 0xffffu);
          a[8 * q + 2 * j + 1] = f16_to_f32_hw(w[j] >> 16);
        }
      }
    }
  }
}

// sum over the 32 weights of one 16-byte chunk of a[e] * code[q_e]
__device__ __forceinline__ float dot32(const uint4 v, const float a[32], const float* lut) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  float p0 = 0.0f, p1 = 0.0f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    const uint32_t hi4 = (w[k] >> 2) & 0x3c3c3c3cu;  // byte j: its high nibble * 4
    const uint32_t lo4 = (w[k] << 2) & 0x3c3c3c3cu;  // byte j: its low nibble * 4
#pragma unroll
    for (int j = 0; j < 4; j++) {
      p0 = __fmaf_rn(a[8 * k + 2 * j], lut_at(lut, __byte_perm(hi4, 0, 0x4440 + j)), p0);
      p1 = __fmaf_rn(a[8 * k + 2 * j + 1], lut_at(lut, __byte_perm(lo4, 0, 0x4440 + j)), p1);
    }
  }
  return __fadd_rn(p0, p1);
}

// The same sum from a table of byte -> (code[hi], code[lo]) pairs: one 64-bit shared read
// per byte instead of two 32-bit reads and their two extractions. The table has 32
// copies at a 256-byte stride (entry b of copy c at b * 256 + c * 8), so a half-warp's
// 16 lanes read distinct banks and a byte's address is one byte permute of the weight
// word with `lane8` = lane * 8.
__device__ __forceinline__ float dot32_pair32(const uint4 v, const float a[32], const float2* ptab, uint32_t lane8) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  const char* base = reinterpret_cast<const char*>(ptab);
  float p0 = 0.0f, p1 = 0.0f;
#pragma unroll
  for (int k = 0; k < 4; k++) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      // bytes: lane8, weight byte j, 0, 0 (lane8 < 256: its upper bytes are 0)
      const float2 c = *reinterpret_cast<const float2*>(base + __byte_perm(w[k], lane8, 0x5504 + (j << 4)));
      p0 = __fmaf_rn(a[8 * k + 2 * j], c.x, p0);
      p1 = __fmaf_rn(a[8 * k + 2 * j + 1], c.y, p1);
    }
  }
  return __fadd_rn(p0, p1);
}

// Warp sums of R rows at once: halving exchanges (R/2 + R/4 + ... shuffles) leave each lane
// one row's partial sum, then full butterflies; lane holds row `row` (same in 32/R lanes).
template <int R>
__device__ __forceinline__ float warp_sum_rows(float (&acc)[R], int lane, int& row) {
  row = 0;
  int off = 16;
#pragma unroll
  for (int h = R / 2; h >= 1; h /= 2) {
    const bool up = (lane & off) != 0;
#pragma unroll
    for (int q = 0; q < h; q++) {
      const float send = up ? acc[q] : acc[q + h], keep = up ? acc[q + h] : acc[q];
      acc[q] = __fadd_rn(keep, __shfl_xor_sync(0xffffffffu, send, off));
    }
    row += up ? h : 0;
    off >>= 1;
  }
#pragma unroll
  for (int o = 16 / R; o >= 1; o >>= 1) acc[0] = __fadd_rn(acc[0], __shfl_xor_sync(0xffffffffu, acc[0], o));
  return acc[0];
}

template <int DT>
__device__ __forceinline__ void store_out(void* out, size_t i, float v) { store_from_f32<DT>(out, i, v); }

__device__ __forceinline__ void store_any(void* out, size_t i, float v, int dt) {
  if (dt == DT_F32) store_out<DT_F32>(out, i, v);
  else if (dt == DT_F16) store_out<DT_F16>(out, i, v);
  else store_out<DT_BF16>(out, i, v);
}

// k > 8192 (more than 256 chunks of 32 weights per row): one 256-thread CTA per group of
// R rows, thread t handles chunks t, t + 256, ... with the next chunk's weights loaded
// before the current one is computed; rows are reduced CTA-wide in a fixed order.
template <int ADT, int R>
__global__ void __launch_bounds__(GV_THREADS, 2) k_gemv4_multi(const void* __restrict__ A, long long k, const uint8_t* __restrict__ packed,
                                                             long long n, const float* __restrict__ absmax, int bsLog2, int qt,
                                                             const float* __restrict__ bias, int odt, void* __restrict__ out) {
  constexpr int NW = GV_THREADS / 32;
  __shared__ float lut[16];
  __shared__ float red[2][NW][R];
  if (threadIdx.x < 16) lut[threadIdx.x] = __uint_as_float(qt == QT_NF4 ? kNf4Lut[threadIdx.x] : kFp4Lut[threadIdx.x]);
  __syncthreads();
  const int t = threadIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long i = blockIdx.y;  // row of A
  const long long nch = k / 32, ngroups = (n + R - 1) / R;
  const size_t aoff = (size_t)i * k;
  auto load_w = [&](long long g, long long ch, uint4 w[R], float am[R]) {
#pragma unroll
    for (int r = 0; r < R; r++) {
      long long j = g * R + r;
      j = j < n ? j : n - 1;  // rows past n repeat the last (results dropped)
      const size_t flat = (size_t)j * k + (size_t)ch * 32;
      w[r] = __ldcs(reinterpret_cast<const uint4*>(packed + flat / 2));
      am[r] = __ldg(absmax + (flat >> bsLog2));
    }
  };
  int parity = 0;
  for (long long g = blockIdx.x; g < ngroups; g += gridDim.x) {
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.0f;
    long long ch = t;
    uint4 w0[R];
    float a0[R];
    load_w(g, ch, w0, a0);
    while (ch < nch) {
      uint4 w1[R];
      float a1[R];
      const long long nx = ch + GV_THREADS;
      if (nx < nch) load_w(g, nx, w1, a1);
      float x[32];
      load_a32<ADT>(A, aoff + (size_t)ch * 32, x);
#pragma unroll
      for (int r = 0; r < R; r++) acc[r] = __fmaf_rn(dot32(w0[r], x, lut), a0[r], acc[r]);
#pragma unroll
      for (int r = 0; r < R; r++) {
        w0[r] = w1[r];
        a0[r] = a1[r];
      }
      ch = nx;
    }
    // reduce: warp butterfly, then the warps in a fixed order
#pragma unroll
    for (int r = 0; r < R; r++) {
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) acc[r] = __fadd_rn(acc[r], __shfl_xor_sync(0xffffffffu, acc[r], off));
    }
    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < R; r++) red[parity][warp][r] = acc[r];
    }
    __syncthreads();
    if (t < R && g * R + t < n) {
      const long long j = g * R + t;
      float s = red[parity][0][t];
#pragma unroll
      for (int w = 1; w < NW; w++) s = __fadd_rn(s, red[parity][w][t]);
      if (bias != nullptr) s = __fadd_rn(s, bias[j]);
      store_any(out, (size_t)i * n + j, s, odt);
    }
    parity ^= 1;  // the other buffer next time: no second barrier needed
  }
}

// nch <= T (k <= 8192): each thread's 32 inputs stay in registers for all its rows. A
// CTA of 256 threads is split into slices of T threads, Z slices in all; they take groups
// of R rows round by round, and the rows left after the last whole round are split
// evenly, one at a time (a plain grid stride over groups left some CTAs a whole extra
// group: 10 against 9.05 at n = 28672). Sized for three CTAs per multiprocessor (the
// 64 KB pair table and 80 registers), whose loads overlap.
template <int ADT, int T, int R>
__global__ void __launch_bounds__(GV_THREADS, 3) k_gemv4_single(const void* __restrict__ A, long long k, const uint8_t* __restrict__ packed,
                                                              long long n, const float* __restrict__ absmax, int bsLog2, int qt,
                                                              const float* __restrict__ bias, int odt, void* __restrict__ out) {
  constexpr int S = GV_THREADS / T, WPS = T / 32;
  extern __shared__ __align__(16) float2 ptab[];  // 8192 entries
  __shared__ float red[2][GV_THREADS / 32][R];
  {
    const uint32_t* c = qt == QT_NF4 ? kNf4Lut : kFp4Lut;
    for (int e = threadIdx.x; e < 8192; e += GV_THREADS) ptab[e] = make_float2(__uint_as_float(c[e >> 9]), __uint_as_float(c[(e >> 5) & 15]));
  }
  __syncthreads();
  const int slice = threadIdx.x / T, t = threadIdx.x % T, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint32_t lane8 = (uint32_t)lane * 8;
  const long long i = blockIdx.y, nch = k / 32;
  const long long Z = (long long)gridDim.x * S, z = (long long)blockIdx.x * S + slice;
  const long long F = n / (Z * R), rem = n - F * Z * R;  // full rounds, rows left after them
  const long long iters = F + (rem > 0 ? 1 : 0);         // the same for every slice of the CTA
  const bool active = t < nch;
  float a[32];
  if (active) load_a32<ADT>(A, (size_t)i * k + (size_t)t * 32, a);
  int parity = 0;
  for (long long it = 0; it < iters; it++) {
    // rounds of whole groups interleaved over the slices (neighbouring slices stream
    // neighbouring rows), then the rest split evenly: [jb, je), at most R rows
    const long long tail0 = F * Z * R;
    const long long jb = it < F ? (it * Z + z) * R : tail0 + z * rem / Z;
    const long long je = it < F ? jb + R : tail0 + (z + 1) * rem / Z;
    float acc[R];
    if (active && it < F) {  // a whole group (slice-uniform branch)
      uint4 wv[R];
      float am[R];
#pragma unroll
      for (int r = 0; r < R; r++) {
        const size_t flat = (size_t)(jb + r) * k + (size_t)t * 32;
        wv[r] = __ldcs(reinterpret_cast<const uint4*>(packed + flat / 2));
        am[r] = __ldg(absmax + (flat >> bsLog2));
      }
#pragma unroll
      for (int r = 0; r < R; r++) acc[r] = __fmul_rn(dot32_pair32(wv[r], a, ptab, lane8), am[r]);
    } else {  // the last rows, one at a time
#pragma unroll
      for (int r = 0; r < R; r++) {
        acc[r] = 0.0f;
        if (active && jb + r < je) {
          const size_t flat = (size_t)(jb + r) * k + (size_t)t * 32;
          acc[r] = __fmul_rn(dot32_pair32(__ldcs(reinterpret_cast<const uint4*>(packed + flat / 2)), a, ptab, lane8), __ldg(absmax + (flat >> bsLog2)));
        }
      }
    }
    // reduce: warp sums, then the slice's warps in a fixed order
    int row;
    const float v = warp_sum_rows<R>(acc, lane, row);
    if ((lane & (32 / R - 1)) == 0) red[parity][warp][row] = v;
    __syncthreads();
    if (t < R && jb + t < je) {
      const long long j = jb + t;
      float s = red[parity][slice * WPS][t];
#pragma unroll
      for (int w = 1; w < WPS; w++) s = __fadd_rn(s, red[parity][slice * WPS + w][t]);
      if (bias != nullptr) s = __fadd_rn(s, bias[j]);
      store_any(out, (size_t)i * n + j, s, odt);
    }
    parity ^= 1;  // the other buffer next time: no second barrier needed
  }
}

// Any k, blocksize and alignment: one warp per output (i, j), element by element.
template <int ADT>
__global__ void __launch_bounds__(GV_THREADS) k_gemv4_generic(const void* A, long long k, const uint8_t* packed, long long n,
                                                             const float* absmax, long long bs, int qt, const float* bias, int odt,
                                                             void* out) {
  const int lane = threadIdx.x & 31;
  const long long i = blockIdx.y;
  const long long warpsTotal = (long long)gridDim.x * (GV_THREADS / 32);
  for (long long j = (long long)blockIdx.x * (GV_THREADS / 32) + (threadIdx.x >> 5); j < n; j += warpsTotal) {
    float acc = 0.0f;
    for (long long t = lane; t < k; t += 32) {
      const size_t p = (size_t)j * k + (size_t)t;
      const uint32_t byte = packed[p >> 1];
      const uint32_t q = (p & 1) == 0 ? byte >> 4 : byte & 15u;
      const float w = __fmul_rn(__uint_as_float(qt == QT_NF4 ? kNf4Lut[q] : kFp4Lut[q]), absmax[p / bs]);
      acc = __fmaf_rn(load_as_f32<ADT>(A, (size_t)i * k + t), w, acc);
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc = __fadd_rn(acc, __shfl_xor_sync(0xffffffffu, acc, off));
    if (lane == 0) {
      if (bias != nullptr) acc = __fadd_rn(acc, bias[j]);
      store_any(out, (size_t)i * n + j, acc, odt);
    }
  }
}

}  // namespace

void gemv4bit(const void* a, long long m, long long k, int adtype, const void* packed, long long n, const void* absmax,
              long long bs, int qtype, const void* bias, int dtype, void* out) {
  if (m < 0 || k < 0 || n < 0) throw_arg("gemv4bit: m, k and n must be non-negative");
  if (bs <= 0) throw_arg("gemv4bit: blocksize must be positive, got " + std::to_string(bs));
  if (qtype != QT_NF4 && qtype != QT_FP4) throw_arg("gemv4bit: qtype must be 0 (fp4) or 1 (nf4)");
  if (adtype < 0 || adtype > 2 || dtype < 0 || dtype > 2) throw_arg("gemv4bit: dtype ids must be 0, 1 or 2");
  need_align(a, dtype_size(adtype), "gemv4bit", "a");
  need_align(absmax, 4, "gemv4bit", "absmax");
  if (bias != nullptr) need_align(bias, 4, "gemv4bit", "bias");
  need_align(out, dtype_size(dtype), "gemv4bit", "out");
  if (m == 0 || n == 0) return;
  if (m > 65535) throw_arg("gemv4bit: m must be at most 65535");
  const int l = ilog2_exact(bs);
  const size_t asz = adtype == DT_F32 ? 4 : 2;
  const bool fast = k % 32 == 0 && k > 0 && l >= 5 && aligned(packed, 16) && aligned(a, 16) && aligned(absmax, 4) &&
                    (k * (long long)asz) % 16 == 0;
  const float* B = (const float*)bias;
  const uint8_t* P = (const uint8_t*)packed;
  const float* AM = (const float*)absmax;
  if (fast && k / 32 <= 256) {
    const long long nch = k / 32;
    const int T = nch <= 32 ? 32 : nch <= 64 ? 64 : nch <= 128 ? 128 : 256;
    // rows per step: 8 for one 256-thread slice per row (measured on an H100 at k = 8192:
    // 2240 against 2124 GB/s with 4; 2 and 1 were slower), else 4
    const int R = T == 256 ? 8 : 4;
    const long long S = GV_THREADS / T;
    constexpr size_t kTable = 8192 * sizeof(float2);
    const void* kern = nullptr;
#define GV_SINGLE(TT, RR)                                                                                        \
  kern = adtype == DT_F32   ? (const void*)k_gemv4_single<DT_F32, TT, RR>                                         \
         : adtype == DT_F16 ? (const void*)k_gemv4_single<DT_F16, TT, RR>                                         \
                            : (const void*)k_gemv4_single<DT_BF16, TT, RR>;
    if (T == 32) { GV_SINGLE(32, 4) } else if (T == 64) { GV_SINGLE(64, 4) } else if (T == 128) { GV_SINGLE(128, 4) } else { GV_SINGLE(256, 8) }
#undef GV_SINGLE
    BNB_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kTable));
    // every slot filled (the rows are split evenly), but no slice with fewer than R rows
    const long long want = std::max(1LL, n / (R * S));
    const long long cap = std::max(1LL, (long long)smCount() * occupancy(kern, GV_THREADS, kTable) / m);
    const dim3 grid((unsigned)std::max(1LL, std::min(want, cap)), (unsigned)m);
    void* args[] = {(void*)&a, (void*)&k, (void*)&P, (void*)&n, (void*)&AM, (void*)&l, (void*)&qtype, (void*)&B, (void*)&dtype, (void*)&out};
    BNB_CHECK(cudaLaunchKernel(kern, grid, dim3(GV_THREADS), args, kTable, 0));
  } else if (fast) {
    // k > 8192: several chunks per thread, one 256-thread slice per row, 4 rows per group
    const long long ngroups = (n + 3) / 4;
    const void* kern = adtype == DT_F32 ? (const void*)k_gemv4_multi<DT_F32, 4>
                       : adtype == DT_F16 ? (const void*)k_gemv4_multi<DT_F16, 4>
                                          : (const void*)k_gemv4_multi<DT_BF16, 4>;
    const long long cap = std::max(1LL, (long long)smCount() * occupancy(kern, GV_THREADS, 0) / m);
    const dim3 grid((unsigned)std::max(1LL, std::min(ngroups, cap)), (unsigned)m);
    if (adtype == DT_F32) k_gemv4_multi<DT_F32, 4><<<grid, GV_THREADS>>>(a, k, P, n, AM, l, qtype, B, dtype, out);
    else if (adtype == DT_F16) k_gemv4_multi<DT_F16, 4><<<grid, GV_THREADS>>>(a, k, P, n, AM, l, qtype, B, dtype, out);
    else k_gemv4_multi<DT_BF16, 4><<<grid, GV_THREADS>>>(a, k, P, n, AM, l, qtype, B, dtype, out);
  } else {
    const void* kern = adtype == DT_F32 ? (const void*)k_gemv4_generic<DT_F32> : adtype == DT_F16 ? (const void*)k_gemv4_generic<DT_F16> : (const void*)k_gemv4_generic<DT_BF16>;
    const long long want = (n + GV_THREADS / 32 - 1) / (GV_THREADS / 32);
    const long long cap = std::max(1LL, (long long)smCount() * occupancy(kern, GV_THREADS, 0) / m);
    dim3 grid((unsigned)std::max(1LL, std::min(want, cap)), (unsigned)m);
    if (adtype == DT_F32) k_gemv4_generic<DT_F32><<<grid, GV_THREADS>>>(a, k, P, n, AM, bs, qtype, B, dtype, out);
    else if (adtype == DT_F16) k_gemv4_generic<DT_F16><<<grid, GV_THREADS>>>(a, k, P, n, AM, bs, qtype, B, dtype, out);
    else k_gemv4_generic<DT_BF16><<<grid, GV_THREADS>>>(a, k, P, n, AM, bs, qtype, B, dtype, out);
  }
  check_launch("gemv4bit kernel");
}

}  // namespace bnb
