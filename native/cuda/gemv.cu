// 4-bit GEMV / matmul: out[m, n] = sum_k A[m, k] W[n, k] (+ bias[n]), W row n = flat
// nibbles [n*K, (n+1)*K) of the packed weight, decoded as code[q] * absmax[block].
//
// Exact mode (gemv4bit, M < 64): the summation order of docs/bit-exactness.md, "4-bit
// GEMV", step for step, so the bytes are the WebAssembly kernels' bytes:
//   w = code[q] * absmax (one f32 product), p = x * w, acc[l][j] += p, where the row is cut
//   into chunks of 32 (chunk c belongs to lane l = c mod 32) and element k of a chunk to
//   sub-lane j = (k mod 8) / 2; r[l] = (acc0 + acc1) + (acc2 + acc3); then r[l] += r[l + s]
//   for s = 16, 8, 4, 2, 1 (__shfl_down_sync gives r[l + s] to lane l < s); + bias; one
//   rounding. Every product and sum is __fmul_rn / __fadd_rn (and the build has
//   -fmad=false): no contraction into FMA anywhere on this path.
//   One warp per output row n (or R rows), thread = lane l, reading chunks l, l + 32, ...:
//   16 bytes each, 512 contiguous bytes per warp step. MT rows of A share every weight
//   chunk the warp loads (M <= 16: the weight is read once; M = 17..63: once per 16 rows).
//   Rows whose chunks are not 16-byte units of one block (K % 32 != 0, blocksizes that are
//   not powers of two >= 32, unaligned pointers) take k_gemv4_generic: the same order,
//   element by element.
// Large M (gemv4bit, M >= 64): W dequantized to A's dtype (dequantize4bit) into scratch,
//   then a cuBLASLt GEMM with f32 compute (lt.cpp); cuBLAS owns that summation order. With
//   a bias (or an output dtype other than A's) the GEMM writes f32 and one kernel adds the
//   bias in f32 and rounds once. Without cuBLASLt, or with no algorithm for the shape, the
//   exact kernels run (BNBJS_GEMV_CUBLAS=0 forces that).
// int8-activation mode (gemv4bitInt8, any M): docs/bit-exactness.md, "int8-activation
//   mode": A quantized per group of 64 row elements (k_quant_act, into scratch), integer
//   dot products per segment (__dp4a, exact), t[g] += isum * (absmax * d) from +0, lanes
//   g mod 32, the same tree, bias, one rounding.
#include <float.h>
#include <stdlib.h>
#include <algorithm>
#include "common.cuh"

namespace bnb {

namespace {

constexpr int GV_THREADS = 128;  // 4 warps per CTA, one (group of) output row(s) each
constexpr int GV_WARPS = GV_THREADS / 32;
constexpr unsigned FULL = 0xffffffffu;

__device__ __forceinline__ long long lmin(long long a, long long b) { return a < b ? a : b; }

__device__ __forceinline__ float lut_at(const float* lut, uint32_t byteOffset) {
  return *reinterpret_cast<const float*>(reinterpret_cast<const char*>(lut) + byteOffset);
}

__device__ __forceinline__ void store_any(void* out, size_t i, float v, int dt) {
  if (dt == DT_F32) store_from_f32<DT_F32>(out, i, v);
  else if (dt == DT_F16) store_from_f32<DT_F16>(out, i, v);
  else store_from_f32<DT_BF16>(out, i, v);
}

// 8 consecutive elements of A as f32 (f32: 16-byte aligned; 16-bit: 16-byte aligned)
template <int ADT>
__device__ __forceinline__ void load_x8(const void* A, size_t off, float x[8]) {
  if (ADT == DT_F32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(A) + off);
    const float4 a = __ldg(p), b = __ldg(p + 1);
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
    x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
  } else {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(A) + off));
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
      if (ADT == DT_BF16) {
        x[2 * j] = __uint_as_float(w[j] << 16);
        x[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
      } else {
        x[2 * j] = f16_to_f32_hw(w[j] & 0xffffu);
        x[2 * j + 1] = f16_to_f32_hw(w[j] >> 16);
      }
    }
  }
}

// Steps 4-6 for one output: r = (a0 + a1) + (a2 + a3), the lane tree; lane 0 adds the bias and stores.
__device__ __forceinline__ void finish(const float (&a)[4], int lane, bool valid, long long m, long long n, long long N,
                                       const float* bias, int odt, void* out) {
  float r = __fadd_rn(__fadd_rn(a[0], a[1]), __fadd_rn(a[2], a[3]));
#pragma unroll
  for (int s = 16; s >= 1; s >>= 1) r = __fadd_rn(r, __shfl_down_sync(FULL, r, s));
  if (lane == 0 && valid) {
    if (bias != nullptr) r = __fadd_rn(r, bias[n]);
    store_any(out, (size_t)m * N + n, r, odt);
  }
}

// Exact mode, aligned rows: warp = R rows of W (n0 .. n0 + R - 1) x MT rows of A (blockIdx.y).
// K % 32 == 0, blocksize 2^bsLog2 >= 32 (a chunk lies in one block), packed and A 16-byte aligned.
template <int ADT, int MT, int R>
__global__ void __launch_bounds__(GV_THREADS) k_gemv4_exact(const void* __restrict__ A, long long M, long long K,
                                                            const uint8_t* __restrict__ packed, long long N,
                                                            const float* __restrict__ absmax, int bsLog2, int qt,
                                                            const float* __restrict__ bias, int odt, void* __restrict__ out) {
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = __uint_as_float(qt == QT_NF4 ? kNf4Lut[threadIdx.x] : kFp4Lut[threadIdx.x]);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const long long n0 = ((long long)blockIdx.x * GV_WARPS + (threadIdx.x >> 5)) * R;
  if (n0 >= N) return;  // the whole warp: no barrier follows
  const long long m0 = (long long)blockIdx.y * MT;
  const long long nch = K / 32;
  size_t arow[MT], wrow[R];
#pragma unroll
  for (int i = 0; i < MT; i++) arow[i] = (size_t)lmin(m0 + i, M - 1) * (size_t)K;  // rows past M repeat (dropped)
#pragma unroll
  for (int r = 0; r < R; r++) wrow[r] = (size_t)lmin(n0 + r, N - 1) * (size_t)K;   // rows past N repeat (dropped)
  float acc[MT][R][4];
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
      for (int j = 0; j < 4; j++) acc[i][r][j] = 0.0f;

  for (long long c = lane; c < nch; c += 32) {
    uint4 wv[R];
    float am[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
      const size_t flat = wrow[r] + (size_t)c * 32;
      wv[r] = __ldcs(reinterpret_cast<const uint4*>(packed + flat / 2));
      am[r] = __ldg(absmax + (flat >> bsLog2));
    }
#pragma unroll
    for (int q = 0; q < 4; q++) {  // word q: elements 8q .. 8q + 7 of the chunk
      float w[R][8];
#pragma unroll
      for (int r = 0; r < R; r++) {
        const uint32_t word = q == 0 ? wv[r].x : q == 1 ? wv[r].y : q == 2 ? wv[r].z : wv[r].w;
        const uint32_t hi4 = (word >> 2) & 0x3c3c3c3cu;  // byte j: its high nibble * 4 (element 8q + 2j)
        const uint32_t lo4 = (word << 2) & 0x3c3c3c3cu;  // byte j: its low nibble * 4 (element 8q + 2j + 1)
#pragma unroll
        for (int j = 0; j < 4; j++) {
          w[r][2 * j] = __fmul_rn(lut_at(lut, __byte_perm(hi4, 0, 0x4440 + j)), am[r]);
          w[r][2 * j + 1] = __fmul_rn(lut_at(lut, __byte_perm(lo4, 0, 0x4440 + j)), am[r]);
        }
      }
#pragma unroll
      for (int i = 0; i < MT; i++) {
        float x[8];
        load_x8<ADT>(A, arow[i] + (size_t)c * 32 + 8 * q, x);
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
          for (int j = 0; j < 4; j++) {  // sub-lane j: elements 8q + 2j, then 8q + 2j + 1
            acc[i][r][j] = __fadd_rn(acc[i][r][j], __fmul_rn(x[2 * j], w[r][2 * j]));
            acc[i][r][j] = __fadd_rn(acc[i][r][j], __fmul_rn(x[2 * j + 1], w[r][2 * j + 1]));
          }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int r = 0; r < R; r++) finish(acc[i][r], lane, m0 + i < M && n0 + r < N, m0 + i, n0 + r, N, bias, odt, out);
}

// Exact mode, any K, blocksize and alignment: one warp per output (m = blockIdx.y, n), the
// same order element by element.
template <int ADT>
__global__ void __launch_bounds__(GV_THREADS) k_gemv4_generic(const void* A, long long K, const uint8_t* packed, long long N,
                                                              const float* absmax, long long bs, int qt, const float* bias,
                                                              int odt, void* out) {
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = __uint_as_float(qt == QT_NF4 ? kNf4Lut[threadIdx.x] : kFp4Lut[threadIdx.x]);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const long long m = blockIdx.y;
  const long long warpsTotal = (long long)gridDim.x * GV_WARPS;
  for (long long n = (long long)blockIdx.x * GV_WARPS + (threadIdx.x >> 5); n < N; n += warpsTotal) {
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (long long k0 = (long long)lane * 32; k0 < K; k0 += 32 * 32) {  // chunks lane, lane + 32, ...
#pragma unroll
      for (int e = 0; e < 32; e++) {
        const long long k = k0 + e;
        if (k < K) {
          const size_t p = (size_t)n * (size_t)K + (size_t)k;
          const uint32_t byte = packed[p >> 1];
          const uint32_t q = (p & 1) == 0 ? byte >> 4 : byte & 15u;
          const float w = __fmul_rn(lut[q], absmax[p / (size_t)bs]);
          const float x = load_as_f32<ADT>(A, (size_t)m * (size_t)K + (size_t)k);
          acc[(e & 7) >> 1] = __fadd_rn(acc[(e & 7) >> 1], __fmul_rn(x, w));
        }
      }
    }
    finish(acc, lane, true, m, n, N, bias, odt, out);
  }
}

// out = round(D + bias) (bias optional): the large-M path's epilogue, f32 add then one rounding.
__global__ void k_bias_round(const float* D, long long M, long long N, const float* bias, int odt, void* out) {
  const long long m = blockIdx.y;
  for (long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x; n < N; n += (long long)gridDim.x * blockDim.x) {
    float v = D[(size_t)m * N + n];
    if (bias != nullptr) v = __fadd_rn(v, bias[n]);
    store_any(out, (size_t)m * N + n, v, odt);
  }
}

// ---- int8-activation mode ----

constexpr int GROUP = 64;

// A quantized per group of 64 row elements: one warp per (m, g), lane t holding elements
// 2t and 2t + 1. q8: [M, Kp] int8 (Kp = G * 64, zeros past K); dq: [M, G] f32 = amax / 16129,
// 0 for amax < 2^-126 (every q 0 too), NaN when the group holds a NaN or an infinity.
template <int ADT>
__global__ void __launch_bounds__(GV_THREADS) k_quant_act(const void* A, long long M, long long K, long long G, long long Kp,
                                                          int8_t* q8, float* dq) {
  const int lane = threadIdx.x & 31;
  const long long warpsTotal = (long long)gridDim.x * GV_WARPS;
  for (long long u = (long long)blockIdx.x * GV_WARPS + (threadIdx.x >> 5); u < M * G; u += warpsTotal) {
    const long long m = u / G, g = u - m * G;
    const long long k = g * GROUP + 2 * lane;
    const float x0 = k < K ? load_as_f32<ADT>(A, (size_t)m * K + k) : 0.0f;
    const float x1 = k + 1 < K ? load_as_f32<ADT>(A, (size_t)m * K + k + 1) : 0.0f;
    const float a0 = fabsf(x0), a1 = fabsf(x1);
    const bool bad = __any_sync(FULL, !(a0 <= FLT_MAX) || !(a1 <= FLT_MAX));  // NaN or +-Inf in the group
    float amax = fmaxf(a0, a1);  // exact, order-free (no NaN reaches it when it is used)
#pragma unroll
    for (int s = 16; s >= 1; s >>= 1) amax = fmaxf(amax, __shfl_xor_sync(FULL, amax, s));
    int q0 = 0, q1 = 0;
    float d;
    if (bad) {
      d = __int_as_float(0x7fc00000);
    } else if (amax < FLT_MIN) {  // below 2^-126: zero or subnormal
      d = 0.0f;
    } else {
      const float r = __fdiv_rn(127.0f, amax);
      q0 = min(127, max(-127, __float2int_rn(__fmul_rn(x0, r))));
      q1 = min(127, max(-127, __float2int_rn(__fmul_rn(x1, r))));
      d = __fdiv_rn(amax, 16129.0f);
    }
    const uint32_t pair = ((uint32_t)q0 & 0xffu) | (((uint32_t)q1 & 0xffu) << 8);
    reinterpret_cast<uint16_t*>(q8 + (size_t)m * Kp + (size_t)g * GROUP)[lane] = (uint16_t)pair;
    if (lane == 0) dq[(size_t)m * G + g] = d;
  }
}

// wq[code] = rintf(code * 127) as an int8 in the low byte (docs: roundEven(code x 127))
__device__ __forceinline__ uint32_t wq_byte(int qt, int c) {
  const float v = __uint_as_float(qt == QT_NF4 ? kNf4Lut[c] : kFp4Lut[c]);
  return (uint32_t)(int)rintf(__fmul_rn(v, 127.0f)) & 0xffu;
}

// 8 weight levels of one packed word (elements 8q .. 8q + 7) as two words of 4 int8 (element order)
__device__ __forceinline__ void levels8(uint32_t word, const uint32_t* wtab, uint32_t& lo, uint32_t& hi) {
  uint32_t b[8];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    b[2 * j] = wtab[(word >> (8 * j + 4)) & 15u];
    b[2 * j + 1] = wtab[(word >> (8 * j)) & 15u];
  }
  lo = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24);
  hi = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] << 24);
}

// t = 0 + isum * (absmax * d) over the group's segments (at most two here: its two 32-element halves,
// one segment when they share a block)
__device__ __forceinline__ float group_term(int i0, int i1, bool two, bool same, float am0, float am1, float d) {
  float t = 0.0f;
  if (two && same) {
    t = __fadd_rn(t, __fmul_rn(__int2float_rn(i0 + i1), __fmul_rn(am0, d)));
  } else {
    t = __fadd_rn(t, __fmul_rn(__int2float_rn(i0), __fmul_rn(am0, d)));
    if (two) t = __fadd_rn(t, __fmul_rn(__int2float_rn(i1), __fmul_rn(am1, d)));
  }
  return t;
}

__device__ __forceinline__ void finish1(float r, int lane, bool valid, long long m, long long n, long long N, const float* bias,
                                        int odt, void* out) {
#pragma unroll
  for (int s = 16; s >= 1; s >>= 1) r = __fadd_rn(r, __shfl_down_sync(FULL, r, s));
  if (lane == 0 && valid) {
    if (bias != nullptr) r = __fadd_rn(r, bias[n]);
    store_any(out, (size_t)m * N + n, r, odt);
  }
}

// int8 mode, aligned rows (K % 32 == 0, blocksize 2^bsLog2 >= 32, packed 16-byte aligned):
// warp = row n of W x MT rows of A; lane l takes groups l, l + 32, ... (32 weight bytes each).
template <int MT>
__global__ void __launch_bounds__(GV_THREADS) k_gemv4_int8(const int8_t* __restrict__ q8, const float* __restrict__ dq, long long M,
                                                           long long K, long long G, long long Kp,
                                                           const uint8_t* __restrict__ packed, long long N,
                                                           const float* __restrict__ absmax, int bsLog2, int qt,
                                                           const float* __restrict__ bias, int odt, void* __restrict__ out) {
  __shared__ uint32_t wtab[16];
  if (threadIdx.x < 16) wtab[threadIdx.x] = wq_byte(qt, threadIdx.x);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const long long n = (long long)blockIdx.x * GV_WARPS + (threadIdx.x >> 5);
  if (n >= N) return;
  const long long m0 = (long long)blockIdx.y * MT;
  size_t arow[MT];
#pragma unroll
  for (int i = 0; i < MT; i++) arow[i] = (size_t)lmin(m0 + i, M - 1);
  float acc[MT];
#pragma unroll
  for (int i = 0; i < MT; i++) acc[i] = 0.0f;
  const size_t wrow = (size_t)n * (size_t)K;
  for (long long g = lane; g < G; g += 32) {
    const size_t f0 = wrow + (size_t)g * GROUP;
    const bool two = g * GROUP + 32 < K;
    const uint4 w0 = __ldcs(reinterpret_cast<const uint4*>(packed + f0 / 2));
    const uint4 w1 = two ? __ldcs(reinterpret_cast<const uint4*>(packed + f0 / 2 + 16)) : make_uint4(0, 0, 0, 0);
    const size_t b0 = f0 >> bsLog2, b1 = (f0 + 32) >> bsLog2;
    const float am0 = __ldg(absmax + b0), am1 = two ? __ldg(absmax + b1) : 0.0f;
    uint32_t lv[16];
    levels8(w0.x, wtab, lv[0], lv[1]);
    levels8(w0.y, wtab, lv[2], lv[3]);
    levels8(w0.z, wtab, lv[4], lv[5]);
    levels8(w0.w, wtab, lv[6], lv[7]);
    levels8(w1.x, wtab, lv[8], lv[9]);
    levels8(w1.y, wtab, lv[10], lv[11]);
    levels8(w1.z, wtab, lv[12], lv[13]);
    levels8(w1.w, wtab, lv[14], lv[15]);
#pragma unroll
    for (int i = 0; i < MT; i++) {
      const uint4* xp = reinterpret_cast<const uint4*>(q8 + arow[i] * (size_t)Kp + (size_t)g * GROUP);
      const uint4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
      int i0 = 0, i1 = 0;
      i0 = __dp4a((int)x0.x, (int)lv[0], i0);
      i0 = __dp4a((int)x0.y, (int)lv[1], i0);
      i0 = __dp4a((int)x0.z, (int)lv[2], i0);
      i0 = __dp4a((int)x0.w, (int)lv[3], i0);
      i0 = __dp4a((int)x1.x, (int)lv[4], i0);
      i0 = __dp4a((int)x1.y, (int)lv[5], i0);
      i0 = __dp4a((int)x1.z, (int)lv[6], i0);
      i0 = __dp4a((int)x1.w, (int)lv[7], i0);
      if (two) {
        const uint4 x2 = __ldg(xp + 2), x3 = __ldg(xp + 3);
        i1 = __dp4a((int)x2.x, (int)lv[8], i1);
        i1 = __dp4a((int)x2.y, (int)lv[9], i1);
        i1 = __dp4a((int)x2.z, (int)lv[10], i1);
        i1 = __dp4a((int)x2.w, (int)lv[11], i1);
        i1 = __dp4a((int)x3.x, (int)lv[12], i1);
        i1 = __dp4a((int)x3.y, (int)lv[13], i1);
        i1 = __dp4a((int)x3.z, (int)lv[14], i1);
        i1 = __dp4a((int)x3.w, (int)lv[15], i1);
      }
      const float d = __ldg(dq + arow[i] * (size_t)G + g);
      acc[i] = __fadd_rn(acc[i], group_term(i0, i1, two, b0 == b1, am0, am1, d));
    }
  }
#pragma unroll
  for (int i = 0; i < MT; i++) finish1(acc[i], lane, m0 + i < M, m0 + i, n, N, bias, odt, out);
}

// int8 mode, any K, blocksize and alignment: one warp per output (m = blockIdx.y, n), segments
// found element by element.
__global__ void __launch_bounds__(GV_THREADS) k_gemv4_int8_generic(const int8_t* q8, const float* dq, long long K, long long G,
                                                                   long long Kp, const uint8_t* packed, long long N,
                                                                   const float* absmax, long long bs, int qt, const float* bias,
                                                                   int odt, void* out) {
  __shared__ int wlev[16];
  if (threadIdx.x < 16) wlev[threadIdx.x] = (int)(int8_t)wq_byte(qt, threadIdx.x);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const long long m = blockIdx.y;
  const long long warpsTotal = (long long)gridDim.x * GV_WARPS;
  for (long long n = (long long)blockIdx.x * GV_WARPS + (threadIdx.x >> 5); n < N; n += warpsTotal) {
    float acc = 0.0f;
    for (long long g = lane; g < G; g += 32) {
      const float d = dq[(size_t)m * G + g];
      const long long k1 = lmin(K, (g + 1) * GROUP);
      float t = 0.0f, am = 0.0f;
      int isum = 0;
      long long cur = -1;
      for (long long k = g * GROUP; k < k1; k++) {
        const size_t p = (size_t)n * (size_t)K + (size_t)k;
        const long long b = (long long)(p / (size_t)bs);
        if (b != cur) {  // a new segment: the previous one's term first
          if (cur >= 0) t = __fadd_rn(t, __fmul_rn(__int2float_rn(isum), __fmul_rn(am, d)));
          cur = b;
          am = absmax[b];
          isum = 0;
        }
        const uint32_t byte = packed[p >> 1];
        const uint32_t q = (p & 1) == 0 ? byte >> 4 : byte & 15u;
        isum += (int)q8[(size_t)m * Kp + (size_t)k] * wlev[q];
      }
      t = __fadd_rn(t, __fmul_rn(__int2float_rn(isum), __fmul_rn(am, d)));
      acc = __fadd_rn(acc, t);
    }
    finish1(acc, lane, true, m, n, N, bias, odt, out);
  }
}

void check_args(const char* fn, const void* a, long long m, long long k, int adtype, long long n, const void* absmax, long long bs,
                int qtype, const void* bias, int dtype, void* out) {
  const std::string f(fn);
  if (m < 0 || k < 0 || n < 0) throw_arg(f + ": m, k and n must be non-negative");
  if (bs <= 0) throw_arg(f + ": blocksize must be positive, got " + std::to_string(bs));
  if (qtype != QT_NF4 && qtype != QT_FP4) throw_arg(f + ": qtype must be 0 (fp4) or 1 (nf4)");
  if (adtype < 0 || adtype > 2 || dtype < 0 || dtype > 2) throw_arg(f + ": dtype ids must be 0, 1 or 2");
  need_align(a, dtype_size(adtype), fn, "a");
  need_align(absmax, 4, fn, "absmax");
  if (bias != nullptr) need_align(bias, 4, fn, "bias");
  need_align(out, dtype_size(dtype), fn, "out");
  if (m > 65535 && m != 0 && n != 0) throw_arg(f + ": m must be at most 65535");
}

long long grid_x(long long warps) { return std::max(1LL, (warps + GV_WARPS - 1) / GV_WARPS); }

template <int ADT, int MT, int R>
void launch_exact(const void* a, long long m, long long k, const uint8_t* P, long long n, const float* AM, int l, int qt,
                  const float* B, int odt, void* out) {
  const dim3 grid((unsigned)grid_x((n + R - 1) / R), (unsigned)((m + MT - 1) / MT));
  k_gemv4_exact<ADT, MT, R><<<grid, GV_THREADS>>>(a, m, k, P, n, AM, l, qt, B, odt, out);
}

template <int ADT>
void exact_by_m(const void* a, long long m, long long k, const uint8_t* P, long long n, const float* AM, int l, int qt,
                const float* B, int odt, void* out) {
  // rows of A per warp and rows of W per warp: acc is 4 * MT * R registers
  // Each thread reloads its chunk of every A row for each R rows of W: A traffic goes as M / R
  // (16 rows x 1 W row per warp made M = 16 read 16x the weight bytes of A from L2: 1.4 ms on
  // the H100), the weight's as M / MT; 4 x 4 balances them past M = 8.
  if (m == 1) launch_exact<ADT, 1, 4>(a, m, k, P, n, AM, l, qt, B, odt, out);
  else if (m == 2) launch_exact<ADT, 2, 4>(a, m, k, P, n, AM, l, qt, B, odt, out);
  else if (m <= 4) launch_exact<ADT, 4, 4>(a, m, k, P, n, AM, l, qt, B, odt, out);
  else if (m <= 8) launch_exact<ADT, 8, 2>(a, m, k, P, n, AM, l, qt, B, odt, out);
  else launch_exact<ADT, 4, 4>(a, m, k, P, n, AM, l, qt, B, odt, out);  // M > 8: groups of 4 rows (blockIdx.y)
}

void gemv_exact(const void* a, long long m, long long k, int adtype, const void* packed, long long n, const void* absmax, long long bs,
                int qtype, const void* bias, int dtype, void* out) {
  const int l = ilog2_exact(bs);
  const float* B = (const float*)bias;
  const uint8_t* P = (const uint8_t*)packed;
  const float* AM = (const float*)absmax;
  const bool fast = k > 0 && k % 32 == 0 && l >= 5 && aligned(packed, 16) && aligned(a, 16);
  if (fast) {
    if (adtype == DT_F32) exact_by_m<DT_F32>(a, m, k, P, n, AM, l, qtype, B, dtype, out);
    else if (adtype == DT_F16) exact_by_m<DT_F16>(a, m, k, P, n, AM, l, qtype, B, dtype, out);
    else exact_by_m<DT_BF16>(a, m, k, P, n, AM, l, qtype, B, dtype, out);
  } else {
    const dim3 grid((unsigned)std::min(grid_x(n), (long long)smCount() * 16), (unsigned)m);
    if (adtype == DT_F32) k_gemv4_generic<DT_F32><<<grid, GV_THREADS>>>(a, k, P, n, AM, bs, qtype, B, dtype, out);
    else if (adtype == DT_F16) k_gemv4_generic<DT_F16><<<grid, GV_THREADS>>>(a, k, P, n, AM, bs, qtype, B, dtype, out);
    else k_gemv4_generic<DT_BF16><<<grid, GV_THREADS>>>(a, k, P, n, AM, bs, qtype, B, dtype, out);
  }
  check_launch("gemv4bit kernel");
}

size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

bool cublas_enabled() {
  const char* e = getenv("BNBJS_GEMV_CUBLAS");
  return !(e != nullptr && e[0] == '0');
}

// M >= 64: dequantize + cuBLASLt. false when cuBLASLt is missing or has no algorithm (nothing written to out).
bool gemv_gemm(const void* a, long long m, long long k, int adtype, const void* packed, long long n, const void* absmax, long long bs,
               int qtype, const void* bias, int dtype, void* out) {
  const size_t wbytes = align256((size_t)n * (size_t)k * dtype_size(adtype));
  const bool direct = bias == nullptr && dtype == adtype;       // the GEMM writes out in A's dtype
  const bool inplace = !direct && dtype == DT_F32 && adtype == DT_F32;  // f32 out, then + bias in place
  const size_t dbytes = direct || inplace ? 0 : (size_t)m * (size_t)n * 4;
  char* s = static_cast<char*>(scratch(wbytes + dbytes));
  void* W = s;
  dequantize4bit(packed, n * k, bs, qtype, absmax, adtype, W);
  float* D = direct || inplace ? (float*)out : (float*)(s + wbytes);
  if (!ltGemm(a, W, adtype, m, k, n, direct ? out : (void*)D, direct ? adtype : (int)DT_F32)) return false;
  if (!direct) {
    const dim3 grid((unsigned)std::min<long long>((n + 255) / 256, 64), (unsigned)m);
    k_bias_round<<<grid, 256>>>(D, m, n, (const float*)bias, dtype, out);
    check_launch("gemv4bit bias kernel");
  }
  return true;
}

}  // namespace

void gemv4bit(const void* a, long long m, long long k, int adtype, const void* packed, long long n, const void* absmax,
              long long bs, int qtype, const void* bias, int dtype, void* out) {
  check_args("gemv4bit", a, m, k, adtype, n, absmax, bs, qtype, bias, dtype, out);
  if (m == 0 || n == 0) return;
  if (m >= 64 && k > 0 && cublas_enabled() && gemv_gemm(a, m, k, adtype, packed, n, absmax, bs, qtype, bias, dtype, out)) return;
  gemv_exact(a, m, k, adtype, packed, n, absmax, bs, qtype, bias, dtype, out);
}

void gemv4bitInt8(const void* a, long long m, long long k, int adtype, const void* packed, long long n, const void* absmax,
                  long long bs, int qtype, const void* bias, int dtype, void* out) {
  check_args("gemv4bitInt8", a, m, k, adtype, n, absmax, bs, qtype, bias, dtype, out);
  if (m == 0 || n == 0) return;
  const long long G = (k + GROUP - 1) / GROUP, Kp = G * GROUP;
  const size_t qbytes = align256((size_t)m * (size_t)std::max(Kp, 1LL));
  char* s = static_cast<char*>(scratch(qbytes + (size_t)m * (size_t)std::max(G, 1LL) * 4));
  int8_t* q8 = reinterpret_cast<int8_t*>(s);
  float* dq = reinterpret_cast<float*>(s + qbytes);
  if (G > 0) {
    const long long grid = std::min(grid_x(m * G), (long long)smCount() * 16);
    if (adtype == DT_F32) k_quant_act<DT_F32><<<(unsigned)grid, GV_THREADS>>>(a, m, k, G, Kp, q8, dq);
    else if (adtype == DT_F16) k_quant_act<DT_F16><<<(unsigned)grid, GV_THREADS>>>(a, m, k, G, Kp, q8, dq);
    else k_quant_act<DT_BF16><<<(unsigned)grid, GV_THREADS>>>(a, m, k, G, Kp, q8, dq);
    check_launch("gemv4bitInt8 quantize kernel");
  }
  const int l = ilog2_exact(bs);
  const float* B = (const float*)bias;
  const uint8_t* P = (const uint8_t*)packed;
  const float* AM = (const float*)absmax;
  const bool fast = k > 0 && k % 32 == 0 && l >= 5 && aligned(packed, 16);
  if (fast) {
    auto go = [&](auto kern, long long mt) {
      const dim3 grid((unsigned)grid_x(n), (unsigned)((m + mt - 1) / mt));
      kern<<<grid, GV_THREADS>>>(q8, dq, m, k, G, Kp, P, n, AM, l, qtype, B, dtype, out);
    };
    if (m == 1) go(k_gemv4_int8<1>, 1);
    else if (m == 2) go(k_gemv4_int8<2>, 2);
    else if (m <= 4) go(k_gemv4_int8<4>, 4);
    else if (m <= 8) go(k_gemv4_int8<8>, 8);
    else go(k_gemv4_int8<16>, 16);
  } else {
    const dim3 grid((unsigned)std::min(grid_x(n), (long long)smCount() * 16), (unsigned)m);
    k_gemv4_int8_generic<<<grid, GV_THREADS>>>(q8, dq, k, G, Kp, P, n, AM, bs, qtype, B, dtype, out);
  }
  check_launch("gemv4bitInt8 kernel");
}

}  // namespace bnb
