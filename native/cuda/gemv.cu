// 4-bit GEMV: out[i, j] = sum_t A[i, t] W[j, t] (+ bias[j]), W row j = flat nibbles
// [j*k, (j+1)*k) of the packed weight, decoded as code[q] with the block's absmax.
// f32 accumulation; not bit-identical with the WebAssembly order (the absmax is
// applied once per 32-element chunk, products are fused), well inside bitsandbytes'
// test_gemv_4bit bars (the check script compares with a float64 reference).
//
// Fast path (k % 32 == 0, blocksize a power of two >= 32, aligned pointers): each warp
// owns R = 4 weight rows at a time (8 for 4096 < k <= 8192); lane l reads 16 bytes (32 weights) of each row per
// step, chunks l, l+32, ..., with the next step's weights loaded before the current
// step is computed. The 16-entry code table sits in shared memory (16 distinct banks).
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

template <int DT>
__device__ __forceinline__ void store_out(void* out, size_t i, float v) { store_from_f32<DT>(out, i, v); }

__device__ __forceinline__ void store_any(void* out, size_t i, float v, int dt) {
  if (dt == DT_F32) store_out<DT_F32>(out, i, v);
  else if (dt == DT_F16) store_out<DT_F16>(out, i, v);
  else store_out<DT_BF16>(out, i, v);
}

// A CTA of 256 threads is split into slices of T threads (T = nch rounded up to a power
// of two, at most 256; nch = k / 32 chunks of 32 weights per row). A slice owns R rows
// at a time: thread t handles chunks t, t + T, ... of each row. With nch <= T each
// thread's 32 inputs stay in registers for every row group; the kernel is sized for
// three CTAs per multiprocessor, whose loads overlap. Rows are reduced CTA-wide in a
// fixed order.
template <int ADT, int T, bool SINGLE, int MINB, int GV_R = 4>
__global__ void __launch_bounds__(GV_THREADS, MINB) k_gemv4(const void* __restrict__ A, long long k, const uint8_t* __restrict__ packed,
                                                     long long n, const float* __restrict__ absmax, int bsLog2, int qt,
                                                     const float* __restrict__ bias, int odt, void* __restrict__ out) {
  constexpr int S = GV_THREADS / T;   // slices per CTA
  constexpr int WPS = T / 32;         // warps per slice
  __shared__ float lut[16];
  __shared__ float red[2][GV_THREADS / 32][GV_R];
  if (threadIdx.x < 16) lut[threadIdx.x] = __uint_as_float(qt == QT_NF4 ? kNf4Lut[threadIdx.x] : kFp4Lut[threadIdx.x]);
  __syncthreads();
  const int slice = threadIdx.x / T, t = threadIdx.x % T, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const long long i = blockIdx.y;  // row of A
  const long long nch = k / 32;
  const long long ngroups = (n + GV_R - 1) / GV_R;
  const long long gstride = (long long)gridDim.x * S;
  const size_t aoff = (size_t)i * k;

  auto load_w = [&](long long g, long long ch, uint4 w[GV_R], float am[GV_R]) {
#pragma unroll
    for (int r = 0; r < GV_R; r++) {
      long long j = g * GV_R + r;
      j = j < n ? j : n - 1;  // rows past n repeat the last (results dropped)
      const size_t flat = (size_t)j * k + (size_t)ch * 32;
      w[r] = __ldcs(reinterpret_cast<const uint4*>(packed + flat / 2));
      am[r] = __ldg(absmax + (flat >> bsLog2));
    }
  };

  float a[SINGLE ? 32 : 1];  // SINGLE (nch <= T): at most one chunk per thread, its inputs kept here
  uint4 wv[SINGLE ? GV_R : 1];
  float am[SINGLE ? GV_R : 1];
  long long g = (long long)blockIdx.x * S + slice;
  if constexpr (SINGLE) {
    if (t < nch) load_a32<ADT>(A, aoff + (size_t)t * 32, a);
  }
  int parity = 0;
  for (long long base = (long long)blockIdx.x * S; base < ngroups; base += gstride, g += gstride) {
    float acc[GV_R];
#pragma unroll
    for (int r = 0; r < GV_R; r++) acc[r] = 0.0f;
    if (g < ngroups) {
      if constexpr (SINGLE) {
        if (t < nch) {
          // no prefetch: the occupancy (MINB CTAs per multiprocessor) hides the latency
          load_w(g, t, wv, am);
#pragma unroll
          for (int r = 0; r < GV_R; r++) acc[r] = __fmul_rn(dot32(wv[r], a, lut), am[r]);
        }
      } else {
        long long ch = t;
        uint4 w0[GV_R];
        float a0[GV_R];
        load_w(g, ch, w0, a0);
        while (ch < nch) {
          uint4 w1[GV_R];
          float a1[GV_R];
          const long long nx = ch + T;
          if (nx < nch) load_w(g, nx, w1, a1);
          float x[32];
          load_a32<ADT>(A, aoff + (size_t)ch * 32, x);
#pragma unroll
          for (int r = 0; r < GV_R; r++) acc[r] = __fmaf_rn(dot32(w0[r], x, lut), a0[r], acc[r]);
#pragma unroll
          for (int r = 0; r < GV_R; r++) {
            w0[r] = w1[r];
            a0[r] = a1[r];
          }
          ch = nx;
        }
      }
    }
    // reduce: warp butterfly, then the slice's warps in a fixed order
#pragma unroll
    for (int r = 0; r < GV_R; r++) {
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) acc[r] = __fadd_rn(acc[r], __shfl_xor_sync(0xffffffffu, acc[r], off));
    }
    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < GV_R; r++) red[parity][warp][r] = acc[r];
    }
    __syncthreads();
    if (t < GV_R && g < ngroups) {
      const long long j = g * GV_R + t;
      if (j < n) {
        float s = red[parity][slice * WPS][t];
#pragma unroll
        for (int w = 1; w < WPS; w++) s = __fadd_rn(s, red[parity][slice * WPS + w][t]);
        if (bias != nullptr) s = __fadd_rn(s, bias[j]);
        store_any(out, (size_t)i * n + j, s, odt);
      }
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
  if (fast) {
    const long long nch = k / 32;
    const int T = nch <= 32 ? 32 : nch <= 64 ? 64 : nch <= 128 ? 128 : 256;
    const bool single = nch <= 256;
    // rows per group: 8 for one 256-thread slice per row (measured on an H100 at k = 8192:
    // 2240 against 2124 GB/s with 4; 2 and 1 were slower), else 4
    const int R = single && T == 256 ? 8 : 4;
    const long long S = GV_THREADS / T, ngroups = (n + R - 1) / R;
    const void* kern = nullptr;
#define GV_PICK2(TT, SG, PP, RR)                                                                                  \
  kern = adtype == DT_F32   ? (const void*)k_gemv4<DT_F32, TT, SG, PP, RR>                                                \
         : adtype == DT_F16 ? (const void*)k_gemv4<DT_F16, TT, SG, PP, RR>                                                \
                            : (const void*)k_gemv4<DT_BF16, TT, SG, PP, RR>;
    // single chunk per thread: sized for 3 CTAs per multiprocessor (measured on an H100
    // against 2 with a register prefetch of the next rows, and 4); more chunks: 2
    if (!single) { GV_PICK2(256, false, 2, 4) } else if (T == 32) { GV_PICK2(32, true, 3, 4) } else if (T == 64) { GV_PICK2(64, true, 3, 4) }
    else if (T == 128) { GV_PICK2(128, true, 3, 4) } else { GV_PICK2(256, true, 3, 8) }
#undef GV_PICK2
    const long long want = (ngroups + S - 1) / S;
    const long long cap = std::max(1LL, (long long)smCount() * occupancy(kern, GV_THREADS, 0) / m);
    dim3 grid((unsigned)std::max(1LL, std::min(want, cap)), (unsigned)m);
#define GV_LAUNCH2(TT, SG, PP, RR)                                                                                      \
  if (adtype == DT_F32) k_gemv4<DT_F32, TT, SG, PP, RR><<<grid, GV_THREADS>>>(a, k, P, n, AM, l, qtype, B, dtype, out);       \
  else if (adtype == DT_F16) k_gemv4<DT_F16, TT, SG, PP, RR><<<grid, GV_THREADS>>>(a, k, P, n, AM, l, qtype, B, dtype, out);  \
  else k_gemv4<DT_BF16, TT, SG, PP, RR><<<grid, GV_THREADS>>>(a, k, P, n, AM, l, qtype, B, dtype, out);
    if (!single) { GV_LAUNCH2(256, false, 2, 4) } else if (T == 32) { GV_LAUNCH2(32, true, 3, 4) } else if (T == 64) { GV_LAUNCH2(64, true, 3, 4) }
    else if (T == 128) { GV_LAUNCH2(128, true, 3, 4) } else { GV_LAUNCH2(256, true, 3, 8) }
#undef GV_LAUNCH2
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
