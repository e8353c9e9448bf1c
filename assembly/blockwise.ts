import { loadAsF32, loadF32x4, storeFromF32, f32x4ToBf16, f32x4ToF16, DT_F32, DT_F16, DT_BF16 } from "./convert";
import { blockScale } from "./absmax";
import { vc, V_SIGN, V_I16_127 } from "./vconst";
import { orderKey, buildBuckets, bucketStart, keys4, sums8, undecided8, starts4, thresholds4 } from "./buckets";

// The scalar oracle: CUDA's dQuantize binary search over the 256-entry code,
// literally (docs/bit-exactness.md#8-bit-code-search): nearest entry, exact ties to the final (even) pivot.
@inline function searchCode(code: usize, s: f32): u32 {
  let pivot: u32 = 127, upperPivot: u32 = 255, lowerPivot: u32 = 0;
  let lower: f32 = -1.0, upper: f32 = 1.0;
  let val = load<f32>(code + (pivot << 2));
  for (let step: u32 = 64; step > 0; step >>= 1) {
    if (s > val) {
      lowerPivot = pivot; lower = val; pivot += step;
    } else {
      upperPivot = pivot; upper = val; pivot -= step;
    }
    val = load<f32>(code + (pivot << 2));
  }
  if (upperPivot == 255) upper = load<f32>(code + (255 << 2));
  if (lowerPivot == 0) lower = load<f32>(code + 0);
  if (s > val) {
    const mid = (upper + val) * <f32>0.5;
    return s > mid ? upperPivot : pivot;
  }
  const mid = (lower + val) * <f32>0.5;
  return s < mid ? lowerPivot : pivot;
}

// The SIMD build's search. For a sorted code the binary search above returns the
// number of midpoints mid[j] = (code[j] + code[j+1]) * 0.5 below s, a tie s == mid[j]
// counting when j is odd and code[j] < mid[j] (so ties go to the even index), and 0
// for NaN. With K the order-preserving image of s (buckets.ts; -0 read as +0, they
// compare equal), midpoint j counts exactly when K >= TK[j], where
// TK[j] = K(mid[j]) + (the tie counts ? 0 : 1); TK never decreases. prepareCodeLut
// lays out, in the host's lut region (66624 bytes): TK[0..255] (TK[255] is never
// reached), then the bucket table of buckets.ts.
const LUT_E: usize = 1024;

export function prepareCodeLut(code: usize, lut: usize): void {
  for (let j: u32 = 0; j < 255; j++) {
    const lo = load<f32>(code + (j << 2));
    const mid = (lo + load<f32>(code + ((j + 1) << 2))) * <f32>0.5;
    const tieCounts = (j & 1) != 0 && lo < mid;
    store<u32>(lut + (j << 2), orderKey(mid + 0) + (tieCounts ? 0 : 1));
  }
  store<u32>(lut + (255 << 2), 0xffffffff);
  if (ASC_FEATURE_SIMD) buildBuckets(lut, 255, lut + LUT_E, true);
}

// Exact code of s from the table: the bucket's start, then the thresholds above it.
@inline function tableCode(lut: usize, s: f32): u32 {
  if (s != s) return 0;
  const k = orderKey(s + 0);
  let c = bucketStart(lut + LUT_E, k);
  while (c < 255 && k >= load<u32>(lut + (c << 2))) c++;
  return c;
}

// start + (K >= TK[start]) for the 4 elements at i, 0 for NaN: exact wherever the
// bucket holds at most one threshold.
@inline function exact4(src: usize, i: usize, dtype: i32, rv: v128, lutE: v128, lutV: v128): v128 {
  const s = f32x4.mul(loadF32x4(src, i, dtype), rv);
  const k = keys4(s, i32x4.splat(0x80000000));
  const start = starts4(k, lutE);
  const c = i32x4.sub(start, i32x4.ge_u(k, thresholds4(start, lutV)));
  return v128.and(c, f32x4.eq(s, s));
}

// Exact codes of the 16 elements at i, for the rare group (about 1 in 20) the
// table leaves undecided: exact4, or tableCode where a bucket is searched.
function exact16(src: usize, i: usize, dtype: i32, r: f32, lut: usize, q: usize, searched: bool): void {
  if (searched) {
    for (let j: usize = 0; j < 16; j++) store<u8>(q + i + j, <u8>tableCode(lut, loadAsF32(src, i + j, dtype) * r));
    return;
  }
  const rv = f32x4.splat(r), lutE = i32x4.splat(<i32>(lut + LUT_E)), lutV = i32x4.splat(<i32>lut);
  const lo = i16x8.narrow_i32x4_u(exact4(src, i, dtype, rv, lutE, lutV), exact4(src, i + 4, dtype, rv, lutE, lutV));
  const hi = i16x8.narrow_i32x4_u(exact4(src, i + 8, dtype, rv, lutE, lutV), exact4(src, i + 12, dtype, rv, lutE, lutV));
  v128.store(q + i, i8x16.narrow_i16x8_u(lo, hi));
}

@inline function scaledKeys(src: usize, i: usize, dtype: i32, rv: v128, sign: v128): v128 {
  return keys4(f32x4.mul(loadF32x4(src, i, dtype), rv), sign);
}

// Codes of the 16 elements at i, stored at q + i.
@inline function quantize16(src: usize, i: usize, dtype: i32, r: f32, rv: v128, lut: usize, lutE: v128,
  sign: v128, m7: v128, q: usize): void {
  const lo = sums8(scaledKeys(src, i, dtype, rv, sign), scaledKeys(src, i + 4, dtype, rv, sign), lutE);
  const hi = sums8(scaledKeys(src, i + 8, dtype, rv, sign), scaledKeys(src, i + 12, dtype, rv, sign), lutE);
  v128.store(q + i, i8x16.narrow_i16x8_u(i16x8.shr_u(lo, 7), i16x8.shr_u(hi, 7)));
  if (i16x8.bitmask(v128.or(undecided8(lo, m7), undecided8(hi, m7))) != 0) {
    exact16(src, i, dtype, r, lut, q, i16x8.bitmask(v128.or(lo, hi)) != 0);
  }
}

@inline function quantizeSimd(
  src: usize, n: i32, dtype: i32, blocksize: i32, lut: usize, q: usize, absmax: usize,
): void {
  const nblocks = (n + blocksize - 1) / blocksize;
  const lutE = i32x4.splat(<i32>(lut + LUT_E)), sign = vc(V_SIGN), m7 = vc(V_I16_127);
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const r = blockScale(src, b, blocksize, n, dtype, absmax);
    const rv = f32x4.splat(r);
    let i = start;
    for (; i + 16 <= end; i += 16) quantize16(src, i, dtype, r, rv, lut, lutE, sign, m7, q);
    for (; i < end; i++) store<u8>(q + i, <u8>tableCode(lut, loadAsF32(src, i, dtype) * r));
  }
}

@inline function quantizeImpl(
  src: usize, n: i32, dtype: i32, blocksize: i32, code: usize, lut: usize, q: usize, absmax: usize,
): void {
  if (ASC_FEATURE_SIMD) {
    quantizeSimd(src, n, dtype, blocksize, lut, q, absmax);
    return;
  }
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const r = blockScale(src, b, blocksize, n, dtype, absmax);
    for (let i = start; i < end; i++) store<u8>(q + i, <u8>searchCode(code, loadAsF32(src, i, dtype) * r));
  }
}

// SIMD: one function per input dtype, so that the dtype branches of the inlined
// loops resolve at compile time (inlined into one function, the bodies would be
// merged back into one with run-time checks).
function quantizeF32(src: usize, n: i32, blocksize: i32, code: usize, lut: usize, q: usize, absmax: usize): void {
  quantizeImpl(src, n, DT_F32, blocksize, code, lut, q, absmax);
}
function quantizeF16(src: usize, n: i32, blocksize: i32, code: usize, lut: usize, q: usize, absmax: usize): void {
  quantizeImpl(src, n, DT_F16, blocksize, code, lut, q, absmax);
}
function quantizeBf16(src: usize, n: i32, blocksize: i32, code: usize, lut: usize, q: usize, absmax: usize): void {
  quantizeImpl(src, n, DT_BF16, blocksize, code, lut, q, absmax);
}

// 8-bit blockwise quantization (CUDA kQuantizeBlockwise semantics).
export function quantizeBlockwise(
  src: usize, n: i32, dtype: i32, blocksize: i32, code: usize, lut: usize, q: usize, absmax: usize,
): void {
  if (!ASC_FEATURE_SIMD) quantizeImpl(src, n, dtype, blocksize, code, lut, q, absmax); // the oracle
  else if (dtype == DT_F32) quantizeF32(src, n, blocksize, code, lut, q, absmax);
  else if (dtype == DT_F16) quantizeF16(src, n, blocksize, code, lut, q, absmax);
  else quantizeBf16(src, n, blocksize, code, lut, q, absmax);
}

// SIMD: no gather in wasm, one lane load per element (two half vectors, which
// shortens the chain of inserts).
@inline function gather4(code: usize, q: usize, i: usize): v128 {
  let lo = v128.load32_zero(code + (<usize>load<u8>(q + i) << 2));
  lo = v128.load32_lane(code + (<usize>load<u8>(q + i + 1) << 2), lo, 1);
  let hi = v128.load32_zero(code + (<usize>load<u8>(q + i + 2) << 2));
  hi = v128.load32_lane(code + (<usize>load<u8>(q + i + 3) << 2), hi, 1);
  return i64x2.shuffle(lo, hi, 0, 2);
}

// The 4 outputs of products v, as storeFromF32 writes them (NaN canonical).
@inline function store4(v: v128, out: usize, i: usize, dtype: i32, canon: bool): void {
  if (dtype == DT_F32) {
    if (canon) v = v128.bitselect(i32x4.splat(0x7fffffff), v, f32x4.ne(v, v));
    v128.store(out + (i << 2), v);
  } else {
    v128.store64_lane(out + (i << 1), i16x8.narrow_i32x4_u(dtype == DT_BF16 ? f32x4ToBf16(v) : f32x4ToF16(v), v), 0);
  }
}

@inline function dequantizeSimd(
  q: usize, n: i32, blocksize: i32, code: usize, absmax: usize, dtype: i32, out: usize,
): void {
  let codeFinite = true;
  for (let j: usize = 0; j < 256; j++) {
    const c = load<f32>(code + (j << 2));
    codeFinite = codeFinite && c - c == 0;
  }
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const a = load<f32>(absmax + (<usize>b << 2));
    const av = f32x4.splat(a);
    let i = start;
    if (codeFinite && a - a == 0) {
      // finite * finite: no NaN to canonicalise
      if (dtype == DT_F32) {
        // 32 per iteration, addressed from one src and dst (constant offsets: fewer
        // address computations, the loop being instruction-bound)
        for (; i + 32 <= end; i += 32) {
          const src = q + i, dst = out + (i << 2);
          v128.store(dst, f32x4.mul(gather4(code, src, 0), av));
          v128.store(dst, f32x4.mul(gather4(code, src, 4), av), 16);
          v128.store(dst, f32x4.mul(gather4(code, src, 8), av), 32);
          v128.store(dst, f32x4.mul(gather4(code, src, 12), av), 48);
          v128.store(dst, f32x4.mul(gather4(code, src, 16), av), 64);
          v128.store(dst, f32x4.mul(gather4(code, src, 20), av), 80);
          v128.store(dst, f32x4.mul(gather4(code, src, 24), av), 96);
          v128.store(dst, f32x4.mul(gather4(code, src, 28), av), 112);
        }
      }
      for (; i + 16 <= end; i += 16) {
        store4(f32x4.mul(gather4(code, q, i), av), out, i, dtype, false);
        store4(f32x4.mul(gather4(code, q, i + 4), av), out, i + 4, dtype, false);
        store4(f32x4.mul(gather4(code, q, i + 8), av), out, i + 8, dtype, false);
        store4(f32x4.mul(gather4(code, q, i + 12), av), out, i + 12, dtype, false);
      }
    }
    for (; i + 4 <= end; i += 4) store4(f32x4.mul(gather4(code, q, i), av), out, i, dtype, true);
    for (; i < end; i++) storeFromF32(out, i, load<f32>(code + (<usize>load<u8>(q + i) << 2)) * a, dtype);
  }
}

@inline function dequantizeImpl(
  q: usize, n: i32, blocksize: i32, code: usize, absmax: usize, dtype: i32, out: usize,
): void {
  if (ASC_FEATURE_SIMD) {
    dequantizeSimd(q, n, blocksize, code, absmax, dtype, out);
    return;
  }
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const a = load<f32>(absmax + (<usize>b << 2));
    for (let i = start; i < end; i++) {
      storeFromF32(out, i, load<f32>(code + (<usize>load<u8>(q + i) << 2)) * a, dtype);
    }
  }
}

// SIMD: one function per output dtype (their dtype branches resolve at compile time).
function dequantizeF32(q: usize, n: i32, bs: i32, code: usize, absmax: usize, out: usize): void {
  dequantizeImpl(q, n, bs, code, absmax, DT_F32, out);
}
function dequantizeF16(q: usize, n: i32, bs: i32, code: usize, absmax: usize, out: usize): void {
  dequantizeImpl(q, n, bs, code, absmax, DT_F16, out);
}
function dequantizeBf16(q: usize, n: i32, bs: i32, code: usize, absmax: usize, out: usize): void {
  dequantizeImpl(q, n, bs, code, absmax, DT_BF16, out);
}

// out[i] = dtype(code[q_i] * absmax[i / blocksize]).
export function dequantizeBlockwise(
  q: usize, n: i32, blocksize: i32, code: usize, absmax: usize, dtype: i32, out: usize,
): void {
  if (!ASC_FEATURE_SIMD) dequantizeImpl(q, n, blocksize, code, absmax, dtype, out); // the oracle
  else if (dtype == DT_F32) dequantizeF32(q, n, blocksize, code, absmax, out);
  else if (dtype == DT_F16) dequantizeF16(q, n, blocksize, code, absmax, out);
  else dequantizeBf16(q, n, blocksize, code, absmax, out);
}
