import { DT_F32, storeFromF32, f32x8To16 } from "./convert";

// float8_e4m3fn -> f32, exact: the 7 exponent+mantissa bits placed in an f32 and
// rescaled by 2^120 (normals and subnormals alike); S.1111.111 is NaN.
@inline function e4m3ToF32(b: u32): f32 {
  const em = b & 0x7f;
  const v = em == 0x7f ? NaN : reinterpret<f32>(em << 20) * reinterpret<f32>(<u32>0x7b800000);
  return reinterpret<f32>(reinterpret<u32>(<f32>v) | ((b & 0x80) << 24));
}

@inline function e4m3x4ToF32(b: v128): v128 {
  const em = v128.and(b, i32x4.splat(0x7f));
  const v = f32x4.mul(i32x4.shl(em, 20), f32x4.splat(reinterpret<f32>(<u32>0x7b800000)));
  const nan = v128.bitselect(f32x4.splat(NaN), v, i32x4.eq(em, i32x4.splat(0x7f)));
  return v128.or(nan, i32x4.shl(v128.and(b, i32x4.splat(0x80)), 24));
}

// 16 weights -> 16 outputs dtype(w * f).
@inline function emit16(w: usize, f: v128, dtype: i32, dst: usize): void {
  const bytes = v128.load(w);
  const lo = i16x8.extend_low_i8x16_u(bytes), hi = i16x8.extend_high_i8x16_u(bytes);
  const v0 = f32x4.mul(e4m3x4ToF32(i32x4.extend_low_i16x8_u(lo)), f);
  const v1 = f32x4.mul(e4m3x4ToF32(i32x4.extend_high_i16x8_u(lo)), f);
  const v2 = f32x4.mul(e4m3x4ToF32(i32x4.extend_low_i16x8_u(hi)), f);
  const v3 = f32x4.mul(e4m3x4ToF32(i32x4.extend_high_i16x8_u(hi)), f);
  if (dtype == DT_F32) {
    const canon = i32x4.splat(0x7fffffff);
    v128.store(dst, v128.bitselect(canon, v0, f32x4.ne(v0, v0)));
    v128.store(dst, v128.bitselect(canon, v1, f32x4.ne(v1, v1)), 16);
    v128.store(dst, v128.bitselect(canon, v2, f32x4.ne(v2, v2)), 32);
    v128.store(dst, v128.bitselect(canon, v3, f32x4.ne(v3, v3)), 48);
  } else {
    v128.store(dst, f32x8To16(v0, v1, dtype));
    v128.store(dst, f32x8To16(v2, v3, dtype), 16);
  }
}

// out[i, j] = dtype(f32(W[i, j]) * scale[(row0 + i) / blockRows, j / blockCols]) for
// `rows` rows of `cols` e4m3fn weights. The scales arrive already rounded to dtype.
export function dequantizeFp8(
  w: usize, rows: i32, cols: i32, row0: i32, scale: usize, scaleCols: i32, blockRows: i32, blockCols: i32,
  dtype: i32, out: usize,
): void {
  const shift: usize = dtype == DT_F32 ? 2 : 1;
  for (let i = 0; i < rows; i++) {
    const srow = scale + ((<usize>((row0 + i) / blockRows) * scaleCols) << 2);
    const wrow = w + <usize>i * cols;
    const orow = out + ((<usize>i * cols) << shift);
    for (let j0 = 0; j0 < cols; j0 += blockCols) {
      const j1 = min(j0 + blockCols, cols);
      const f = load<f32>(srow + (<usize>(j0 / blockCols) << 2));
      let j = j0;
      if (ASC_FEATURE_SIMD) {
        const fv = f32x4.splat(f);
        for (; j + 16 <= j1; j += 16) emit16(wrow + j, fv, dtype, orow + (<usize>j << shift));
      }
      for (; j < j1; j++) storeFromF32(orow, j, e4m3ToF32(<u32>load<u8>(wrow + j)) * f, dtype);
    }
  }
}
