import { lut16 } from './lut16';
import { DT_F32, DT_F16, DT_BF16, storeFromF32, f32x4ToBf16, f32x4ToF16 } from "./convert";
import { NF4_LUT, FP4_LUT, QT_NF4 } from "./tables";
import { vc, V_NIBBLE, V_ONE, V_7FFF } from "./vconst";

// SIMD: codes are looked up with i8x16.swizzle in byte planes held in registers
// (plane p = byte p of 16 values). 16-bit outputs: a block's outputs take only 16
// values, dtype(code[q] * absmax), computed once per block with the scalar path's
// rounding. f32 outputs: the planes of the code table, the product taken after.

// Per quant type, for the 16-bit fast path: |code| (f32 bits) and the per-code bias
// of the f16 rounding (see f16Words).
const NF4_FAST: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<u32>([
  0x3f800000, 0x3f3239b1, 0x3f066b30, 0x3eca32a0, 0x3e91a24d, 0x3e3d353f, 0x3dba7871, 0x00000000,
  0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000,
  0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0x00000000,
  0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff,
], 16);
const FP4_FAST: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<u32>([
  0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000,
  0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000,
  0x00000000, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff, 0xc8000fff,
  0x10000000, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff, 0xd8000fff,
], 16);
// Smallest absmax for which every nonzero |code| * absmax is an f16 normal
// (>= 2^-14): 2^-14 / min|code|, rounded up.
const NF4_F16_LO: f32 = 7.7e-4;
const FP4_F16_LO: f32 = 0.01172;

// f16 bits of v = |code| * a for a in [lo, 65504] (so each nonzero v is an f16
// normal): rebias and round to nearest even as convert.ts f32ToF16 does there. The
// bias is 0xc8000fff, plus 1 << 28 (the sign bit after the shift) for negative codes,
// and 0 (or 1 << 28 for -0) for zero codes, whose v is 0.
@inline function f16Words(v: v128, bias: v128, one: v128): v128 {
  return i32x4.shr_u(i32x4.add(i32x4.add(v, bias), v128.and(i32x4.shr_u(v, 13), one)), 13);
}

// bf16 bits of a finite product v (no NaN: convert.ts f32ToBf16 without its NaN test).
@inline function bf16Words(v: v128, round: v128, one: v128): v128 {
  return i32x4.shr_u(i32x4.add(i32x4.add(v, round), v128.and(i32x4.shr_u(v, 16), one)), 16);
}

// Byte p of the 16-bit words w0 (codes 0-7) and w1 (codes 8-15), p = 0 or 1.
@inline function lowBytes(w0: v128, w1: v128): v128 {
  return i8x16.shuffle(w0, w1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
@inline function highBytes(w0: v128, w1: v128): v128 {
  return i8x16.shuffle(w0, w1, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

// The codes of 32 packed elements (first element in the high nibble), one per
// byte: elements 0..15 (low) and 16..31 (high).
@inline function codesLow(bytes: v128, m0f: v128): v128 {
  const hi = v128.and(i16x8.shr_u(bytes, 4), m0f), lo = v128.and(bytes, m0f);
  return i8x16.shuffle(hi, lo, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
@inline function codesHigh(bytes: v128, m0f: v128): v128 {
  const hi = v128.and(i16x8.shr_u(bytes, 4), m0f), lo = v128.and(bytes, m0f);
  return i8x16.shuffle(hi, lo, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

// 16 codes -> 16 words at dst, from the planes p0 (low bytes) and p1 (high bytes).
@inline function emit16x16(idx: v128, p0: v128, p1: v128, dst: usize): void {
  const l = lut16(p0, idx), h = lut16(p1, idx);
  v128.store(dst, i8x16.shuffle(l, h, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
  v128.store(dst, i8x16.shuffle(l, h, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), 16);
}

// 16 codes -> 16 f32 at dst: the values of the planes p0..p3 (byte 0..3 of each
// value) times av.
@inline function emit16x32(idx: v128, p0: v128, p1: v128, p2: v128, p3: v128, av: v128, dst: usize): void {
  const b0 = lut16(p0, idx), b1 = lut16(p1, idx);
  const b2 = lut16(p2, idx), b3 = lut16(p3, idx);
  const lo01 = i8x16.shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const hi01 = i8x16.shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const lo23 = i8x16.shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const hi23 = i8x16.shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  v128.store(dst, f32x4.mul(i16x8.shuffle(lo01, lo23, 0, 8, 1, 9, 2, 10, 3, 11), av));
  v128.store(dst, f32x4.mul(i16x8.shuffle(lo01, lo23, 4, 12, 5, 13, 6, 14, 7, 15), av), 16);
  v128.store(dst, f32x4.mul(i16x8.shuffle(hi01, hi23, 0, 8, 1, 9, 2, 10, 3, 11), av), 32);
  v128.store(dst, f32x4.mul(i16x8.shuffle(hi01, hi23, 4, 12, 5, 13, 6, 14, 7, 15), av), 48);
}

@inline function convert16(v: v128, dtype: i32): v128 {
  return dtype == DT_F16 ? f32x4ToF16(v) : f32x4ToBf16(v);
}

// The scalar oracle: one product and one conversion per element, as CUDA does.
@inline function dequantizeScalar(packed: usize, i: i32, end: i32, lut: usize, a: f32, dtype: i32, out: usize): void {
  for (; i < end; i++) {
    const byte = <u32>load<u8>(packed + (i >> 1));
    const q = (i & 1) == 0 ? byte >> 4 : byte & 15;
    storeFromF32(out, i, load<f32>(lut + (q << 2)) * a, dtype);
  }
}

// 16-bit outputs (f16 or bf16).
@inline function dequantize16(
  packed: usize, n: i32, blocksize: i32, qtype: i32, absmax: usize, dtype: i32, out: usize,
): void {
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  const fast = qtype == QT_NF4 ? NF4_FAST : FP4_FAST;
  const lo: f32 = qtype == QT_NF4 ? NF4_F16_LO : FP4_F16_LO;
  const m0f = vc(V_NIBBLE), one = vc(V_ONE), round = vc(V_7FFF);
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const a = load<f32>(absmax + (<usize>b << 2));
    const av = f32x4.splat(a);
    let w0: v128, w1: v128; // the 16-bit values of codes 0-7 and 8-15
    // fast: every product converts by the plain rounding (f16: a normal; bf16: finite)
    if (dtype == DT_F16 ? a >= lo && a <= <f32>65504 : a - a == 0) {
      if (dtype == DT_F16) {
        w0 = i16x8.narrow_i32x4_u(
          f16Words(f32x4.mul(v128.load(fast), av), v128.load(fast, 64), one),
          f16Words(f32x4.mul(v128.load(fast, 16), av), v128.load(fast, 80), one));
        w1 = i16x8.narrow_i32x4_u(
          f16Words(f32x4.mul(v128.load(fast, 32), av), v128.load(fast, 96), one),
          f16Words(f32x4.mul(v128.load(fast, 48), av), v128.load(fast, 112), one));
      } else {
        w0 = i16x8.narrow_i32x4_u(
          bf16Words(f32x4.mul(v128.load(lut), av), round, one),
          bf16Words(f32x4.mul(v128.load(lut, 16), av), round, one));
        w1 = i16x8.narrow_i32x4_u(
          bf16Words(f32x4.mul(v128.load(lut, 32), av), round, one),
          bf16Words(f32x4.mul(v128.load(lut, 48), av), round, one));
      }
    } else {
      // any other absmax (non-finite, negative, tiny, huge): the full conversions
      w0 = i16x8.narrow_i32x4_u(convert16(f32x4.mul(v128.load(lut), av), dtype), convert16(f32x4.mul(v128.load(lut, 16), av), dtype));
      w1 = i16x8.narrow_i32x4_u(convert16(f32x4.mul(v128.load(lut, 32), av), dtype), convert16(f32x4.mul(v128.load(lut, 48), av), dtype));
    }
    const p0 = lowBytes(w0, w1), p1 = highBytes(w0, w1);
    let i = start;
    for (; i + 64 <= end; i += 64) {
      const src = packed + (i >> 1), dst = out + (<usize>i << 1);
      const b0 = v128.load(src), b1 = v128.load(src, 16);
      emit16x16(codesLow(b0, m0f), p0, p1, dst);
      emit16x16(codesHigh(b0, m0f), p0, p1, dst + 32);
      emit16x16(codesLow(b1, m0f), p0, p1, dst + 64);
      emit16x16(codesHigh(b1, m0f), p0, p1, dst + 96);
    }
    for (; i + 32 <= end; i += 32) {
      const bytes = v128.load(packed + (i >> 1));
      const dst = out + (<usize>i << 1);
      emit16x16(codesLow(bytes, m0f), p0, p1, dst);
      emit16x16(codesHigh(bytes, m0f), p0, p1, dst + 32);
    }
    dequantizeScalar(packed, i, end, lut, a, dtype, out);
  }
}

// f32 outputs: the code values looked up from planes of the code table, then
// multiplied by absmax (the scalar path's one product). A non-finite absmax, whose
// products can be NaN (written canonical), takes the scalar path.
@inline function dequantize32(
  packed: usize, n: i32, blocksize: i32, qtype: i32, absmax: usize, out: usize,
): void {
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  const m0f = vc(V_NIBBLE);
  // transpose the 16 code values x 4 bytes into 4 planes of 16 bytes
  const v0 = v128.load(lut), v1 = v128.load(lut, 16), v2 = v128.load(lut, 32), v3 = v128.load(lut, 48);
  const t0 = i8x16.shuffle(v0, v1, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const t1 = i8x16.shuffle(v0, v1, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const t2 = i8x16.shuffle(v2, v3, 0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const t3 = i8x16.shuffle(v2, v3, 2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  const p0 = i64x2.shuffle(t0, t2, 0, 2), p1 = i64x2.shuffle(t0, t2, 1, 3);
  const p2 = i64x2.shuffle(t1, t3, 0, 2), p3 = i64x2.shuffle(t1, t3, 1, 3);
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const a = load<f32>(absmax + (<usize>b << 2));
    let i = start;
    if (a - a == 0) {
      const av = f32x4.splat(a);
      for (; i + 32 <= end; i += 32) {
        const bytes = v128.load(packed + (i >> 1));
        const dst = out + (<usize>i << 2);
        emit16x32(codesLow(bytes, m0f), p0, p1, p2, p3, av, dst);
        emit16x32(codesHigh(bytes, m0f), p0, p1, p2, p3, av, dst + 64);
      }
    }
    dequantizeScalar(packed, i, end, lut, a, DT_F32, out);
  }
}

@inline function dequantizeImpl(
  packed: usize, n: i32, blocksize: i32, qtype: i32, absmax: usize, dtype: i32, out: usize,
): void {
  if (ASC_FEATURE_SIMD) {
    if (dtype == DT_F32) dequantize32(packed, n, blocksize, qtype, absmax, out);
    else dequantize16(packed, n, blocksize, qtype, absmax, dtype, out);
    return;
  }
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    dequantizeScalar(packed, start, min(start + blocksize, n), lut, load<f32>(absmax + (<usize>b << 2)), dtype, out);
  }
}

// SIMD: one function per output dtype (their dtype branches resolve at compile time).
function dequantizeF32(packed: usize, n: i32, bs: i32, qtype: i32, absmax: usize, out: usize): void {
  dequantizeImpl(packed, n, bs, qtype, absmax, DT_F32, out);
}
function dequantizeF16(packed: usize, n: i32, bs: i32, qtype: i32, absmax: usize, out: usize): void {
  dequantizeImpl(packed, n, bs, qtype, absmax, DT_F16, out);
}
function dequantizeBf16(packed: usize, n: i32, bs: i32, qtype: i32, absmax: usize, out: usize): void {
  dequantizeImpl(packed, n, bs, qtype, absmax, DT_BF16, out);
}

// out[i] = dtype(code[q_i] * absmax[i / blocksize]) for i in [0, n).
export function dequantize4bit(
  packed: usize, n: i32, blocksize: i32, qtype: i32, absmax: usize, dtype: i32, out: usize,
): void {
  if (!ASC_FEATURE_SIMD) dequantizeImpl(packed, n, blocksize, qtype, absmax, dtype, out); // the oracle
  else if (dtype == DT_F32) dequantizeF32(packed, n, blocksize, qtype, absmax, out);
  else if (dtype == DT_BF16) dequantizeBf16(packed, n, blocksize, qtype, absmax, out);
  else dequantizeF16(packed, n, blocksize, qtype, absmax, out);
}
