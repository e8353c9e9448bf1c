import { loadAsF32, loadF32x4, DT_F32, DT_F16 } from "./convert";
import { blockScale } from "./absmax";
import {
  QT_NF4,
  NF4_T0, NF4_T1, NF4_T2, NF4_T3, NF4_T4, NF4_T5, NF4_T6, NF4_T7,
  NF4_T8, NF4_T9, NF4_T10, NF4_T11, NF4_T12, NF4_T13, NF4_T14,
  FP4_T0, FP4_T1, FP4_T2, FP4_T3, FP4_T4, FP4_T5, FP4_T6,
} from "./tables";

// The scalar oracle follows CUDA's dQuantizeNF4 decision tree literally.
@inline function nf4Code(x: f32): u32 {
  if (x > NF4_T7) {
    if (x > NF4_T11) {
      if (x > NF4_T13) return x > NF4_T14 ? 15 : 14;
      return x > NF4_T12 ? 13 : 12;
    }
    if (x > NF4_T9) return x > NF4_T10 ? 11 : 10;
    return x > NF4_T8 ? 9 : 8;
  }
  if (x > NF4_T3) {
    if (x > NF4_T5) return x > NF4_T6 ? 7 : 6;
    return x > NF4_T4 ? 5 : 4;
  }
  if (x > NF4_T1) return x > NF4_T2 ? 3 : 2;
  return x > NF4_T0 ? 1 : 0;
}

// CUDA's dQuantizeFP4: sign bit, then a tree over |x|.
@inline function fp4Code(x: f32): u32 {
  const sign: u32 = x < 0 ? 8 : 0;
  const a = Mathf.abs(x);
  if (a > FP4_T3) {
    if (a > FP4_T5) return sign | (a > FP4_T6 ? 0b011 : 0b010);
    return sign | (a > FP4_T4 ? 0b101 : 0b100);
  }
  if (a > FP4_T1) return sign | (a > FP4_T2 ? 0b111 : 0b110);
  return sign | (a > FP4_T0 ? 0b001 : 0b000);
}

@inline function code4(x: f32, qtype: i32): u32 {
  return qtype == QT_NF4 ? nf4Code(x) : fp4Code(x);
}

@inline function gtCount(c: v128, s: v128, t: f32): v128 {
  return i32x4.sub(c, f32x4.gt(s, f32x4.splat(t)));
}

// SIMD: the NF4 code as a count of thresholds below s (same rule as the tree).
@inline function nf4x4(s: v128): v128 {
  let c = i32x4.splat(0);
  c = gtCount(c, s, NF4_T0); c = gtCount(c, s, NF4_T1); c = gtCount(c, s, NF4_T2);
  c = gtCount(c, s, NF4_T3); c = gtCount(c, s, NF4_T4); c = gtCount(c, s, NF4_T5);
  c = gtCount(c, s, NF4_T6); c = gtCount(c, s, NF4_T7); c = gtCount(c, s, NF4_T8);
  c = gtCount(c, s, NF4_T9); c = gtCount(c, s, NF4_T10); c = gtCount(c, s, NF4_T11);
  c = gtCount(c, s, NF4_T12); c = gtCount(c, s, NF4_T13); c = gtCount(c, s, NF4_T14);
  return c;
}

// SIMD: FP4 as (count of magnitude thresholds below |s|) + 8 if s < 0; the
// caller maps that 0..15 index to the code with one swizzle.
@inline function fp4x4(s: v128): v128 {
  const a = f32x4.abs(s);
  let c = v128.and(f32x4.lt(s, f32x4.splat(0)), i32x4.splat(8));
  c = gtCount(c, a, FP4_T0); c = gtCount(c, a, FP4_T1); c = gtCount(c, a, FP4_T2);
  c = gtCount(c, a, FP4_T3); c = gtCount(c, a, FP4_T4); c = gtCount(c, a, FP4_T5);
  c = gtCount(c, a, FP4_T6);
  return c;
}

@inline function codes4x4(s: v128, qtype: i32): v128 {
  return qtype == QT_NF4 ? nf4x4(s) : fp4x4(s);
}

// 32 elements starting at i -> 16 packed bytes at dst (first element in the high nibble).
@inline function pack32(src: usize, i: usize, dtype: i32, r: v128, qtype: i32, dst: usize): void {
  const c0 = codes4x4(f32x4.mul(loadF32x4(src, i, dtype), r), qtype);
  const c1 = codes4x4(f32x4.mul(loadF32x4(src, i + 4, dtype), r), qtype);
  const c2 = codes4x4(f32x4.mul(loadF32x4(src, i + 8, dtype), r), qtype);
  const c3 = codes4x4(f32x4.mul(loadF32x4(src, i + 12, dtype), r), qtype);
  const c4 = codes4x4(f32x4.mul(loadF32x4(src, i + 16, dtype), r), qtype);
  const c5 = codes4x4(f32x4.mul(loadF32x4(src, i + 20, dtype), r), qtype);
  const c6 = codes4x4(f32x4.mul(loadF32x4(src, i + 24, dtype), r), qtype);
  const c7 = codes4x4(f32x4.mul(loadF32x4(src, i + 28, dtype), r), qtype);
  let x = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(c0, c1), i16x8.narrow_i32x4_s(c2, c3));
  let y = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(c4, c5), i16x8.narrow_i32x4_s(c6, c7));
  if (qtype != QT_NF4) {
    // count+sign index -> FP4 code bits
    const map = v128(0, 1, 6, 7, 4, 5, 2, 3, 8, 9, 14, 15, 12, 13, 10, 11);
    x = i8x16.swizzle(map, x);
    y = i8x16.swizzle(map, y);
  }
  const even = i8x16.shuffle(x, y, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const odd = i8x16.shuffle(x, y, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  v128.store(dst, v128.or(i8x16.shl(even, 4), odd));
}

// Quantizes src[0..n) (n may be odd only for the last chunk of a tensor) into
// ceil(n/2) packed bytes and ceil(n/blocksize) f32 absmax values.
@inline function quantizeImpl(
  src: usize, n: i32, dtype: i32, blocksize: i32, qtype: i32, packed: usize, absmax: usize,
): void {
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const r = blockScale(src, b, blocksize, n, dtype, absmax);
    let i = start;
    if (ASC_FEATURE_SIMD) {
      const rv = f32x4.splat(r);
      for (; i + 32 <= end; i += 32) pack32(src, i, dtype, rv, qtype, packed + (i >> 1));
    }
    for (; i < end; i += 2) {
      const hi = code4(loadAsF32(src, i, dtype) * r, qtype);
      // An odd tensor's last byte pads with the code of 0 (0 * r: NaN when r is inf).
      const lo = i + 1 < end ? code4(loadAsF32(src, i + 1, dtype) * r, qtype) : code4(<f32>0 * r, qtype);
      store<u8>(packed + (i >> 1), <u8>((hi << 4) | lo));
    }
  }
}

export function quantize4bit(
  src: usize, n: i32, dtype: i32, blocksize: i32, qtype: i32, packed: usize, absmax: usize,
): void {
  // Specialise the loop per input dtype and quant type.
  if (qtype == QT_NF4) {
    if (dtype == DT_F32) quantizeImpl(src, n, DT_F32, blocksize, QT_NF4, packed, absmax);
    else if (dtype == DT_F16) quantizeImpl(src, n, DT_F16, blocksize, QT_NF4, packed, absmax);
    else quantizeImpl(src, n, 2, blocksize, QT_NF4, packed, absmax);
  } else {
    if (dtype == DT_F32) quantizeImpl(src, n, DT_F32, blocksize, 0, packed, absmax);
    else if (dtype == DT_F16) quantizeImpl(src, n, DT_F16, blocksize, 0, packed, absmax);
    else quantizeImpl(src, n, 2, blocksize, 0, packed, absmax);
  }
}
