import { loadAsF32, storeFromF32 } from "./convert";
import { NF4_LUT, FP4_LUT, QT_NF4 } from "./tables";
import { storeF32Planes } from "./planes";
import { lut16 } from "./lut16";

// gemv4bit in the order of docs/bit-exactness.md ("4-bit GEMV", exact mode): for output
// (i, j), p[t] = x[t] * w[t] with w = code[q] * absmax (dequantize4bit's f32 value);
// chunk c = t / 32 of the row goes to lane l = c % 32, element t to sub-lane
// (t % 8) / 2; acc[l][sub] adds its products in increasing t from +0; r[l] =
// (acc0 + acc1) + (acc2 + acc3); then r[l] += r[l + s] for s = 16, 8, 4, 2, 1; bias;
// one rounding. No FMA. The SIMD builds take a fast path when rows are whole chunks
// (k % 32 == 0): a 16-byte load is one chunk, its high nibbles the even t and its low
// nibbles the odd t, so 4-wide vectors are the 4 sub-lanes once A's rows are permuted
// to match (within each 8: the 4 even elements, then the 4 odd ones).

// Scratch: code planes [0, 64), lane sums of a tile [64, 64 + 4 * MR * NR * 32), then the
// literal path's 128 accumulators; lane accumulators of one A row against 2 W rows (2 x 32
// v128) at ROW_ACCS, of a tile (MR * NR x 32 v128) at TILE_ACCS; A and decoded weights from
// GEMV_HEAD on.
@inline const MR: i32 = 4; // A rows per tile
@inline const NR: i32 = 2; // W rows per tile
@inline const LANES: usize = 64;
@inline const ACCS: usize = 64 + 4 * MR * NR * 32;
@inline const ROW_ACCS: usize = 2048;
@inline const TILE_ACCS: usize = 4096;
@inline const GEMV_HEAD: usize = 4096 + (MR * NR << 9);

// ---- the literal order (scalar build; rows that are not whole chunks) ----

@inline function weightAt(packed: usize, base: usize, p: usize, lut: usize, absmax: usize, blocksize: usize): f32 {
  const byte = <u32>load<u8>(packed + ((p - base) >> 1));
  const q = (p & 1) == 0 ? byte >> 4 : byte & 15;
  return load<f32>(lut + (q << 2)) * load<f32>(absmax + ((p / blocksize) << 2));
}

// r[0..32) -> r[0] by the fixed tree, in place.
@inline function laneTree(r: usize): f32 {
  for (let s: usize = 16; s >= 1; s >>= 1) {
    for (let l: usize = 0; l < s; l++) store<f32>(r + (l << 2), load<f32>(r + (l << 2)) + load<f32>(r + ((l + s) << 2)));
  }
  return load<f32>(r);
}

// The documented order over natural-order x and w (k elements); acc: 128 f32 of scratch.
function dotLiteral(x: usize, w: usize, k: i32, acc: usize): f32 {
  memory.fill(acc, 0, 512);
  for (let t = 0; t < k; t++) {
    const slot = acc + ((((<usize>t >> 5) & 31) << 4) | ((<usize>(t & 7) >> 1) << 2));
    store<f32>(slot, load<f32>(slot) + load<f32>(x + (<usize>t << 2)) * load<f32>(w + (<usize>t << 2)));
  }
  for (let l: usize = 0; l < 32; l++) {
    const a = acc + (l << 4);
    store<f32>(acc + (l << 2), (load<f32>(a) + load<f32>(a, 4)) + (load<f32>(a, 8) + load<f32>(a, 12)));
  }
  return laneTree(acc);
}

function gemvLiteral(
  a: usize, m: i32, k: i32, adtype: i32, packed: usize, base: usize, j0: i32, n: i32, absmax: usize,
  blocksize: usize, lut: usize, bias: usize, dtype: i32, out: usize, scratch: usize,
): void {
  const acc = scratch + ACCS, x = scratch + GEMV_HEAD, w = x + ((<usize>m * k) << 2);
  for (let t = 0; t < m * k; t++) store<f32>(x + (<usize>t << 2), loadAsF32(a, t, adtype));
  for (let j = 0; j < n; j++) {
    const f0 = <usize>(j0 + j) * k;
    for (let t = 0; t < k; t++) store<f32>(w + (<usize>t << 2), weightAt(packed, base, f0 + t, lut, absmax, blocksize));
    const b: f32 = bias != 0 ? load<f32>(bias + (<usize>(j0 + j) << 2)) : 0;
    for (let i = 0; i < m; i++) {
      const s = dotLiteral(x + ((<usize>i * k) << 2), w, k, acc);
      storeFromF32(out, <usize>i * n + j, bias != 0 ? s + b : s, dtype);
    }
  }
}

// ---- the SIMD fast path (k % 32 == 0) ----

// (a0 + a1) + (a2 + a3) of one accumulator
@inline function laneSum(v: v128): f32 {
  const t = f32x4.add(v, i32x4.shuffle(v, v, 1, 0, 3, 2));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 2);
}

// The tree of laneTree on 8 vectors of lane sums (element-wise adds: the same bits).
@inline function laneTreeV(r: usize): f32 {
  let v0 = v128.load(r), v1 = v128.load(r, 16), v2 = v128.load(r, 32), v3 = v128.load(r, 48);
  v0 = f32x4.add(v0, v128.load(r, 64)); v1 = f32x4.add(v1, v128.load(r, 80));
  v2 = f32x4.add(v2, v128.load(r, 96)); v3 = f32x4.add(v3, v128.load(r, 112));
  v0 = f32x4.add(v0, v2); v1 = f32x4.add(v1, v3);
  v0 = f32x4.add(v0, v1);
  v0 = f32x4.add(v0, i32x4.shuffle(v0, v0, 2, 3, 2, 3));
  return f32x4.extract_lane(v0, 0) + f32x4.extract_lane(v0, 1);
}

// Byte b of code[q] for the 16 codes of `idx`, interleaved into f32 lanes: vectors 0..3 hold
// codes 0-3, 4-7, 8-11, 12-15 of idx. `sel` picks which.
@inline function assemble(b0: v128, b1: v128, b2: v128, b3: v128, sel: i32): v128 {
  if (sel < 2) {
    const lo01 = i8x16.shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const lo23 = i8x16.shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    return sel == 0 ? i16x8.shuffle(lo01, lo23, 0, 8, 1, 9, 2, 10, 3, 11) : i16x8.shuffle(lo01, lo23, 4, 12, 5, 13, 6, 14, 7, 15);
  }
  const hi01 = i8x16.shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const hi23 = i8x16.shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  return sel == 2 ? i16x8.shuffle(hi01, hi23, 0, 8, 1, 9, 2, 10, 3, 11) : i16x8.shuffle(hi01, hi23, 4, 12, 5, 13, 6, 14, 7, 15);
}

// acc + the chunk's 32 products in sub-lane order (E0, O0, E1, O1, ...: even t of the
// first 8, odd t of the first 8, ...), x the permuted A chunk.
@inline function chunkDot(acc: v128, p0: v128, p1: v128, p2: v128, p3: v128, bytes: v128, scale: v128, x: usize): v128 {
  const hi = i8x16.shr_u(bytes, 4), lo = v128.and(bytes, i8x16.splat(15));
  const h0 = lut16(p0, hi), h1 = lut16(p1, hi), h2 = lut16(p2, hi), h3 = lut16(p3, hi);
  const l0 = lut16(p0, lo), l1 = lut16(p1, lo), l2 = lut16(p2, lo), l3 = lut16(p3, lo);
  const hlo01 = i8x16.shuffle(h0, h1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const hlo23 = i8x16.shuffle(h2, h3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const hhi01 = i8x16.shuffle(h0, h1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const hhi23 = i8x16.shuffle(h2, h3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const llo01 = i8x16.shuffle(l0, l1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const llo23 = i8x16.shuffle(l2, l3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const lhi01 = i8x16.shuffle(l0, l1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const lhi23 = i8x16.shuffle(l2, l3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(hlo01, hlo23, 0, 8, 1, 9, 2, 10, 3, 11), scale), v128.load(x)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(llo01, llo23, 0, 8, 1, 9, 2, 10, 3, 11), scale), v128.load(x, 16)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(hlo01, hlo23, 4, 12, 5, 13, 6, 14, 7, 15), scale), v128.load(x, 32)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(llo01, llo23, 4, 12, 5, 13, 6, 14, 7, 15), scale), v128.load(x, 48)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(hhi01, hhi23, 0, 8, 1, 9, 2, 10, 3, 11), scale), v128.load(x, 64)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(lhi01, lhi23, 0, 8, 1, 9, 2, 10, 3, 11), scale), v128.load(x, 80)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(hhi01, hhi23, 4, 12, 5, 13, 6, 14, 7, 15), scale), v128.load(x, 96)));
  acc = f32x4.add(acc, f32x4.mul(f32x4.mul(i16x8.shuffle(lhi01, lhi23, 4, 12, 5, 13, 6, 14, 7, 15), scale), v128.load(x, 112)));
  return acc;
}

// The chunk's 32 weights code[q] * absmax, stored in the same sub-lane order at dst.
@inline function chunkDecode(p0: v128, p1: v128, p2: v128, p3: v128, bytes: v128, scale: v128, dst: usize): void {
  const hi = i8x16.shr_u(bytes, 4), lo = v128.and(bytes, i8x16.splat(15));
  const h0 = lut16(p0, hi), h1 = lut16(p1, hi), h2 = lut16(p2, hi), h3 = lut16(p3, hi);
  const l0 = lut16(p0, lo), l1 = lut16(p1, lo), l2 = lut16(p2, lo), l3 = lut16(p3, lo);
  for (let s = 0; s < 4; s++) {
    v128.store(dst + (<usize>s << 5), f32x4.mul(assemble(h0, h1, h2, h3, s), scale));
    v128.store(dst + (<usize>s << 5), f32x4.mul(assemble(l0, l1, l2, l3, s), scale), 16);
  }
}

// One A row (permuted, x) against two W rows (r0, r1: byte pointers, whole chunks): the
// lane sums of each into lanes0 / lanes1 (32 f32 each). The chunks are read in order (the
// weights stream from memory); the 32 lane accumulators of each row live in acc0 / acc1
// (32 v128 each), so consecutive chunks are independent chains.
@inline function rowPairDirect(
  p0: v128, p1: v128, p2: v128, p3: v128, r0: usize, r1: usize, f0: usize, f1: usize, chunks: usize,
  absmax: usize, bshift: i32, blocksize: usize, x: usize, acc0: usize, acc1: usize, lanes0: usize, lanes1: usize, two: bool,
): void {
  memory.fill(acc0, 0, 512);
  if (two) memory.fill(acc1, 0, 512);
  for (let c: usize = 0; c < chunks; c++) {
    const xc = x + (c << 7), q = (c & 31) << 4;
    const e0 = f0 + (c << 5);
    const s0 = v128.load32_splat(absmax + ((bshift >= 0 ? e0 >> bshift : e0 / blocksize) << 2));
    v128.store(acc0 + q, chunkDot(v128.load(acc0 + q), p0, p1, p2, p3, v128.load(r0 + (c << 4)), s0, xc));
    if (two) {
      const e1 = f1 + (c << 5);
      const s1 = v128.load32_splat(absmax + ((bshift >= 0 ? e1 >> bshift : e1 / blocksize) << 2));
      v128.store(acc1 + q, chunkDot(v128.load(acc1 + q), p0, p1, p2, p3, v128.load(r1 + (c << 4)), s1, xc));
    }
  }
  for (let l: usize = 0; l < 32; l++) {
    store<f32>(lanes0 + (l << 2), laneSum(v128.load(acc0 + (l << 4))));
    if (two) store<f32>(lanes1 + (l << 2), laneSum(v128.load(acc1 + (l << 4))));
  }
}

// The 4x2 (at most) tile: A rows x[0..mr) (permuted, stride kp floats) against decoded W
// rows w[0..nr) (stride kp floats), chunks in order; the 32 lane accumulators of pair (i, j)
// at accs + (i * NR + j) * 512; their lane sums to lanes + (i * NR + j) * 128.
@inline function tile(x: usize, w: usize, kp: usize, chunks: usize, accs: usize, lanes: usize, mr: i32, nr: i32): void {
  const xs = kp << 2;
  memory.fill(accs, 0, <usize>(MR * NR) << 9);
  for (let c: usize = 0; c < chunks; c++) {
    const q = accs + ((c & 31) << 4);
    let a00 = v128.load(q), a01 = nr > 1 ? v128.load(q, 512) : a00;
    let a10 = mr > 1 ? v128.load(q, 1024) : a00, a11 = mr > 1 && nr > 1 ? v128.load(q, 1536) : a00;
    let a20 = mr > 2 ? v128.load(q, 2048) : a00, a21 = mr > 2 && nr > 1 ? v128.load(q, 2560) : a00;
    let a30 = mr > 3 ? v128.load(q, 3072) : a00, a31 = mr > 3 && nr > 1 ? v128.load(q, 3584) : a00;
    let o = c << 7;
    for (let v = 0; v < 8; v++, o += 16) {
      const w0 = v128.load(w + o);
      const w1 = nr > 1 ? v128.load(w + xs + o) : w0;
      const x0 = v128.load(x + o);
      a00 = f32x4.add(a00, f32x4.mul(x0, w0));
      if (nr > 1) a01 = f32x4.add(a01, f32x4.mul(x0, w1));
      if (mr > 1) {
        const x1 = v128.load(x + xs + o);
        a10 = f32x4.add(a10, f32x4.mul(x1, w0));
        if (nr > 1) a11 = f32x4.add(a11, f32x4.mul(x1, w1));
      }
      if (mr > 2) {
        const x2 = v128.load(x + 2 * xs + o);
        a20 = f32x4.add(a20, f32x4.mul(x2, w0));
        if (nr > 1) a21 = f32x4.add(a21, f32x4.mul(x2, w1));
      }
      if (mr > 3) {
        const x3 = v128.load(x + 3 * xs + o);
        a30 = f32x4.add(a30, f32x4.mul(x3, w0));
        if (nr > 1) a31 = f32x4.add(a31, f32x4.mul(x3, w1));
      }
    }
    v128.store(q, a00);
    if (nr > 1) v128.store(q, a01, 512);
    if (mr > 1) { v128.store(q, a10, 1024); if (nr > 1) v128.store(q, a11, 1536); }
    if (mr > 2) { v128.store(q, a20, 2048); if (nr > 1) v128.store(q, a21, 2560); }
    if (mr > 3) { v128.store(q, a30, 3072); if (nr > 1) v128.store(q, a31, 3584); }
  }
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nr; j++) {
      const pair = <usize>(i * NR + j);
      for (let l: usize = 0; l < 32; l++) store<f32>(lanes + (pair << 7) + (l << 2), laneSum(v128.load(accs + (pair << 9) + (l << 4))));
    }
  }
}

@inline function finish(lanes: usize, out: usize, idx: usize, bias: usize, col: i32, dtype: i32): void {
  const s = laneTreeV(lanes);
  storeFromF32(out, idx, bias != 0 ? s + load<f32>(bias + (<usize>col << 2)) : s, dtype);
}

function gemvChunks(
  a: usize, m: i32, k: i32, adtype: i32, packed: usize, base: usize, j0: i32, n: i32, absmax: usize,
  blocksize: usize, lut: usize, bias: usize, dtype: i32, out: usize, scratch: usize,
): void {
  storeF32Planes(v128.load(lut), v128.load(lut, 16), v128.load(lut, 32), v128.load(lut, 48), scratch);
  const p0 = v128.load(scratch), p1 = v128.load(scratch, 16), p2 = v128.load(scratch, 32), p3 = v128.load(scratch, 48);
  const kp = <usize>k, chunks = kp >> 5, rowBytes = kp >> 1;
  const bshift: i32 = popcnt(blocksize) == 1 ? <i32>ctz(blocksize) : -1;
  const x = scratch + GEMV_HEAD, w = x + ((<usize>m * kp) << 2), lanes = scratch + LANES, accs = scratch + ROW_ACCS, tileAccs = scratch + TILE_ACCS;
  // A rows, permuted within each 8: x[8g + s] = a[8g + 2s], x[8g + 4 + s] = a[8g + 2s + 1]
  for (let i = 0; i < m; i++) {
    const src = <usize>i * kp, dst = x + (src << 2);
    for (let t: usize = 0; t < kp; t++) {
      store<f32>(dst + (((t & ~7) | ((t & 1) << 2) | ((t & 7) >> 1)) << 2), loadAsF32(a, src + t, adtype));
    }
  }
  const f = <usize>j0 * kp - base; // flat index of W row j0 relative to packed[0]
  if (m == 1) {
    for (let j = 0; j < n; j += 2) {
      const two = j + 1 < n;
      const f0 = <usize>(j0 + j) * kp, r0 = packed + ((f + <usize>j * kp) >> 1);
      if (two) {
        rowPairDirect(p0, p1, p2, p3, r0, r0 + rowBytes, f0, f0 + kp, chunks, absmax, bshift, blocksize, x, accs, accs + 512, lanes, lanes + 128, true);
        finish(lanes, out, j, bias, j0 + j, dtype);
        finish(lanes + 128, out, j + 1, bias, j0 + j + 1, dtype);
      } else {
        rowPairDirect(p0, p1, p2, p3, r0, r0, f0, f0, chunks, absmax, bshift, blocksize, x, accs, accs, lanes, lanes, false);
        finish(lanes, out, j, bias, j0 + j, dtype);
      }
    }
    return;
  }
  // m > 1: decode NR W rows once, then tiles of MR A rows against them
  for (let j = 0; j < n; j += NR) {
    const nr = min(NR, n - j);
    for (let r = 0; r < nr; r++) {
      const fr = <usize>(j0 + j + r) * kp, src = packed + ((f + <usize>(j + r) * kp) >> 1), dst = w + ((<usize>r * kp) << 2);
      for (let c: usize = 0; c < chunks; c++) {
        const e = fr + (c << 5);
        const s = v128.load32_splat(absmax + ((bshift >= 0 ? e >> bshift : e / blocksize) << 2));
        chunkDecode(p0, p1, p2, p3, v128.load(src + (c << 4)), s, dst + (c << 7));
      }
    }
    for (let i = 0; i < m; i += MR) {
      const mr = min(MR, m - i), xi = x + ((<usize>i * kp) << 2);
      if (nr == 2) {
        if (mr == 4) tile(xi, w, kp, chunks, tileAccs, lanes, 4, 2);
        else if (mr == 3) tile(xi, w, kp, chunks, tileAccs, lanes, 3, 2);
        else if (mr == 2) tile(xi, w, kp, chunks, tileAccs, lanes, 2, 2);
        else tile(xi, w, kp, chunks, tileAccs, lanes, 1, 2);
      } else {
        if (mr == 4) tile(xi, w, kp, chunks, tileAccs, lanes, 4, 1);
        else if (mr == 3) tile(xi, w, kp, chunks, tileAccs, lanes, 3, 1);
        else if (mr == 2) tile(xi, w, kp, chunks, tileAccs, lanes, 2, 1);
        else tile(xi, w, kp, chunks, tileAccs, lanes, 1, 1);
      }
      for (let ii = 0; ii < mr; ii++) {
        for (let jj = 0; jj < nr; jj++) {
          finish(lanes + <usize>(ii * NR + jj) * 128, out, <usize>(i + ii) * n + j + jj, bias, j0 + j + jj, dtype);
        }
      }
    }
  }
}

// out[i, j] = dtype(sum_t A[i, t] * W[j0 + j, t] (+ bias[j0 + j])) for i < m, j < n: A is
// [m, k] of adtype, W rows are flat nibbles from packed (flat index `base` at packed[0]),
// absmax f32 per flat block, bias f32 indexed by the absolute row. scratch
// (GEMV_HEAD + (m + NR) * k * 4 bytes, k rounded up to 32 in the SIMD builds) is the
// call's own, so that calls on other threads never share writable memory.
export function gemv4bit(
  a: usize, m: i32, k: i32, adtype: i32, packed: usize, base: u32, j0: i32, n: i32, absmax: usize,
  blocksize: i32, qtype: i32, bias: usize, dtype: i32, out: usize, scratch: usize,
): void {
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  // whole chunks that never straddle a block (the op's blocksizes are powers of two >= 32;
  // the raw kernel takes any)
  if (ASC_FEATURE_SIMD && (k & 31) == 0 && k > 0 && (blocksize & 31) == 0 && ((<usize>j0 * k - base) & 31) == 0) {
    gemvChunks(a, m, k, adtype, packed, base, j0, n, absmax, blocksize, lut, bias, dtype, out, scratch);
  } else {
    gemvLiteral(a, m, k, adtype, packed, base, j0, n, absmax, blocksize, lut, bias, dtype, out, scratch);
  }
}
