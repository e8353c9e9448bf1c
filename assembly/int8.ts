import { f16ToF32, f32ToF16, f32ToBf16, DT_F32, DT_BF16 } from "./convert";
import { cudaRcp } from "./rcp";

// ---- LLM.int8 row-wise quantization (CUDA kInt8VectorQuant) ----

// Per row of f16 A: stats = max |x| over elements with |x| < threshold (all when
// threshold == 0; NaN ignored), CB = rint(x * (127 / stats)) with CUDA's
// __fdividef (127 times the approximate reciprocal), outliers -> 0.
export function int8VectorwiseQuant(a: usize, rows: i32, cols: i32, threshold: f32, cb: usize, stats: usize): void {
  for (let r = 0; r < rows; r++) {
    const row = a + ((<usize>r * cols) << 1);
    let m: f32 = 0;
    for (let c = 0; c < cols; c++) {
      const v = Mathf.abs(f16ToF32(<u32>load<u16>(row + (<usize>c << 1))));
      if ((threshold == 0 || v < threshold) && v > m) m = v;
    }
    store<f32>(stats + (<usize>r << 2), m);
    const scale = <f32>127 * cudaRcp(m);
    const out = cb + <usize>r * cols;
    for (let c = 0; c < cols; c++) {
      const x = f16ToF32(<u32>load<u16>(row + (<usize>c << 1)));
      const q = threshold > 0 && Mathf.abs(x) >= threshold ? <f32>0 : nearest<f32>(x * scale);
      // __float2int_rn: NaN -> 0
      store<i8>(out + c, q != q ? 0 : <i8><i32>q);
    }
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
    for (let c = 0; c < cols; c++) {
      const i = <usize>r * cols + c;
      const v = (<f32>load<i8>(a + i) * s) * k;
      // NaN (from NaN/Inf stats) as CUDA writes it: the canonical 0x7fffffff, whatever the host CPU propagates
      store<u32>(out + (i << 2), v != v ? 0x7fffffff : reinterpret<u32>(v));
    }
  }
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
