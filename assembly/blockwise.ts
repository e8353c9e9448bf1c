import { loadAsF32, storeFromF32, DT_F32, DT_F16 } from "./convert";
import { blockScale } from "./absmax";

// The scalar oracle: CUDA's dQuantize binary search over the 256-entry code,
// literally (SPEC §2.2): nearest entry, exact ties to the final (even) pivot.
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

// The SIMD build's search. The binary search above returns, for a sorted code,
// the nearest of code[c-1], code[c] (c = #{v : code[v] < s}) with a tie at their
// f32 midpoint going to the even index, and 0 for NaN. Equivalently: count the
// midpoints below s, then resolve a tie with the midpoint above toward the even
// index. A 65536-entry table keyed by the top 16 bits of s's order-preserving
// integer image gives the count at the bucket's lower end; a fixed number of
// branch-free steps (the most midpoints any bucket holds) finishes it.
// Layout at lut: 256 f32 midpoints (255 used, then +inf), 65536 u8 starts, and
// at LUT_STEPS the step count.
const LUT_STARTS: usize = 1024;
const LUT_STEPS: usize = 1024 + 65536;

@inline function bucketMin(k: u32): f32 {
  const key = k << 16;
  return reinterpret<f32>(key >= 0x80000000 ? key ^ 0x80000000 : ~key);
}

export function prepareCodeLut(code: usize, lut: usize): void {
  for (let j = 0; j < 255; j++) {
    const mid = (load<f32>(code + (j << 2)) + load<f32>(code + ((j + 1) << 2))) * <f32>0.5;
    store<f32>(lut + (j << 2), mid);
  }
  store<f32>(lut + (255 << 2), Infinity);
  let c: u32 = 0, steps: u32 = 1;
  for (let k: u32 = 0; k < 65536; k++) {
    const vmin = bucketMin(k);
    // Keys grow with the value, so the count never decreases (NaN buckets: 0).
    if (vmin != vmin) { store<u8>(lut + LUT_STARTS + k, 0); continue; }
    while (c < 255 && load<f32>(lut + (c << 2)) < vmin) c++;
    store<u8>(lut + LUT_STARTS + k, <u8>c);
    // midpoints inside this bucket: those below the next bucket's lower end, plus one
    const next = k < 65535 ? bucketMin(k + 1) : Infinity;
    let e = c;
    while (e < 255 && load<f32>(lut + (e << 2)) < next) e++;
    if (next == next && e - c + 1 > steps) steps = e - c + 1;
  }
  store<u32>(lut + LUT_STEPS, steps);
}

@inline function lookupCode(code: usize, lut: usize, steps: u32, s: f32): u32 {
  if (s != s) return 0;
  const b = reinterpret<u32>(s);
  const key = (b >> 31) != 0 ? ~b : b | 0x80000000;
  let c = <u32>load<u8>(lut + LUT_STARTS + (key >> 16));
  for (let j: u32 = 0; j < steps; j++) c += <u32>(s > load<f32>(lut + (c << 2)));
  // A tie at the midpoint of (c, c+1) goes to the even one; but an s equal to
  // code[c] itself (duplicate entries make that midpoint equal it) stays at c.
  c += (c & 1) & <u32>(c < 255) & <u32>(s == load<f32>(lut + (c << 2))) & <u32>(load<f32>(code + (c << 2)) < s);
  return c;
}

@inline function quantizeImpl(
  src: usize, n: i32, dtype: i32, blocksize: i32, code: usize, lut: usize, q: usize, absmax: usize,
): void {
  const nblocks = (n + blocksize - 1) / blocksize;
  const steps = load<u32>(lut + LUT_STEPS);
  for (let b = 0; b < nblocks; b++) {
    const start = b * blocksize;
    const end = min(start + blocksize, n);
    const r = blockScale(src, b, blocksize, n, dtype, absmax);
    for (let i = start; i < end; i++) {
      const s = loadAsF32(src, i, dtype) * r;
      store<u8>(q + i, <u8>(ASC_FEATURE_SIMD ? lookupCode(code, lut, steps, s) : searchCode(code, s)));
    }
  }
}

// 8-bit blockwise quantization (CUDA kQuantizeBlockwise semantics).
export function quantizeBlockwise(
  src: usize, n: i32, dtype: i32, blocksize: i32, code: usize, lut: usize, q: usize, absmax: usize,
): void {
  if (dtype == DT_F32) quantizeImpl(src, n, DT_F32, blocksize, code, lut, q, absmax);
  else if (dtype == DT_F16) quantizeImpl(src, n, DT_F16, blocksize, code, lut, q, absmax);
  else quantizeImpl(src, n, 2, blocksize, code, lut, q, absmax);
}

@inline function dequantizeImpl(
  q: usize, n: i32, blocksize: i32, code: usize, absmax: usize, dtype: i32, out: usize,
): void {
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

// out[i] = dtype(code[q_i] * absmax[i / blocksize]).
export function dequantizeBlockwise(
  q: usize, n: i32, blocksize: i32, code: usize, absmax: usize, dtype: i32, out: usize,
): void {
  if (dtype == DT_F32) dequantizeImpl(q, n, blocksize, code, absmax, DT_F32, out);
  else if (dtype == DT_F16) dequantizeImpl(q, n, blocksize, code, absmax, DT_F16, out);
  else dequantizeImpl(q, n, blocksize, code, absmax, 2, out);
}
