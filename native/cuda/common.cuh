// Device helpers shared by the kernels: the conversions of assembly/convert.ts, the
// reciprocal of assembly/rcp.ts, the 4-bit tables of assembly/tables.ts, and the
// launch/error plumbing. Every product and sum that the WebAssembly reference rounds
// on its own is written with __fmul_rn/__fadd_rn (and the build uses -fmad=false).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string>
#include "errors.h"
#include "kernels.h"
#include "rcp_table.cuh"

namespace bnb {

// DT_* and QT_*: kernels.gen.h (the ids of src/backend/abi.ts)

// ---- f16 / bf16 <-> f32 (assembly/convert.ts, integer forms) ----

__device__ __forceinline__ float f16_to_f32(uint32_t h) {
  const uint32_t em = h & 0x7fffu;
  // exponent+mantissa placed in an f32 and rescaled by 2^112: exact for normals
  // and subnormals (no flush to zero in this build)
  const uint32_t finite = __float_as_uint(__fmul_rn(__uint_as_float(em << 13), __uint_as_float(0x77800000u)));
  const uint32_t special = 0x7f800000u | ((em & 0x3ffu) << 13);
  return __uint_as_float((em >= 0x7c00u ? special : finite) | ((h & 0x8000u) << 16));
}

// The hardware widening (exact for every non-NaN value; NaN payloads may differ):
// for inputs whose NaNs are only ever dropped or coded as 0.
__device__ __forceinline__ float f16_to_f32_hw(uint32_t h) { return __half2float(__ushort_as_half((unsigned short)h)); }

__device__ __forceinline__ float bf16_to_f32(uint32_t h) { return __uint_as_float(h << 16); }

__device__ __forceinline__ uint32_t f32_to_bf16(float f) {
  const uint32_t b = __float_as_uint(f);
  const uint32_t r = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
  return (b & 0x7fffffffu) > 0x7f800000u ? 0x7fffu : r;
}

__device__ __forceinline__ uint32_t f32_to_f16(float f) {
  const uint32_t b = __float_as_uint(f);
  const uint32_t ax = b & 0x7fffffffu;
  const uint32_t sign = (b >> 16) & 0x8000u;
  uint32_t r;
  if (ax < 0x38800000u) {
    // f16 subnormal range: adding 0.5 leaves the bits at 2^-24 spacing, RNE by the FPU
    r = __float_as_uint(__fadd_rn(__uint_as_float(ax), 0.5f)) - 0x3f000000u;
  } else {
    r = (ax + 0xc8000fffu + ((ax >> 13) & 1u)) >> 13;
  }
  if (ax >= 0x477ff000u) r = 0x7c00u;  // rounds to infinity (>= 65520)
  r |= sign;
  return ax > 0x7f800000u ? 0x7fffu : r;
}

// storeFromF32: f32 NaN becomes 0x7fffffff; 16-bit conversions as above.
__device__ __forceinline__ uint32_t f32_canon(float v) {
  return v != v ? 0x7fffffffu : __float_as_uint(v);
}

template <int DT>
__device__ __forceinline__ float load_as_f32(const void* p, size_t i) {
  if (DT == DT_F32) return static_cast<const float*>(p)[i];
  const uint32_t h = static_cast<const uint16_t*>(p)[i];
  return DT == DT_BF16 ? bf16_to_f32(h) : f16_to_f32_hw(h);
}

template <int DT>
__device__ __forceinline__ uint32_t to_bits16(float v) {
  return DT == DT_BF16 ? f32_to_bf16(v) : f32_to_f16(v);
}

template <int DT>
__device__ __forceinline__ void store_from_f32(void* p, size_t i, float v) {
  if (DT == DT_F32) static_cast<uint32_t*>(p)[i] = f32_canon(v);
  else static_cast<uint16_t*>(p)[i] = (uint16_t)to_bits16<DT>(v);
}

// Two 16-bit results packed in one word (first at the lower address).
template <int DT>
__device__ __forceinline__ uint32_t pack2(float a, float b) {
  return to_bits16<DT>(a) | (to_bits16<DT>(b) << 16);
}

// Loads 8 consecutive elements (16-byte aligned for 16-bit dtypes, 32 for f32) as f32
// (f16 through the hardware widening: quantization drops NaN or codes it as 0).
template <int DT>
__device__ __forceinline__ void load8(const void* src, size_t i, float x[8]) {
  if (DT == DT_F32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(src) + i);
    const float4 a = __ldcs(p), b = __ldcs(p + 1);
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w;
    x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
  } else {
    const uint4 v = __ldcs(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(src) + i));
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
      if (DT == DT_BF16) {
        x[2 * j] = __uint_as_float(w[j] << 16);
        x[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
      } else {
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[j]));
        x[2 * j] = f.x;
        x[2 * j + 1] = f.y;
      }
    }
  }
}

// Up to 8 elements [i, min(i+8, n)), zeros beyond n (CUDA's tail padding).
template <int DT>
__device__ __forceinline__ void load8_tail(const void* src, size_t i, size_t n, float x[8]) {
#pragma unroll
  for (int j = 0; j < 8; j++) x[j] = i + j < n ? load_as_f32<DT>(src, i + j) : 0.0f;
}

// ---- the reciprocal bitsandbytes' CUDA kernels use for 1.0f / absmax (assembly/rcp.ts) ----

__device__ __forceinline__ float cuda_rcp(float amax) {
  const uint32_t b = __float_as_uint(amax);
  const uint32_t e = (b >> 23) & 0xffu;
  const uint32_t mant = b & 0x7fffffu;
  if (e == 0) return amax < 0.0f ? -__int_as_float(0x7f800000) : __int_as_float(0x7f800000);
  if (e == 255 && mant != 0) return amax;  // NaN
  if (e > 253 || (e == 253 && mant != 0)) return amax < 0.0f ? -0.0f : 0.0f;
  const float r = __frcp_rn(amax);
  if ((b & 0x1fffu) != 0) return r;
  return __uint_as_float(__float_as_uint(r) + (uint32_t)(int32_t)__ldg(&kRcpDelta[(b >> 13) & 0x3ffu]));
}

// ---- 4-bit tables (assembly/tables.ts), as f32 bit patterns ----

// Decode tables by code; FP4 code 8 is -0.0 as in CUDA's LUT.
static __constant__ const uint32_t kNf4Lut[16] = {
  0xbf800000u, 0xbf3239b1u, 0xbf066b30u, 0xbeca32a0u, 0xbe91a24du, 0xbe3d353fu, 0xbdba7871u, 0x00000000u,
  0x3da2faffu, 0x3e24cae3u, 0x3e7c04ddu, 0x3ead033au, 0x3ee1a4b8u, 0x3f1007abu, 0x3f3913b3u, 0x3f800000u,
};
static __constant__ const uint32_t kFp4Lut[16] = {
  0x00000000u, 0x3baaaaabu, 0x3f2aaaabu, 0x3f800000u, 0x3eaaaaabu, 0x3f000000u, 0x3e2aaaabu, 0x3e800000u,
  0x80000000u, 0xbbaaaaabu, 0xbf2aaaabu, 0xbf800000u, 0xbeaaaaabu, 0xbf000000u, 0xbe2aaaabu, 0xbe800000u,
};
// NF4 thresholds T0..T14 (the f32 values of dQuantizeNF4's literals), code = #{j : s > T_j}.
static __constant__ const uint32_t kNf4Thr[16] = {
  0xbf591cd9u, 0xbf1c5270u, 0xbeeb8480u, 0xbeadea76u, 0xbe703cecu, 0xbe0d38bcu, 0xbd3a7871u, 0x3d22faffu,
  0x3df64863u, 0x3e5067e0u, 0x3e9582d4u, 0x3ec753f9u, 0x3f006d03u, 0x3f248dafu, 0x3f5c89d9u, 0x7f800000u,
};
// FP4 magnitude thresholds T0..T6 (dQuantizeFP4 literals).
static __constant__ const uint32_t kFp4Thr[8] = {
  0x3b2aaab9u, 0x3db00000u, 0x3e555555u, 0x3e955555u, 0x3ed55556u, 0x3f155550u, 0x3f555555u, 0x7f800000u,
};

// ---- launch helpers ----

inline void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_cuda(e, what);
}

inline bool aligned(const void* p, size_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

inline size_t dtype_size(int dtype) { return dtype == DT_F32 ? 4 : 2; }

// Typed pointers must be aligned to their element size (a misaligned access would
// poison the CUDA context); throws a plain Error instead.
inline void need_align(const void* p, size_t a, const char* fn, const char* what) {
  if (!aligned(p, a)) throw_arg(std::string(fn) + ": " + what + " must be aligned to " + std::to_string(a) + " bytes");
}

inline int ilog2_exact(long long v) {  // log2 of a power of two, else -1
  if (v <= 0 || (v & (v - 1)) != 0) return -1;
  int l = 0;
  while ((1LL << l) < v) l++;
  return l;
}

}  // namespace bnb
