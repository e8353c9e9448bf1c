// FP8 (e4m3fn) block dequantization, bit-identical with assembly/fp8.ts:
// out[i, j] = dtype(f32(W[i, j]) * scale[(row0 + i) / blockRows, j / blockCols]).
#include <algorithm>
#include "common.cuh"

namespace bnb {

namespace {

__device__ __forceinline__ float e4m3_to_f32(uint32_t b) {
  const uint32_t em = b & 0x7fu;
  // the 7 exponent+mantissa bits placed in an f32 and rescaled by 2^120 (exact)
  const float v = em == 0x7fu ? __uint_as_float(0x7fc00000u) : __fmul_rn(__uint_as_float(em << 20), __uint_as_float(0x7b800000u));
  return __uint_as_float(__float_as_uint(v) | ((b & 0x80u) << 24));
}

// One 16-byte store per thread step (8 outputs of 16 bits or 4 of f32), consecutive
// threads at consecutive addresses; needs cols and blockCols multiples of that count.
template <int DT>
__global__ void __launch_bounds__(256) k_fp8_vec(const uint8_t* __restrict__ w, long long rows, long long cols, long long row0,
                                                const float* __restrict__ scale, long long scaleCols, long long blockRows,
                                                long long blockCols, void* __restrict__ out) {
  constexpr int E = DT == DT_F32 ? 4 : 8;
  const long long nv = rows * cols / E;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long v = (long long)blockIdx.x * blockDim.x + threadIdx.x; v < nv; v += stride) {
    uint2 x;
    if (DT == DT_F32) x = make_uint2(__ldcs(reinterpret_cast<const unsigned int*>(w) + v), 0u);
    else x = __ldcs(reinterpret_cast<const uint2*>(w) + v);
    const long long i = (v * E) / cols, j = v * E - i * cols;
    const float f = __ldg(scale + ((row0 + i) / blockRows) * scaleCols + j / blockCols);
    float e[E];
#pragma unroll
    for (int q = 0; q < E; q++) e[q] = __fmul_rn(e4m3_to_f32(((q < 4 ? x.x : x.y) >> (8 * (q & 3))) & 0xffu), f);
    if (DT == DT_F32) {
      __stcs(reinterpret_cast<uint4*>(out) + v, make_uint4(f32_canon(e[0]), f32_canon(e[1]), f32_canon(e[2]), f32_canon(e[3])));
    } else {
      __stcs(reinterpret_cast<uint4*>(out) + v,
             make_uint4(pack2<DT>(e[0], e[1]), pack2<DT>(e[2], e[3]), pack2<DT>(e[4], e[5]), pack2<DT>(e[6], e[7])));
    }
  }
}

template <int DT>
__global__ void k_fp8_generic(const uint8_t* w, long long rows, long long cols, long long row0, const float* scale, long long scaleCols,
                              long long blockRows, long long blockCols, void* out) {
  const long long n = rows * cols;
  for (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; p < n; p += (long long)gridDim.x * blockDim.x) {
    const long long i = p / cols, j = p - i * cols;
    const float f = scale[((row0 + i) / blockRows) * scaleCols + j / blockCols];
    store_from_f32<DT>(out, (size_t)p, __fmul_rn(e4m3_to_f32(w[p]), f));
  }
}

}  // namespace

void dequantizeFp8(const void* w, long long rows, long long cols, long long row0, const void* scale, long long scaleCols,
                   long long blockRows, long long blockCols, int dtype, void* out) {
  if (rows < 0 || cols < 0 || row0 < 0) throw_arg("dequantizeFp8: rows, cols and row0 must be non-negative");
  if (blockRows <= 0 || blockCols <= 0) throw_arg("dequantizeFp8: blockRows and blockCols must be positive");
  if (dtype < 0 || dtype > 2) throw_arg("dequantizeFp8: dtype must be 0, 1 or 2");
  need_align(scale, 4, "dequantizeFp8", "scale");
  need_align(out, dtype_size(dtype), "dequantizeFp8", "out");
  if (rows == 0 || cols == 0) return;
  const long long E = dtype == DT_F32 ? 4 : 8;
  const bool vec = cols % E == 0 && blockCols % E == 0 && aligned(w, (size_t)E) && aligned(out, 16);
  const long long items = vec ? rows * cols / E : rows * cols;
  const int grid = (int)std::max(1LL, std::min((items + 255) / 256, (long long)smCount() * 8));
  const uint8_t* W = (const uint8_t*)w;
  const float* S = (const float*)scale;
  if (vec) {
    if (dtype == DT_F32) k_fp8_vec<DT_F32><<<grid, 256>>>(W, rows, cols, row0, S, scaleCols, blockRows, blockCols, out);
    else if (dtype == DT_F16) k_fp8_vec<DT_F16><<<grid, 256>>>(W, rows, cols, row0, S, scaleCols, blockRows, blockCols, out);
    else k_fp8_vec<DT_BF16><<<grid, 256>>>(W, rows, cols, row0, S, scaleCols, blockRows, blockCols, out);
  } else {
    if (dtype == DT_F32) k_fp8_generic<DT_F32><<<grid, 256>>>(W, rows, cols, row0, S, scaleCols, blockRows, blockCols, out);
    else if (dtype == DT_F16) k_fp8_generic<DT_F16><<<grid, 256>>>(W, rows, cols, row0, S, scaleCols, blockRows, blockCols, out);
    else k_fp8_generic<DT_BF16><<<grid, 256>>>(W, rows, cols, row0, S, scaleCols, blockRows, blockCols, out);
  }
  check_launch("dequantizeFp8 kernel");
}

}  // namespace bnb
