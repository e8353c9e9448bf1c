import { loadAsF32, loadF32x4 } from "./convert";
import { cudaRcp } from "./rcp";

// Per-block absolute maximum the way CUDA's kQuantizeBlockwise computes it:
// NaN is ignored (fmaxf drops it), a full block starts from -FLT_MAX and a tail
// block from 0 (CUDA pads the tail with zeros and includes them in the max).
@inline export function blockAbsmax(src: usize, start: usize, end: usize, dtype: i32, tail: bool): f32 {
  let m: f32 = tail ? 0 : -3.4028234663852886e38;
  let i = start;
  if (ASC_FEATURE_SIMD) {
    let acc = f32x4.splat(m);
    for (; i + 4 <= end; i += 4) {
      // pmax(acc, x) = acc < x ? x : acc, so a NaN x leaves acc unchanged.
      acc = f32x4.pmax(acc, f32x4.abs(loadF32x4(src, i, dtype)));
    }
    const a0 = f32x4.extract_lane(acc, 0), a1 = f32x4.extract_lane(acc, 1);
    const a2 = f32x4.extract_lane(acc, 2), a3 = f32x4.extract_lane(acc, 3);
    if (a0 > m) m = a0;
    if (a1 > m) m = a1;
    if (a2 > m) m = a2;
    if (a3 > m) m = a3;
  }
  for (; i < end; i++) {
    const a = Mathf.abs(loadAsF32(src, i, dtype));
    if (a > m) m = a;
  }
  return m;
}

// Index of the first NaN or infinity in src[0..n), or -1.
export function firstNonFinite(src: usize, n: i32, dtype: i32): i32 {
  let i = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 16 <= n; i += 16) {
      // x - x is 0 for finite x and NaN otherwise.
      const a = loadF32x4(src, i, dtype), b = loadF32x4(src, i + 4, dtype);
      const c = loadF32x4(src, i + 8, dtype), d = loadF32x4(src, i + 12, dtype);
      const bad = v128.or(
        v128.or(f32x4.ne(f32x4.sub(a, a), f32x4.splat(0)), f32x4.ne(f32x4.sub(b, b), f32x4.splat(0))),
        v128.or(f32x4.ne(f32x4.sub(c, c), f32x4.splat(0)), f32x4.ne(f32x4.sub(d, d), f32x4.splat(0))),
      );
      if (v128.any_true(bad)) break;
    }
  }
  for (; i < n; i++) {
    const x = loadAsF32(src, i, dtype);
    if (x - x != 0) return i;
  }
  return -1;
}

// Stores block b's absmax and returns the scale CUDA multiplies its elements by:
// CUDA's reciprocal (see rcp.ts), then a product: two roundings, no FMA.
@inline export function blockScale(src: usize, b: i32, blocksize: i32, n: i32, dtype: i32, absmax: usize): f32 {
  const start = b * blocksize;
  const end = min(start + blocksize, n);
  const amax = blockAbsmax(src, start, end, dtype, end - start < blocksize);
  store<f32>(absmax + (<usize>b << 2), amax);
  return cudaRcp(amax);
}
