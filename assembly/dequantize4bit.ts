import { lut16 } from './lut16';
import { DT_F32, DT_F16, DT_BF16, storeFromF32, f32x4ToBf16, f32x4ToF16 } from "./convert";
import { NF4_LUT, FP4_LUT, QT_NF4 } from "./tables";
import { vc, V_NIBBLE, V_ONE, V_7FFF } from "./vconst";
import { lookupF32x16In } from "./planes";

// SIMD: codes are looked up with i8x16.swizzle in byte planes held in registers
// (plane p = byte p of 16 values). 16-bit outputs: a block's outputs take only 16
// values, dtype(code[q] * absmax), computed once per block with the scalar path's
// rounding. f32 outputs: blocks of up to 64 look up the planes of the code table and
// take the product after; larger blocks look up the planes of the block's 16
// products, built once per block. (Vector instructions are the bottleneck: V8 turns
// each swizzle into three; the multiplies and the per-block transpose cost alike.)

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
// Per quant type, for f32 outputs of small blocks: NF4_LUT / FP4_LUT as 4 byte planes
// (plane p = byte p of the 16 codes). Loaded in each block rather than built once:
// V8 may schedule a pure computation into the loop where it is used.
const NF4_PLANES: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<u32>([
  0xa030b100, 0x00713f4d, 0x3adde3ff, 0x00b3abb8, 0x326b3900, 0x007835a2, 0x0304cafa, 0x001307a4,
  0xca063280, 0x00ba3d91, 0xad7c24a2, 0x803910e1, 0xbebfbfbf, 0x00bdbebe, 0x3e3e3e3d, 0x3f3f3f3e,
], 16);
const FP4_PLANES: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<u32>([
  0x00abab00, 0x00ab00ab, 0x00abab00, 0x00ab00ab, 0x00aaaa00, 0x00aa00aa, 0x00aaaa00, 0x00aa00aa,
  0x802aaa00, 0x802a00aa, 0x802aaa00, 0x802a00aa, 0x3f3f3b00, 0x3e3e3f3e, 0xbfbfbb80, 0xbebebfbe,
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

// The elements [i, end) of a block whose absmax (at pa) is finite, up to the last
// whole 32; returns where it stopped. `products` (a compile-time constant): the
// block's 16 products code[q] * absmax (the scalar path's one product, so the same
// bits; `table` is the code table) are taken once and transposed into byte planes
// for the lookups; else `table` holds the planes of the code table and each output
// is multiplied (4 multiplies per 16 outputs: fewer instructions for blocks of 32
// or 64 than the products' 4 multiplies and 16 unpacks per block).
@inline function block32(packed: usize, i: i32, end: i32, pa: usize, table: usize, products: bool,
  m0f: v128, out: usize): i32 {
  const av = v128.load32_splat(pa);
  let p0: v128, p1: v128, p2: v128, p3: v128;
  if (products) {
    const v0 = f32x4.mul(v128.load(table), av), v1 = f32x4.mul(v128.load(table, 16), av);
    const v2 = f32x4.mul(v128.load(table, 32), av), v3 = f32x4.mul(v128.load(table, 48), av);
    // 16 products x 4 bytes -> 4 planes of 16 bytes in four rounds of unpacks (one
    // instruction each, where an arbitrary two-input shuffle takes many)
    const u0 = i8x16.shuffle(v0, v1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const u1 = i8x16.shuffle(v0, v1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const u2 = i8x16.shuffle(v2, v3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const u3 = i8x16.shuffle(v2, v3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const w0 = i8x16.shuffle(u0, u1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const w1 = i8x16.shuffle(u0, u1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const w2 = i8x16.shuffle(u2, u3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const w3 = i8x16.shuffle(u2, u3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const x0 = i32x4.shuffle(w0, w2, 0, 4, 1, 5), x2 = i32x4.shuffle(w0, w2, 2, 6, 3, 7);
    const x1 = i32x4.shuffle(w1, w3, 0, 4, 1, 5), x3 = i32x4.shuffle(w1, w3, 2, 6, 3, 7);
    p0 = i8x16.shuffle(x0, x1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    p1 = i8x16.shuffle(x0, x1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    p2 = i8x16.shuffle(x2, x3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    p3 = i8x16.shuffle(x2, x3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  } else {
    p0 = v128.load(table); p1 = v128.load(table, 16); p2 = v128.load(table, 32); p3 = v128.load(table, 48);
  }
  const scaled = !products;
  for (; i + 64 <= end; i += 64) {
    const src = packed + (i >> 1), dst = out + (<usize>i << 2);
    const b0 = v128.load(src), b1 = v128.load(src, 16);
    lookupF32x16In(p0, p1, p2, p3, codesLow(b0, m0f), dst, av, scaled);
    lookupF32x16In(p0, p1, p2, p3, codesHigh(b0, m0f), dst + 64, av, scaled);
    lookupF32x16In(p0, p1, p2, p3, codesLow(b1, m0f), dst + 128, av, scaled);
    lookupF32x16In(p0, p1, p2, p3, codesHigh(b1, m0f), dst + 192, av, scaled);
  }
  if (i + 32 <= end) {
    const bytes = v128.load(packed + (i >> 1));
    const dst = out + (<usize>i << 2);
    lookupF32x16In(p0, p1, p2, p3, codesLow(bytes, m0f), dst, av, scaled);
    lookupF32x16In(p0, p1, p2, p3, codesHigh(bytes, m0f), dst + 64, av, scaled);
    i += 32;
  }
  return i;
}

// Whether the f32 at p is finite, tested on its bits (integer instructions, where the
// vector ones are the bottleneck).
@inline function finite(p: usize): bool {
  return (load<u32>(p) & 0x7f800000) != 0x7f800000;
}

// Blocks b.. of dequantize32: block32, and the scalar path for the rest of a block
// and for a non-finite absmax, whose products can be NaN (written canonical).
@inline function blocks32(packed: usize, b: i32, n: i32, blocksize: i32, lut: usize, absmax: usize,
  table: usize, products: bool, m0f: v128, out: usize): void {
  const nblocks = (n + blocksize - 1) / blocksize;
  for (; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const pa = absmax + (<usize>b << 2);
    const i = finite(pa) ? block32(packed, start, end, pa, table, products, m0f, out) : start;
    dequantizeScalar(packed, i, end, lut, load<f32>(pa), DT_F32, out);
  }
}

// f32 outputs.
@inline function dequantize32(
  packed: usize, n: i32, blocksize: i32, qtype: i32, absmax: usize, out: usize,
): void {
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  const m0f = vc(V_NIBBLE);
  if (blocksize > 64) {
    blocks32(packed, 0, n, blocksize, lut, absmax, lut, true, m0f, out);
    return;
  }
  const planes = qtype == QT_NF4 ? NF4_PLANES : FP4_PLANES;
  let b = 0;
  if (blocksize == 64) {
    // the common blocksize: whole blocks without the general loop's bookkeeping
    for (const full = n >> 6; b < full; b++) {
      const pa = absmax + (<usize>b << 2), i = b << 6;
      if (finite(pa)) block32(packed, i, i + 64, pa, planes, false, m0f, out);
      else dequantizeScalar(packed, i, i + 64, lut, load<f32>(pa), DT_F32, out);
    }
  }
  blocks32(packed, b, n, blocksize, lut, absmax, planes, false, m0f, out);
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
