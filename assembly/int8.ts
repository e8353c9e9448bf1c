import { f16ToF32, f32ToF16, f32ToBf16, f16x4ToF32x4, DT_F32, DT_BF16 } from "./convert";
import { vc, V_ABS, V_I16_ABS } from "./vconst";
import { cudaRcp } from "./rcp";

// ---- LLM.int8 row-wise quantization (CUDA kInt8VectorQuant) ----

// Per row of f16 A: stats = max |x| over elements with |x| < threshold (all when
// threshold == 0; NaN ignored), CB = rint(x * (127 / stats)) with CUDA's
// __fdividef (127 times the approximate reciprocal), outliers -> 0.
export function int8VectorwiseQuant(a: usize, rows: i32, cols: i32, threshold: f32, cb: usize, stats: usize): void {
  const bound = magnitudeBound(threshold);
  for (let r = 0; r < rows; r++) {
    const row = a + ((<usize>r * cols) << 1);
    let m: f32 = 0;
    let c = 0;
    if (ASC_FEATURE_SIMD) {
      m = rowAbsmax(row, cols, bound);
      c = cols & ~7;
    }
    for (; c < cols; c++) {
      const v = Mathf.abs(f16ToF32(<u32>load<u16>(row + (<usize>c << 1))));
      if ((threshold == 0 || v < threshold) && v > m) m = v;
    }
    store<f32>(stats + (<usize>r << 2), m);
    const scale = <f32>127 * cudaRcp(m);
    const out = cb + <usize>r * cols;
    c = 0;
    if (ASC_FEATURE_SIMD) {
      quantizeRow(row, cols, scale, threshold, out);
      c = cols & ~7;
    }
    for (; c < cols; c++) {
      const x = f16ToF32(<u32>load<u16>(row + (<usize>c << 1)));
      const q = threshold > 0 && Mathf.abs(x) >= threshold ? <f32>0 : nearest<f32>(x * scale);
      // __float2int_rn: NaN -> 0
      store<i8>(out + c, q != q ? 0 : <i8><i32>q);
    }
  }
}

// The f16 magnitudes (bits & 0x7fff) of the values |x| < threshold are those below
// this bound: the bits of the smallest f16 >= threshold; 0x7c01 (every non-NaN) for 0.
@inline function magnitudeBound(threshold: f32): i32 {
  if (threshold == 0) return 0x7c01;
  const b = f32ToF16(threshold);
  return <i32>(f16ToF32(b) < threshold ? b + 1 : b);
}

// max |x| of the row's first multiple of 8 elements over magnitudes below `bound`, on
// the bits (f16 magnitudes order as their values; NaN is never below the bound); 0 if none.
@inline function rowAbsmax(row: usize, cols: i32, bound: i32): f32 {
  const mag = vc(V_I16_ABS), lim = i16x8.splat(<i16>bound), none = i16x8.splat(-1);
  let a0 = none, a1 = none;
  let c = 0;
  for (; c + 16 <= cols; c += 16) {
    const x = v128.and(v128.load(row + (<usize>c << 1)), mag), y = v128.and(v128.load(row + (<usize>c << 1), 16), mag);
    a0 = i16x8.max_s(a0, v128.bitselect(x, none, i16x8.lt_s(x, lim)));
    a1 = i16x8.max_s(a1, v128.bitselect(y, none, i16x8.lt_s(y, lim)));
  }
  if (c + 8 <= cols) {
    const x = v128.and(v128.load(row + (<usize>c << 1)), mag);
    a0 = i16x8.max_s(a0, v128.bitselect(x, none, i16x8.lt_s(x, lim)));
  }
  a0 = i16x8.max_s(a0, a1);
  a0 = i16x8.max_s(a0, i32x4.shuffle(a0, a0, 2, 3, 0, 1));
  a0 = i16x8.max_s(a0, i32x4.shuffle(a0, a0, 1, 0, 3, 2));
  a0 = i16x8.max_s(a0, i32x4.shr_u(a0, 16));
  const best = i16x8.extract_lane_s(a0, 0);
  return best < 0 ? 0 : f16ToF32(<u32>best);
}

// CB of the row's first multiple of 8 elements, as the scalar loop: trunc_sat takes
// NaN to 0 (and every rounded value is within [-127, 127], so narrowing is exact).
@inline function quantizeRow(row: usize, cols: i32, scale: f32, threshold: f32, out: usize): void {
  const s = f32x4.splat(scale), t = f32x4.splat(threshold), abs = vc(V_ABS);
  for (let c = 0; c + 8 <= cols; c += 8) {
    const x0 = f16x4ToF32x4(v128.load16x4_u(row + (<usize>c << 1)));
    const x1 = f16x4ToF32x4(v128.load16x4_u(row + (<usize>c << 1), 8));
    let q0 = f32x4.nearest(f32x4.mul(x0, s)), q1 = f32x4.nearest(f32x4.mul(x1, s));
    if (threshold > 0) {
      q0 = v128.andnot(q0, f32x4.ge(v128.and(x0, abs), t));
      q1 = v128.andnot(q1, f32x4.ge(v128.and(x1, abs), t));
    }
    const w = i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(q0), i32x4.trunc_sat_f32x4_s(q1));
    v128.store64_lane(out + c, i8x16.narrow_i16x8_s(w, w), 0);
  }
}

// Column half of int8_double_quant (torch ops in bnb): stats = max |x| per column
// over non-outliers, CAt = rint(f32(f16(x * 127)) / stats) (IEEE division), outlier
// elements and NaN -> 0.
export function int8ColumnQuant(a: usize, rows: i32, cols: i32, threshold: f32, cat: usize, stats: usize): void {
  for (let c = 0; c < cols; c++) store<f32>(stats + (<usize>c << 2), 0);
  for (let r = 0; r < rows; r++) {
    const row = a + ((<usize>r * cols) << 1);
    for (let c = 0; c < cols; c++) {
      const v = Mathf.abs(f16ToF32(<u32>load<u16>(row + (<usize>c << 1))));
      const p = stats + (<usize>c << 2);
      if ((threshold == 0 || v < threshold) && v > load<f32>(p)) store<f32>(p, v);
    }
  }
  for (let r = 0; r < rows; r++) {
    const row = a + ((<usize>r * cols) << 1);
    const out = cat + <usize>r * cols;
    for (let c = 0; c < cols; c++) {
      const x = f16ToF32(<u32>load<u16>(row + (<usize>c << 1)));
      let q: f32 = 0;
      if (!(threshold > 0 && Mathf.abs(x) >= threshold)) {
        q = nearest<f32>(f16ToF32(f32ToF16(x * 127)) / load<f32>(stats + (<usize>c << 2)));
      }
      store<i8>(out + c, q != q ? 0 : <i8><i32>max<f32>(-128, min<f32>(127, q)));
    }
  }
}

// out = f32(f32(A * stats[row]) * f32(1/127)), f32 output.
export function int8VectorwiseDequant(a: usize, rows: i32, cols: i32, stats: usize, out: usize): void {
  const k = reinterpret<f32>(<u32>0x3c010204);
  for (let r = 0; r < rows; r++) {
    const s = load<f32>(stats + (<usize>r << 2));
    let c = 0;
    if (ASC_FEATURE_SIMD) {
      dequantizeRow(a + <usize>r * cols, cols, s, k, out + ((<usize>r * cols) << 2));
      c = cols & ~15;
    }
    for (; c < cols; c++) {
      const i = <usize>r * cols + c;
      const v = (<f32>load<i8>(a + i) * s) * k;
      // NaN (from NaN/Inf stats) as CUDA writes it: the canonical 0x7fffffff, whatever the host CPU propagates
      store<u32>(out + (i << 2), v != v ? 0x7fffffff : reinterpret<u32>(v));
    }
  }
}

// The row's first multiple of 16 elements, the same two roundings as the scalar loop.
@inline function dequantizeRow(a: usize, cols: i32, s: f32, k: f32, out: usize): void {
  const vs = f32x4.splat(s), vk = f32x4.splat(k), nan = vc(V_ABS); // 0x7fffffff
  for (let c = 0; c + 16 <= cols; c += 16) {
    const b = v128.load(a + c);
    const lo = i16x8.extend_low_i8x16_s(b), hi = i16x8.extend_high_i8x16_s(b);
    const w0 = i32x4.extend_low_i16x8_s(lo), w1 = i32x4.extend_high_i16x8_s(lo);
    const w2 = i32x4.extend_low_i16x8_s(hi), w3 = i32x4.extend_high_i16x8_s(hi);
    const p = out + (<usize>c << 2);
    v128.store(p, dequant4(w0, vs, vk, nan));
    v128.store(p, dequant4(w1, vs, vk, nan), 16);
    v128.store(p, dequant4(w2, vs, vk, nan), 32);
    v128.store(p, dequant4(w3, vs, vk, nan), 48);
  }
}

@inline function dequant4(w: v128, s: v128, k: v128, nan: v128): v128 {
  const v = f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(w), s), k);
  return v128.bitselect(nan, v, f32x4.ne(v, v));
}

// ---- int8 GEMM: out[i, j] = sum_k A[i, k] * B[j, k], exact int32 ----

@inline function dot16(a: v128, b: v128, acc: v128): v128 {
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_s(b)));
  return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_s(b)));
}

@inline function hsum(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

@inline function dotScalar(a: usize, b: usize, k0: i32, k: i32): i32 {
  let s: i32 = 0;
  for (let t = k0; t < k; t++) s += <i32>load<i8>(a + t) * <i32>load<i8>(b + t);
  return s;
}

// A row i against B rows j..j+3; K handled 16 at a time then scalar.
@inline function dot1x4(a: usize, b: usize, k: i32, out: usize): void {
  const b1 = b + k, b2 = b + 2 * k, b3 = b + 3 * k;
  let c0 = i32x4.splat(0), c1 = i32x4.splat(0), c2 = i32x4.splat(0), c3 = i32x4.splat(0);
  let t = 0;
  for (; t + 16 <= k; t += 16) {
    const av = v128.load(a + t);
    c0 = dot16(av, v128.load(b + t), c0);
    c1 = dot16(av, v128.load(b1 + t), c1);
    c2 = dot16(av, v128.load(b2 + t), c2);
    c3 = dot16(av, v128.load(b3 + t), c3);
  }
  store<i32>(out, hsum(c0) + dotScalar(a, b, t, k));
  store<i32>(out, hsum(c1) + dotScalar(a, b1, t, k), 4);
  store<i32>(out, hsum(c2) + dotScalar(a, b2, t, k), 8);
  store<i32>(out, hsum(c3) + dotScalar(a, b3, t, k), 12);
}

// A row against one B row, 32 bytes per step in two accumulators.
@inline function dot1x1(a: usize, b: usize, k: i32): i32 {
  let c0 = i32x4.splat(0), c1 = i32x4.splat(0);
  let t = 0;
  for (; t + 32 <= k; t += 32) {
    c0 = dot16(v128.load(a + t), v128.load(b + t), c0);
    c1 = dot16(v128.load(a + t, 16), v128.load(b + t, 16), c1);
  }
  for (; t + 16 <= k; t += 16) c0 = dot16(v128.load(a + t), v128.load(b + t), c0);
  return hsum(i32x4.add(c0, c1)) + dotScalar(a, b, t, k);
}

// out[i * n + j] for i < m, j < n (row-major, A [m, k], B [n, k]). Integer sums
// are exact (mod 2^32), so any order gives the same bits; tiles keep B in cache.
export function int8LinearMatmul(a: usize, m: i32, k: i32, b: usize, n: i32, out: usize): void {
  if (ASC_FEATURE_SIMD && m == 1) {
    // a matrix-vector product: B read once, front to back (one stream for the prefetcher)
    for (let j = 0; j < n; j++) store<i32>(out + (<usize>j << 2), dot1x1(a, b + <usize>j * k, k));
    return;
  }
  const tile = max(4, (65536 / max(k, 1)) & ~3); // B rows per tile: ~64 KiB
  for (let j0 = 0; j0 < n; j0 += tile) {
    const j1 = min(j0 + tile, n);
    for (let i = 0; i < m; i++) {
      const arow = a + <usize>i * k;
      const orow = out + ((<usize>i * n) << 2);
      let j = j0;
      if (ASC_FEATURE_SIMD) {
        for (; j + 4 <= j1; j += 4) dot1x4(arow, b + <usize>j * k, k, orow + (<usize>j << 2));
      }
      for (; j < j1; j++) store<i32>(orow + (<usize>j << 2), dotScalar(arow, b + <usize>j * k, 0, k));
    }
  }
}

// ---- int8_mm_dequant (CUDA kdequant_mm_int32_fp16) ----

// f32 fused multiply-add with one rounding. The f64 product is exact; the f64
// sum is exact or off by its TwoSum error e, which matters only when the sum lies
// exactly halfway between two f32 values: then nudge it toward e.
@inline export function fmaf(a: f32, b: f32, c: f32): f32 {
  const p = <f64>a * <f64>b;
  const s = p + <f64>c;
  const bb = s - p;
  const e = (p - (s - bb)) + (<f64>c - bb);
  const bits = reinterpret<u64>(s);
  if (e != 0 && (bits & 0x1fffffff) == 0x10000000) {
    return <f32>reinterpret<f64>((e > 0) == (s > 0) ? bits + 1 : bits - 1);
  }
  return <f32>s;
}

// out[r, c] = half(fmaf(f32(A) * row[r] * col[c], 1/16129, bias[c])) for an f16
// bias (biasKind 1) or none (0); CUDA's constant is f32(1/16129) = 0x38820610.
// Another bias dtype (2: f32, 3: bf16) is added to the f16 result afterwards in
// f32, as bnb's out.add_(bias). Other output dtypes are casts of the f16 result.
export function int8MmDequant(
  a: usize, rows: i32, cols: i32, rowStats: usize, colStats: usize, bias: usize, biasKind: i32, dtype: i32, out: usize,
): void {
  const k = reinterpret<f32>(<u32>0x38820610);
  for (let r = 0; r < rows; r++) {
    const rs = load<f32>(rowStats + (<usize>r << 2));
    for (let c = 0; c < cols; c++) {
      const i = <usize>r * cols + c;
      const x = (<f32>load<i32>(a + (i << 2)) * rs) * load<f32>(colStats + (<usize>c << 2));
      let h: u32;
      if (biasKind == 1) {
        h = f32ToF16(fmaf(x, k, f16ToF32(<u32>load<u16>(bias + (<usize>c << 1)))));
      } else {
        h = f32ToF16(fmaf(x, k, 0));
        if (biasKind == 2) h = f32ToF16(f16ToF32(h) + load<f32>(bias + (<usize>c << 2)));
        else if (biasKind == 3) h = f32ToF16(f16ToF32(h) + reinterpret<f32>(<u32>load<u16>(bias + (<usize>c << 1)) << 16));
      }
      if (dtype == DT_F32) store<f32>(out + (i << 2), f16ToF32(h));
      else if (dtype == DT_BF16) store<u16>(out + (i << 1), <u16>f32ToBf16(f16ToF32(h)));
      else store<u16>(out + (i << 1), <u16>h);
    }
  }
}
