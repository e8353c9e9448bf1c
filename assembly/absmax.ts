import { loadAsF32, loadF32x4, f16ToF32, DT_F32, DT_BF16 } from "./convert";
import { cudaRcp } from "./rcp";
import { vc, V_ABS, V_I16_ABS, V_I16_F16_INF, V_I16_BF16_INF } from "./vconst";

// Per-block absolute maximum the way CUDA's kQuantizeBlockwise computes it:
// NaN is ignored (fmaxf drops it), a full block starts from -FLT_MAX and a tail
// block from 0 (CUDA pads the tail with zeros and includes them in the max).
@inline export function blockAbsmax(src: usize, start: usize, end: usize, dtype: i32, tail: bool): f32 {
  let m: f32 = tail ? 0 : -3.4028234663852886e38;
  let i = start;
  if (ASC_FEATURE_SIMD) {
    if (dtype == DT_F32) {
      if (i + 4 <= end) {
        m = simdAbsmax(src, i, end, m);
        i = start + ((end - start) & ~3);
      }
    } else if (i + 8 <= end) {
      m = simdAbsmax16(src, i, end, dtype, m);
      i = start + ((end - start) & ~7);
    }
  }
  for (; i < end; i++) {
    const a = Mathf.abs(loadAsF32(src, i, dtype));
    if (a > m) m = a;
  }
  return m;
}

// max(m, |x|) over the first multiple of 4 f32 of [i, end), NaN ignored:
// pmax(acc, x) = acc < x ? x : acc keeps acc for a NaN x. Four accumulators hide
// the max latency; the order of a max does not matter (every |x| is >= +0).
@inline function simdAbsmax(src: usize, i: usize, end: usize, m: f32): f32 {
  const abs = vc(V_ABS);
  let a0 = f32x4.splat(m), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 16 <= end; i += 16) {
    a0 = f32x4.pmax(a0, v128.and(v128.load(src + (i << 2)), abs));
    a1 = f32x4.pmax(a1, v128.and(v128.load(src + (i << 2), 16), abs));
    a2 = f32x4.pmax(a2, v128.and(v128.load(src + (i << 2), 32), abs));
    a3 = f32x4.pmax(a3, v128.and(v128.load(src + (i << 2), 48), abs));
  }
  for (; i + 4 <= end; i += 4) a0 = f32x4.pmax(a0, v128.and(v128.load(src + (i << 2)), abs));
  a0 = f32x4.pmax(f32x4.pmax(a0, a1), f32x4.pmax(a2, a3));
  a0 = f32x4.pmax(a0, i32x4.shuffle(a0, a0, 2, 3, 0, 1));
  a0 = f32x4.pmax(a0, i32x4.shuffle(a0, a0, 1, 0, 3, 2));
  return f32x4.extract_lane(a0, 0);
}

// The same over the first multiple of 8 f16 or bf16 of [i, end), on the bits: for
// non-NaN values |x| orders as its 15 low bits; a NaN becomes -1, below them all.
@inline function simdAbsmax16(src: usize, i: usize, end: usize, dtype: i32, m: f32): f32 {
  const mag = vc(V_I16_ABS), inf = vc(dtype == DT_BF16 ? V_I16_BF16_INF : V_I16_F16_INF);
  let a0 = i16x8.splat(-1), a1 = a0;
  for (; i + 16 <= end; i += 16) {
    const x = v128.and(v128.load(src + (i << 1)), mag), y = v128.and(v128.load(src + (i << 1), 16), mag);
    a0 = i16x8.max_s(a0, v128.or(x, i16x8.gt_s(x, inf)));
    a1 = i16x8.max_s(a1, v128.or(y, i16x8.gt_s(y, inf)));
  }
  if (i + 8 <= end) {
    const x = v128.and(v128.load(src + (i << 1)), mag);
    a0 = i16x8.max_s(a0, v128.or(x, i16x8.gt_s(x, inf)));
  }
  a0 = i16x8.max_s(a0, a1);
  a0 = i16x8.max_s(a0, i32x4.shuffle(a0, a0, 2, 3, 0, 1));
  a0 = i16x8.max_s(a0, i32x4.shuffle(a0, a0, 1, 0, 3, 2));
  a0 = i16x8.max_s(a0, i16x8.shuffle(a0, a0, 1, 0, 3, 2, 5, 4, 7, 6));
  const h = i16x8.extract_lane_s(a0, 0);
  if (h < 0) return m; // every element NaN
  const a = dtype == DT_BF16 ? reinterpret<f32>(<u32>h << 16) : f16ToF32(<u32>h);
  return m < a ? a : m;
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
