import { DT_F32, DT_BF16, storeFromF32, f32x4ToBf16, f32x4ToF16 } from "./convert";
import { NF4_LUT, FP4_LUT, QT_NF4 } from "./tables";
import { storeF32Planes, lookupF32x16, codesLow, codesHigh } from "./planes";

// Per-block byte planes of the 16 possible outputs dtype(code[q] * absmax), for
// i8x16.swizzle lookups: 2 planes (16-bit outputs) or 4 (f32).
const PLANES: usize = memory.data(64, 16);

@inline function buildPlanes(lut: usize, a: f32, dtype: i32): void {
  const av = f32x4.splat(a);
  let v0 = f32x4.mul(v128.load(lut), av);
  let v1 = f32x4.mul(v128.load(lut, 16), av);
  let v2 = f32x4.mul(v128.load(lut, 32), av);
  let v3 = f32x4.mul(v128.load(lut, 48), av);
  if (dtype == DT_F32) {
    const canon = i32x4.splat(0x7fffffff);
    v0 = v128.bitselect(canon, v0, f32x4.ne(v0, v0));
    v1 = v128.bitselect(canon, v1, f32x4.ne(v1, v1));
    v2 = v128.bitselect(canon, v2, f32x4.ne(v2, v2));
    v3 = v128.bitselect(canon, v3, f32x4.ne(v3, v3));
    storeF32Planes(v0, v1, v2, v3, PLANES);
  } else {
    let w0: v128, w1: v128;
    if (dtype == DT_BF16) {
      w0 = i16x8.narrow_i32x4_u(f32x4ToBf16(v0), f32x4ToBf16(v1));
      w1 = i16x8.narrow_i32x4_u(f32x4ToBf16(v2), f32x4ToBf16(v3));
    } else {
      w0 = i16x8.narrow_i32x4_u(f32x4ToF16(v0), f32x4ToF16(v1));
      w1 = i16x8.narrow_i32x4_u(f32x4ToF16(v2), f32x4ToF16(v3));
    }
    v128.store(PLANES, i8x16.shuffle(w0, w1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
    v128.store(PLANES, i8x16.shuffle(w0, w1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), 16);
  }
}

// 16 codes (one byte each) -> 16 outputs at dst.
@inline function emit16(idx: v128, dst: usize, dtype: i32): void {
  if (dtype == DT_F32) {
    lookupF32x16(PLANES, idx, dst, f32x4.splat(1), false);
  } else {
    const l = i8x16.swizzle(v128.load(PLANES), idx);
    const h = i8x16.swizzle(v128.load(PLANES, 16), idx);
    v128.store(dst, i8x16.shuffle(l, h, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
    v128.store(dst, i8x16.shuffle(l, h, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), 16);
  }
}

@inline function dequantizeImpl(
  packed: usize, n: i32, blocksize: i32, lut: usize, absmax: usize, dtype: i32, out: usize,
): void {
  const shift: usize = dtype == DT_F32 ? 2 : 1;
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const a = load<f32>(absmax + (<usize>b << 2));
    let i = start;
    if (ASC_FEATURE_SIMD) {
      buildPlanes(lut, a, dtype);
      for (; i + 32 <= end; i += 32) {
        const bytes = v128.load(packed + (i >> 1));
        emit16(codesLow(bytes), out + (<usize>i << shift), dtype);
        emit16(codesHigh(bytes), out + (<usize>(i + 16) << shift), dtype);
      }
    }
    // The scalar oracle: one product and one conversion per element, as CUDA does.
    for (; i < end; i++) {
      const byte = <u32>load<u8>(packed + (i >> 1));
      const q = (i & 1) == 0 ? byte >> 4 : byte & 15;
      storeFromF32(out, i, load<f32>(lut + (q << 2)) * a, dtype);
    }
  }
}

// out[i] = dtype(code[q_i] * absmax[i / blocksize]) for i in [0, n).
export function dequantize4bit(
  packed: usize, n: i32, blocksize: i32, qtype: i32, absmax: usize, dtype: i32, out: usize,
): void {
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  if (dtype == DT_F32) dequantizeImpl(packed, n, blocksize, lut, absmax, DT_F32, out);
  else if (dtype == DT_BF16) dequantizeImpl(packed, n, blocksize, lut, absmax, DT_BF16, out);
  else dequantizeImpl(packed, n, blocksize, lut, absmax, 1, out);
}
