import { lut16 } from './lut16';
import { loadAsF32, loadF32x4, DT_F32, DT_F16, DT_BF16 } from "./convert";
import { blockScale } from "./absmax";
import { vc, V_SIGN, V_I16_127 } from "./vconst";
import { orderKey, buildBuckets, keys4, sums8, undecided8 } from "./buckets";
import {
  QT_NF4, QT_FP4,
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

// SIMD thresholds, splatted, read from memory (see vconst.ts).
const NF4_TV: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<f32>([
  NF4_T0, NF4_T0, NF4_T0, NF4_T0, NF4_T1, NF4_T1, NF4_T1, NF4_T1, NF4_T2, NF4_T2, NF4_T2, NF4_T2,
  NF4_T3, NF4_T3, NF4_T3, NF4_T3, NF4_T4, NF4_T4, NF4_T4, NF4_T4, NF4_T5, NF4_T5, NF4_T5, NF4_T5,
  NF4_T6, NF4_T6, NF4_T6, NF4_T6, NF4_T7, NF4_T7, NF4_T7, NF4_T7, NF4_T8, NF4_T8, NF4_T8, NF4_T8,
  NF4_T9, NF4_T9, NF4_T9, NF4_T9, NF4_T10, NF4_T10, NF4_T10, NF4_T10, NF4_T11, NF4_T11, NF4_T11, NF4_T11,
  NF4_T12, NF4_T12, NF4_T12, NF4_T12, NF4_T13, NF4_T13, NF4_T13, NF4_T13, NF4_T14, NF4_T14, NF4_T14, NF4_T14,
], 16);
// The FP4 table ends with the sign term 8 (an integer, stored as its bit pattern).
@inline const SIGN8: f32 = reinterpret<f32>(<u32>8);
const FP4_TV: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<f32>([
  FP4_T0, FP4_T0, FP4_T0, FP4_T0, FP4_T1, FP4_T1, FP4_T1, FP4_T1, FP4_T2, FP4_T2, FP4_T2, FP4_T2,
  FP4_T3, FP4_T3, FP4_T3, FP4_T3, FP4_T4, FP4_T4, FP4_T4, FP4_T4, FP4_T5, FP4_T5, FP4_T5, FP4_T5,
  FP4_T6, FP4_T6, FP4_T6, FP4_T6, SIGN8, SIGN8, SIGN8, SIGN8,
], 16);

const FP4_MAP: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<u8>([0, 1, 6, 7, 4, 5, 2, 3, 8, 9, 14, 15, 12, 13, 10, 11], 16);

@inline function gtCount(c: v128, s: v128, t: usize, j: usize): v128 {
  return i32x4.sub(c, f32x4.gt(s, v128.load(t + (j << 4))));
}

// SIMD: the NF4 code as a count of thresholds below s (same rule as the tree).
@inline function nf4x4(s: v128): v128 {
  const t = NF4_TV;
  let c = i32x4.sub(i32x4.splat(0), f32x4.gt(s, v128.load(t)));
  c = gtCount(c, s, t, 1); c = gtCount(c, s, t, 2); c = gtCount(c, s, t, 3); c = gtCount(c, s, t, 4);
  c = gtCount(c, s, t, 5); c = gtCount(c, s, t, 6); c = gtCount(c, s, t, 7); c = gtCount(c, s, t, 8);
  c = gtCount(c, s, t, 9); c = gtCount(c, s, t, 10); c = gtCount(c, s, t, 11); c = gtCount(c, s, t, 12);
  c = gtCount(c, s, t, 13); c = gtCount(c, s, t, 14);
  return c;
}

// SIMD: FP4 as (count of magnitude thresholds below |s|) + 8 if s < 0; the
// caller maps that 0..15 index to the code with one swizzle.
@inline function fp4x4(s: v128): v128 {
  const t = FP4_TV, a = f32x4.abs(s);
  let c = v128.and(f32x4.lt(s, f32x4.splat(0)), v128.load(t, 7 * 16));
  c = gtCount(c, a, t, 0); c = gtCount(c, a, t, 1); c = gtCount(c, a, t, 2); c = gtCount(c, a, t, 3);
  c = gtCount(c, a, t, 4); c = gtCount(c, a, t, 5); c = gtCount(c, a, t, 6);
  return c;
}

@inline function codes4x4(s: v128, qtype: i32): v128 {
  return qtype == QT_NF4 ? nf4x4(s) : fp4x4(s);
}

// 8 elements starting at i -> 4 packed bytes at dst (first element in the high
// nibble). Eight at a time keeps few vectors live: V8 would otherwise interleave
// many vectors' comparisons and spill.
@inline function pack8(src: usize, i: usize, dtype: i32, r: v128, qtype: i32, dst: usize): void {
  const c0 = codes4x4(f32x4.mul(loadF32x4(src, i, dtype), r), qtype);
  const c1 = codes4x4(f32x4.mul(loadF32x4(src, i + 4, dtype), r), qtype);
  // i32 lane k of the narrowed codes holds elements 2k (low half) and 2k+1
  let w = i16x8.narrow_i32x4_s(c0, c1);
  // FP4: count+sign index -> code bits (the zero high bytes map to 0)
  if (qtype != QT_NF4) w = lut16(v128.load(FP4_MAP), w);
  const b = v128.or(i32x4.shl(w, 4), i32x4.shr_u(w, 16));
  v128.store32_lane(dst, i8x16.shuffle(b, b, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12), 0);
}

// NF4 by table (buckets.ts): the threshold keys K(T_j) + 1 (s > T_j exactly when
// K(s) >= K(T_j) + 1; no threshold is 0, so -0 and +0 agree) and their buckets.
// About 1 group of 16 in 150 (N(0,1) data) is left undecided and counted. The table
// lives in host-managed memory (prepareNf4Table, once per memory), not in static
// data: a threaded build's every instantiation rewrites its static segments.
@inline export const NF4_TABLE_BYTES: usize = 64 + 65536;

export function prepareNf4Table(table: usize): void {
  if (!ASC_FEATURE_SIMD) return;
  for (let j: usize = 0; j < 15; j++) {
    store<u32>(table + (j << 2), orderKey(f32x4.extract_lane(v128.load(NF4_TV + (j << 4)), 0)) + 1);
  }
  buildBuckets(table, 15, table + 64, false);
}

@inline function nf4Sums8(src: usize, i: usize, dtype: i32, rv: v128, sign: v128, table: v128): v128 {
  const ka = keys4(f32x4.mul(loadF32x4(src, i, dtype), rv), sign);
  const kb = keys4(f32x4.mul(loadF32x4(src, i + 4, dtype), rv), sign);
  return sums8(ka, kb, table);
}

// Nibble pairs of 8 codes (i16 lanes): byte k of the result at 4k.
@inline function nibblePairs(c: v128): v128 {
  return v128.or(i32x4.shl(c, 4), i32x4.shr_u(c, 16));
}

// 16 elements at i -> 8 packed bytes at dst.
@inline function nf4Group16(src: usize, i: usize, dtype: i32, rv: v128, sign: v128, table: v128, m7: v128, dst: usize): void {
  const lo = nf4Sums8(src, i, dtype, rv, sign, table);
  const hi = nf4Sums8(src, i + 8, dtype, rv, sign, table);
  const b = i8x16.shuffle(nibblePairs(i16x8.shr_u(lo, 7)), nibblePairs(i16x8.shr_u(hi, 7)),
    0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  v128.store64_lane(dst, b, 0);
  if (i16x8.bitmask(v128.or(undecided8(lo, m7), undecided8(hi, m7))) != 0) {
    pack8(src, i, dtype, rv, QT_NF4, dst);
    pack8(src, i + 8, dtype, rv, QT_NF4, dst + 4);
  }
}

// The scalar tail of a block: pairs of elements from i, CUDA's tree per element.
@inline function quantizeTail(src: usize, i: i32, end: i32, dtype: i32, r: f32, qtype: i32, packed: usize): void {
  for (; i < end; i += 2) {
    const hi = code4(loadAsF32(src, i, dtype) * r, qtype);
    // An odd tensor's last byte pads with the code of 0 (0 * r: NaN when r is inf).
    const lo = i + 1 < end ? code4(loadAsF32(src, i + 1, dtype) * r, qtype) : code4(<f32>0 * r, qtype);
    store<u8>(packed + (i >> 1), <u8>((hi << 4) | lo));
  }
}

@inline function quantizeSimd(
  src: usize, n: i32, dtype: i32, blocksize: i32, qtype: i32, packed: usize, absmax: usize, nf4: usize,
): void {
  const nblocks = (n + blocksize - 1) / blocksize;
  const sign = vc(V_SIGN), table = i32x4.splat(<i32>(nf4 + 64)), m7 = vc(V_I16_127);
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const r = blockScale(src, b, blocksize, n, dtype, absmax);
    const rv = f32x4.splat(r);
    let i = start;
    if (qtype == QT_NF4) {
      for (; i + 16 <= end; i += 16) nf4Group16(src, i, dtype, rv, sign, table, m7, packed + (i >> 1));
    }
    for (; i + 8 <= end; i += 8) pack8(src, i, dtype, rv, qtype, packed + (i >> 1));
    quantizeTail(src, i, end, dtype, r, qtype, packed);
  }
}

// Quantizes src[0..n) (n may be odd only for the last chunk of a tensor) into
// ceil(n/2) packed bytes and ceil(n/blocksize) f32 absmax values; nf4 is the table
// prepareNf4Table filled (SIMD build).
@inline function quantizeImpl(
  src: usize, n: i32, dtype: i32, blocksize: i32, qtype: i32, packed: usize, absmax: usize, nf4: usize,
): void {
  if (ASC_FEATURE_SIMD) {
    quantizeSimd(src, n, dtype, blocksize, qtype, packed, absmax, nf4);
    return;
  }
  const nblocks = (n + blocksize - 1) / blocksize;
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    quantizeTail(src, start, end, dtype, blockScale(src, b, blocksize, n, dtype, absmax), qtype, packed);
  }
}

// SIMD: one function per (dtype, quant type), so that their loops' branches resolve
// at compile time (inlined into one function, the bodies would be merged back into
// one with run-time checks).
function quantizeNf4F32(src: usize, n: i32, bs: i32, packed: usize, absmax: usize, nf4: usize): void { quantizeImpl(src, n, DT_F32, bs, QT_NF4, packed, absmax, nf4); }
function quantizeNf4F16(src: usize, n: i32, bs: i32, packed: usize, absmax: usize, nf4: usize): void { quantizeImpl(src, n, DT_F16, bs, QT_NF4, packed, absmax, nf4); }
function quantizeNf4Bf16(src: usize, n: i32, bs: i32, packed: usize, absmax: usize, nf4: usize): void { quantizeImpl(src, n, DT_BF16, bs, QT_NF4, packed, absmax, nf4); }
function quantizeFp4F32(src: usize, n: i32, bs: i32, packed: usize, absmax: usize, nf4: usize): void { quantizeImpl(src, n, DT_F32, bs, QT_FP4, packed, absmax, nf4); }
function quantizeFp4F16(src: usize, n: i32, bs: i32, packed: usize, absmax: usize, nf4: usize): void { quantizeImpl(src, n, DT_F16, bs, QT_FP4, packed, absmax, nf4); }
function quantizeFp4Bf16(src: usize, n: i32, bs: i32, packed: usize, absmax: usize, nf4: usize): void { quantizeImpl(src, n, DT_BF16, bs, QT_FP4, packed, absmax, nf4); }

export function quantize4bit(
  src: usize, n: i32, dtype: i32, blocksize: i32, qtype: i32, packed: usize, absmax: usize, nf4: usize,
): void {
  if (!ASC_FEATURE_SIMD) {
    quantizeImpl(src, n, dtype, blocksize, qtype, packed, absmax, nf4); // the oracle: one body
  } else if (qtype == QT_NF4) {
    if (dtype == DT_F32) quantizeNf4F32(src, n, blocksize, packed, absmax, nf4);
    else if (dtype == DT_F16) quantizeNf4F16(src, n, blocksize, packed, absmax, nf4);
    else quantizeNf4Bf16(src, n, blocksize, packed, absmax, nf4);
  } else {
    if (dtype == DT_F32) quantizeFp4F32(src, n, blocksize, packed, absmax, nf4);
    else if (dtype == DT_F16) quantizeFp4F16(src, n, blocksize, packed, absmax, nf4);
    else quantizeFp4Bf16(src, n, blocksize, packed, absmax, nf4);
  }
}
