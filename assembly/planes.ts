// 16-entry f32 lookup tables held as 4 byte planes, so that i8x16.swizzle can
// look up 16 indices at once (the 4-bit decoders of dequantize4bit and gemv4bit).
import { lut16 } from './lut16';

// Stores the 16 f32 of v0..v3 as 4 byte planes (plane p holds byte p of each value).
@inline export function storeF32Planes(v0: v128, v1: v128, v2: v128, v3: v128, dst: usize): void {
  const t0 = i8x16.shuffle(v0, v1, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const t1 = i8x16.shuffle(v0, v1, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const t2 = i8x16.shuffle(v2, v3, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const t3 = i8x16.shuffle(v2, v3, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  v128.store(dst, i8x16.shuffle(t0, t2, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23));
  v128.store(dst, i8x16.shuffle(t0, t2, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), 16);
  v128.store(dst, i8x16.shuffle(t1, t3, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), 32);
  v128.store(dst, i8x16.shuffle(t1, t3, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), 48);
}

// Looks up 16 indices (0..15, one per byte) in the planes p0..p3 and stores the 16
// f32 results at dst, multiplied by `scale` when `scaled` (a compile-time constant).
@inline export function lookupF32x16In(p0: v128, p1: v128, p2: v128, p3: v128, idx: v128, dst: usize, scale: v128, scaled: bool): void {
  const b0 = lut16(p0, idx), b1 = lut16(p1, idx);
  const b2 = lut16(p2, idx), b3 = lut16(p3, idx);
  const lo01 = i8x16.shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const hi01 = i8x16.shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const lo23 = i8x16.shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const hi23 = i8x16.shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  let r0 = i16x8.shuffle(lo01, lo23, 0, 8, 1, 9, 2, 10, 3, 11);
  let r1 = i16x8.shuffle(lo01, lo23, 4, 12, 5, 13, 6, 14, 7, 15);
  let r2 = i16x8.shuffle(hi01, hi23, 0, 8, 1, 9, 2, 10, 3, 11);
  let r3 = i16x8.shuffle(hi01, hi23, 4, 12, 5, 13, 6, 14, 7, 15);
  if (scaled) {
    r0 = f32x4.mul(r0, scale); r1 = f32x4.mul(r1, scale);
    r2 = f32x4.mul(r2, scale); r3 = f32x4.mul(r3, scale);
  }
  v128.store(dst, r0);
  v128.store(dst, r1, 16);
  v128.store(dst, r2, 32);
  v128.store(dst, r3, 48);
}

// The same with the planes read from memory at `planes`.
@inline export function lookupF32x16(planes: usize, idx: v128, dst: usize, scale: v128, scaled: bool): void {
  lookupF32x16In(v128.load(planes), v128.load(planes, 16), v128.load(planes, 32), v128.load(planes, 48), idx, dst, scale, scaled);
}

// The 4-bit codes of 16 packed bytes (32 elements, first in the high nibble):
// elements 0..15 and 16..31, one code per byte.
@inline export function codesLow(bytes: v128): v128 {
  return i8x16.shuffle(i8x16.shr_u(bytes, 4), v128.and(bytes, i8x16.splat(0x0f)), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}

@inline export function codesHigh(bytes: v128): v128 {
  return i8x16.shuffle(i8x16.shr_u(bytes, 4), v128.and(bytes, i8x16.splat(0x0f)), 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}
