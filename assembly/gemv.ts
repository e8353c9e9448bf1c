import { loadAsF32, storeFromF32 } from "./convert";
import { NF4_LUT, FP4_LUT, QT_NF4 } from "./tables";
import { storeF32Planes, lookupF32x16, codesLow, codesHigh } from "./planes";

@inline function weightAt(packed: usize, base: usize, p: usize, lut: usize, absmax: usize, blocksize: usize): f32 {
  const byte = <u32>load<u8>(packed + ((p - base) >> 1));
  const q = (p & 1) == 0 ? byte >> 4 : byte & 15;
  return load<f32>(lut + (q << 2)) * load<f32>(absmax + ((p / blocksize) << 2));
}

// Row of k dequantized weights, flat elements [f0, f0 + k), exactly code[q] * absmax
// in f32 as dequantize4bit gives them. `base` is the (even) flat index of packed[0].
@inline function decodeRow(
  packed: usize, base: usize, f0: usize, k: i32, lut: usize, planes: usize, absmax: usize, blocksize: usize, w: usize,
): void {
  let kk = 0;
  if (ASC_FEATURE_SIMD) {
    // scalar up to a multiple of 32 (32-groups never straddle a block), then SIMD
    for (; kk < k && ((f0 + kk) & 31) != 0; kk++) store<f32>(w + (<usize>kk << 2), weightAt(packed, base, f0 + kk, lut, absmax, blocksize));
    for (; kk + 32 <= k; kk += 32) {
      const p = f0 + kk;
      const bytes = v128.load(packed + ((p - base) >> 1));
      const a = f32x4.splat(load<f32>(absmax + ((p / blocksize) << 2)));
      lookupF32x16(planes, codesLow(bytes), w + (<usize>kk << 2), a, true);
      lookupF32x16(planes, codesHigh(bytes), w + (<usize>(kk + 16) << 2), a, true);
    }
  }
  for (; kk < k; kk++) store<f32>(w + (<usize>kk << 2), weightAt(packed, base, f0 + kk, lut, absmax, blocksize));
}

// The canonical f32 dot product both builds compute: 16 lanes, lane (t % 16)
// accumulating x[t] * w[t] in order for t < k16 = k - k % 16; lanes summed as
// ((v0 + v1) + v2) + v3 over the four 4-lane vectors, then (l0 + l1) + (l2 + l3);
// the remaining t >= k16 summed in order and added last. No FMA anywhere.
@inline function laneSum(lanes: usize, i: usize): f32 {
  return ((load<f32>(lanes + (i << 2)) + load<f32>(lanes + ((i + 4) << 2))) + load<f32>(lanes + ((i + 8) << 2))) + load<f32>(lanes + ((i + 12) << 2));
}

@inline function dot(x: usize, w: usize, k: i32, lanes: usize): f32 {
  const k16 = k & ~15;
  let total: f32;
  if (ASC_FEATURE_SIMD) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let t = 0; t < k16; t += 16) {
      const o = <usize>t << 2;
      a0 = f32x4.add(a0, f32x4.mul(v128.load(x + o), v128.load(w + o)));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(x + o, 16), v128.load(w + o, 16)));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(x + o, 32), v128.load(w + o, 32)));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(x + o, 48), v128.load(w + o, 48)));
    }
    const v = f32x4.add(f32x4.add(f32x4.add(a0, a1), a2), a3);
    total = (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
  } else {
    memory.fill(lanes, 0, 64);
    for (let t = 0; t < k16; t++) {
      const p = lanes + (<usize>(t & 15) << 2);
      store<f32>(p, load<f32>(p) + load<f32>(x + (<usize>t << 2)) * load<f32>(w + (<usize>t << 2)));
    }
    total = (laneSum(lanes, 0) + laneSum(lanes, 1)) + (laneSum(lanes, 2) + laneSum(lanes, 3));
  }
  let tail: f32 = 0;
  for (let t = k16; t < k; t++) tail += load<f32>(x + (<usize>t << 2)) * load<f32>(w + (<usize>t << 2));
  return total + tail;
}

// out[i, j] = dtype(sum_t A[i, t] * W[j0 + j, t] (+ bias[j])) for i < m, j < n: A is
// [m, k] of adtype, W rows are flat nibbles from packed (flat index `base` at
// packed[0]), absmax f32 per flat block. scratch (SCRATCH_HEAD + (m*k + k) * 4 bytes) is
// the call's own: the code table as 4 byte planes for i8x16.swizzle (SIMD), the
// scalar build's 16 accumulator lanes, A in f32 and one decoded row, so that calls on
// other threads never share writable memory.
@inline const SCRATCH_HEAD: usize = 128;

export function gemv4bit(
  a: usize, m: i32, k: i32, adtype: i32, packed: usize, base: u32, j0: i32, n: i32, absmax: usize,
  blocksize: i32, qtype: i32, bias: usize, dtype: i32, out: usize, scratch: usize,
): void {
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  if (ASC_FEATURE_SIMD) {
    storeF32Planes(v128.load(lut), v128.load(lut, 16), v128.load(lut, 32), v128.load(lut, 48), scratch);
  }
  const lanes = scratch + 64, x = scratch + SCRATCH_HEAD, w = x + ((<usize>m * k) << 2);
  for (let t = 0; t < m * k; t++) store<f32>(x + (<usize>t << 2), loadAsF32(a, t, adtype));
  for (let j = 0; j < n; j++) {
    decodeRow(packed, base, <usize>(j0 + j) * k, k, lut, scratch, absmax, blocksize, w);
    const b: f32 = bias != 0 ? load<f32>(bias + (<usize>(j0 + j) << 2)) : 0;
    for (let i = 0; i < m; i++) {
      const s = dot(x + ((<usize>i * k) << 2), w, k, lanes);
      storeFromF32(out, <usize>i * n + j, bias != 0 ? s + b : s, dtype);
    }
  }
}
