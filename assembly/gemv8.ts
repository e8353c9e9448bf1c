// gemv4bit's int8-activation mode ({ accuracy: 'int8' }; docs/bit-exactness.md, "4-bit GEMV",
// "int8-activation mode"): A quantized per group of 64 row elements to int8, the 4-bit codes
// held as int8 levels, exact integer dot products per segment, then the f32 group sums
// through the exact mode's 32 lanes and tree. Every build computes the same definition:
// the scalar build literally (the oracle, also the SIMD builds' path for K % 32 != 0),
// the SIMD builds four weight rows at a time with i32x4.dot_i16x8_s.
import { loadAsF32, storeFromF32 } from "./convert";
import { NF4_LUT, FP4_LUT, QT_NF4 } from "./tables";
import { lut16 } from "./lut16";

// Scratch layout (the call's own, so that calls on other threads share nothing writable):
//   [0, 512)     the 32 lanes, an f32x4 each (4 weight rows; the scalar path uses 32 f32)
//   [512, 528)   the 16 weight levels wq as i8
//   [1024, ...)  q: m rows of kp i16 (kp = K rounded up to 64), then d: m rows of G f32, then
//                (SIMD) the chunk sums of 4 W rows × 4 A rows, kp / 32 i32x4 each (kp * 8 bytes)
@inline const ACC: usize = 0;
@inline const WQ: usize = 512;
@inline export const GEMV8_SCRATCH_HEAD: usize = 1024;

// hoisted vector constants (see vconst.ts: a load is hoisted, an inline v128.const is not)
const C8: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<u32>([
  0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, // low nibbles
  0xff00ff00, 0xff00ff00, 0xff00ff00, 0xff00ff00, // high byte of each i16
], 16);

// q = roundEven(x * r) as an integer in -127..127: x * r is one f32 product, rounded to
// the nearest integer (ties to even); ±inf (r overflows where amax < 127 / FLT_MAX)
// saturates to ±127, NaN (0 * inf) gives 0.
@inline function quantOne(x: f32, r: f32): i32 {
  const v = nearest<f32>(x * r);
  if (v != v) return 0;
  return <i32>min<f32>(max<f32>(v, -127), 127);
}

// Position of element k of a 32-chunk in the SIMD layout: a 16-byte load holds 32 codes,
// byte i = (k = 2i) << 4 | (k = 2i + 1); the kernel decodes the even k (high nibbles)
// and odd k (low nibbles) into bytes WH[i] = w[2i], WL[i] = w[2i + 1] and reads them as
// i16 lanes j: shl 8 takes byte 2j, and 0xff00 byte 2j + 1 (each times 256). So the four
// i16x8 vectors hold k = 4j, 4j + 2, 4j + 1, 4j + 3.
@inline function permuted(k: i32): i32 {
  const c = k & ~31, e = k & 31;
  const j = e >> 2, s = e & 3;
  const v = s == 0 ? 0 : s == 2 ? 1 : s == 1 ? 2 : 3;
  return c + (v << 3) + j;
}

// Quantizes row `row` of A (k elements of adtype) into q (kp i16) and d (G f32).
// A group with a NaN or ±inf gets d = NaN (its t is NaN), q = 0; amax < 2^-126 gives q = 0, d = 0.
function quantizeRow(a: usize, row: i32, k: i32, adtype: i32, q: usize, d: usize, perm: bool): void {
  const G = (k + 63) >> 6;
  const src = <usize>row * k;
  for (let g = 0; g < G; g++) {
    const k0 = g << 6, k1 = min(k, k0 + 64);
    let amax: f32 = 0;
    let bad = false;
    for (let t = k0; t < k1; t++) {
      const x = abs<f32>(loadAsF32(a, src + t, adtype));
      if (!(x <= 3.4028234663852886e38)) bad = true; // NaN or inf
      else if (x > amax) amax = x;
    }
    let dg: f32;
    if (bad) {
      dg = NaN;
      for (let t = k0; t < k1; t++) store<i16>(q + (<usize>(perm ? permuted(t) : t) << 1), 0);
    } else if (amax < reinterpret<f32>(<u32>0x00800000)) {
      dg = 0;
      for (let t = k0; t < k1; t++) store<i16>(q + (<usize>(perm ? permuted(t) : t) << 1), 0);
    } else {
      const r: f32 = <f32>127 / amax;
      dg = amax / <f32>16129;
      for (let t = k0; t < k1; t++) {
        store<i16>(q + (<usize>(perm ? permuted(t) : t) << 1), <i16>quantOne(loadAsF32(a, src + t, adtype), r));
      }
    }
    // padding up to the 64-multiple: zeros (the SIMD path may read them; they add 0)
    for (let t = k1; t < k0 + 64; t++) store<i16>(q + (<usize>(perm ? permuted(t) : t) << 1), 0);
    store<f32>(d + (<usize>g << 2), dg);
  }
}

// The literal definition for one output: A row (q, d) against W row at flat `rf`
// (relative to `base`, the flat index of packed[0]); returns r[0] of the tree.
function rowLiteral(q: usize, d: usize, k: i32, packed: usize, base: usize, rf: usize, absmax: usize, blocksize: usize, wq: usize, acc: usize): f32 {
  for (let l = 0; l < 32; l++) store<f32>(acc + (<usize>l << 2), 0);
  const G = (k + 63) >> 6;
  for (let g = 0; g < G; g++) {
    const k0 = g << 6, k1 = min(k, k0 + 64);
    const dg = load<f32>(d + (<usize>g << 2));
    let t: f32 = 0;
    let isum: i32 = 0;
    let blk = (rf + <usize>k0) / blocksize;
    for (let kk = k0; kk < k1; kk++) {
      const f = rf + <usize>kk;
      const b = f / blocksize;
      if (b != blk) {
        t = t + <f32>isum * (load<f32>(absmax + (blk << 2)) * dg);
        isum = 0;
        blk = b;
      }
      const byte = <u32>load<u8>(packed + ((f - base) >> 1));
      const code = (f & 1) == 0 ? byte >> 4 : byte & 15;
      isum += <i32>load<i16>(q + (<usize>kk << 1)) * <i32>load<i8>(wq + code);
    }
    t = t + <f32>isum * (load<f32>(absmax + (blk << 2)) * dg);
    const p = acc + (<usize>(g & 31) << 2);
    store<f32>(p, load<f32>(p) + t);
  }
  for (let s = 16; s > 0; s >>= 1) {
    for (let l = 0; l < s; l++) {
      const p = acc + (<usize>l << 2);
      store<f32>(p, load<f32>(p) + load<f32>(p + (<usize>s << 2)));
    }
  }
  return load<f32>(acc);
}

// The integer dot product of one 32-chunk (16 bytes of codes at pk) with the permuted q
// at x: an i32x4 whose lane sum is 256 × Σ q × wq (each lane holds 8 products).
@inline function chunkDot(pk: usize, x: usize, tbl: v128, m0f: v128, mff: v128): v128 {
  const b = v128.load(pk);
  const wh = lut16(tbl, v128.and(i16x8.shr_u(b, 4), m0f)); // bytes w[2i]
  const wl = lut16(tbl, v128.and(b, m0f)); // bytes w[2i + 1]
  const d0 = i32x4.dot_i16x8_s(i16x8.shl(wh, 8), v128.load(x));
  const d1 = i32x4.dot_i16x8_s(v128.and(wh, mff), v128.load(x, 16));
  const d2 = i32x4.dot_i16x8_s(i16x8.shl(wl, 8), v128.load(x, 32));
  const d3 = i32x4.dot_i16x8_s(v128.and(wl, mff), v128.load(x, 48));
  return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
}

// The 4 lane sums of 4 vectors, one per lane (exact: integers).
@inline function hsum4(a: v128, b: v128, c: v128, e: v128): v128 {
  const ab = i32x4.add(i8x16.shuffle(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), i8x16.shuffle(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31));
  const ce = i32x4.add(i8x16.shuffle(c, e, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), i8x16.shuffle(c, e, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31));
  return i32x4.add(
    i8x16.shuffle(ab, ce, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27),
    i8x16.shuffle(ab, ce, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31),
  );
}

@inline function absmax4(absmax: usize, f0: usize, f1: usize, f2: usize, f3: usize, sh: usize): v128 {
  let v = f32x4.splat(load<f32>(absmax + ((f0 >> sh) << 2)));
  v = f32x4.replace_lane(v, 1, load<f32>(absmax + ((f1 >> sh) << 2)));
  v = f32x4.replace_lane(v, 2, load<f32>(absmax + ((f2 >> sh) << 2)));
  return f32x4.replace_lane(v, 3, load<f32>(absmax + ((f3 >> sh) << 2)));
}

@inline function block4(f0: usize, f1: usize, f2: usize, f3: usize, sh: usize): v128 {
  let v = i32x4.splat(<i32>(f0 >> sh));
  v = i32x4.replace_lane(v, 1, <i32>(f1 >> sh));
  v = i32x4.replace_lane(v, 2, <i32>(f2 >> sh));
  return i32x4.replace_lane(v, 3, <i32>(f3 >> sh));
}

// Pass 1, integers: the chunk sums of one W row (codes at pk, nch 32-chunks) against one or
// four quantized A rows (permuted q at x0..x3): an i32x4 per chunk (lane sum = 256 × Σ q × wq),
// stored at s0..s3. Integer sums: any order gives the same values.
// One A row against four W rows (codes at p0..p3): the q vectors loaded once per chunk.
@inline function rowDot(pk: usize, x0: v128, x1: v128, x2: v128, x3: v128, tbl: v128, m0f: v128, mff: v128): v128 {
  const b = v128.load(pk);
  const wh = lut16(tbl, v128.and(i16x8.shr_u(b, 4), m0f));
  const wl = lut16(tbl, v128.and(b, m0f));
  return dot4(i16x8.shl(wh, 8), v128.and(wh, mff), i16x8.shl(wl, 8), v128.and(wl, mff), x0, x1, x2, x3);
}

// The four i16 weight vectors of a chunk against its four q vectors: one i32x4.
@inline function dot4(w0: v128, w1: v128, w2: v128, w3: v128, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, x0), i32x4.dot_i16x8_s(w1, x1)),
    i32x4.add(i32x4.dot_i16x8_s(w2, x2), i32x4.dot_i16x8_s(w3, x3)),
  );
}

// dot4 against the q vectors at x
@inline function dot4At(w0: v128, w1: v128, w2: v128, w3: v128, x: usize): v128 {
  return dot4(w0, w1, w2, w3, v128.load(x), v128.load(x, 16), v128.load(x, 32), v128.load(x, 48));
}

function chunkSumsRows4(p0: usize, p1: usize, p2: usize, p3: usize, nch: i32, x: usize, s0: usize, s1: usize, s2: usize, s3: usize, tbl: v128): void {
  const m0f = v128.load(C8), mff = v128.load(C8, 16);
  for (let c = 0; c < nch; c++) {
    const o = <usize>c << 4, xo = x + (<usize>c << 6);
    const x0 = v128.load(xo), x1 = v128.load(xo, 16), x2 = v128.load(xo, 32), x3 = v128.load(xo, 48);
    v128.store(s0 + o, rowDot(p0 + o, x0, x1, x2, x3, tbl, m0f, mff));
    v128.store(s1 + o, rowDot(p1 + o, x0, x1, x2, x3, tbl, m0f, mff));
    v128.store(s2 + o, rowDot(p2 + o, x0, x1, x2, x3, tbl, m0f, mff));
    v128.store(s3 + o, rowDot(p3 + o, x0, x1, x2, x3, tbl, m0f, mff));
  }
}

function chunkSums4(pk: usize, nch: i32, x0: usize, x1: usize, x2: usize, x3: usize, s0: usize, s1: usize, s2: usize, s3: usize, tbl: v128): void {
  const m0f = v128.load(C8), mff = v128.load(C8, 16);
  for (let c = 0; c < nch; c++) {
    const o = <usize>c;
    const b = v128.load(pk + (o << 4));
    const wh = lut16(tbl, v128.and(i16x8.shr_u(b, 4), m0f));
    const wl = lut16(tbl, v128.and(b, m0f));
    const w0 = i16x8.shl(wh, 8), w1 = v128.and(wh, mff), w2 = i16x8.shl(wl, 8), w3 = v128.and(wl, mff);
    const xo = o << 6, so = o << 4;
    v128.store(s0 + so, dot4At(w0, w1, w2, w3, x0 + xo));
    v128.store(s1 + so, dot4At(w0, w1, w2, w3, x1 + xo));
    v128.store(s2 + so, dot4At(w0, w1, w2, w3, x2 + xo));
    v128.store(s3 + so, dot4At(w0, w1, w2, w3, x3 + xo));
  }
}

// Pass 2, floats: four W rows (flat starts r0..r3 relative to base; their chunk sums at
// c0..c3) against one quantized A row (d): t per group and row, the 32 lanes (an f32x4 each,
// one W row per vector lane) and the tree; returns r[0] of each row's tree. `cut`: a group
// may be cut at its 32 boundary (blocksize 32, or k % 64 == 32).
function rowsSimd(
  c0: usize, c1: usize, c2: usize, c3: usize, d: usize, k: i32, r0: usize, r1: usize, r2: usize, r3: usize,
  absmax: usize, sh: usize, acc: usize, cut: bool,
): v128 {
  const zero = f32x4.splat(0);
  for (let l = 0; l < 32; l++) v128.store(acc + (<usize>l << 4), zero);
  const G = (k + 63) >> 6;
  const full = k >> 6; // groups of two chunks
  for (let g = 0; g < G; g++) {
    const o = <usize>g << 5; // byte offset of the group's first chunk sum
    const k0 = <usize>g << 6;
    const dg = f32x4.splat(load<f32>(d + (<usize>g << 2)));
    const a0 = f32x4.mul(absmax4(absmax, r0 + k0, r1 + k0, r2 + k0, r3 + k0, sh), dg);
    let t: v128;
    if (g < full) {
      const s00 = v128.load(c0 + o), s01 = v128.load(c0 + o, 16);
      const s10 = v128.load(c1 + o), s11 = v128.load(c1 + o, 16);
      const s20 = v128.load(c2 + o), s21 = v128.load(c2 + o, 16);
      const s30 = v128.load(c3 + o), s31 = v128.load(c3 + o, 16);
      if (!cut) {
        const s = i32x4.shr_s(hsum4(i32x4.add(s00, s01), i32x4.add(s10, s11), i32x4.add(s20, s21), i32x4.add(s30, s31)), 8);
        t = f32x4.add(zero, f32x4.mul(f32x4.convert_i32x4_s(s), a0));
      } else {
        const h0 = i32x4.shr_s(hsum4(s00, s10, s20, s30), 8), h1 = i32x4.shr_s(hsum4(s01, s11, s21, s31), 8);
        const k1 = k0 + 32;
        const split = i32x4.ne(block4(r0 + k0, r1 + k0, r2 + k0, r3 + k0, sh), block4(r0 + k1, r1 + k1, r2 + k1, r3 + k1, sh));
        const a1 = f32x4.mul(absmax4(absmax, r0 + k1, r1 + k1, r2 + k1, r3 + k1, sh), dg);
        const ts = f32x4.add(f32x4.add(zero, f32x4.mul(f32x4.convert_i32x4_s(h0), a0)), f32x4.mul(f32x4.convert_i32x4_s(h1), a1));
        const tm = f32x4.add(zero, f32x4.mul(f32x4.convert_i32x4_s(i32x4.add(h0, h1)), a0));
        t = v128.bitselect(ts, tm, split);
      }
    } else {
      // the last group, one chunk (k % 64 == 32)
      const s = i32x4.shr_s(hsum4(v128.load(c0 + o), v128.load(c1 + o), v128.load(c2 + o), v128.load(c3 + o)), 8);
      t = f32x4.add(zero, f32x4.mul(f32x4.convert_i32x4_s(s), a0));
    }
    const pl = acc + (<usize>(g & 31) << 4);
    v128.store(pl, f32x4.add(v128.load(pl), t));
  }
  for (let s = 16; s > 0; s >>= 1) {
    for (let l = 0; l < s; l++) {
      const pl = acc + (<usize>l << 4);
      v128.store(pl, f32x4.add(v128.load(pl), v128.load(pl + (<usize>s << 4))));
    }
  }
  return v128.load(acc);
}

@inline function storeOut(out: usize, idx: usize, v: f32, bias: usize, jn: usize, dtype: i32): void {
  storeFromF32(out, idx, bias != 0 ? v + load<f32>(bias + (jn << 2)) : v, dtype);
}

// Same parameters as gemv4bit (assembly/gemv.ts): out[i, j] for i < m, j < n, W rows j0 + j
// (flat index (j0 + j) * k relative to `base`, the flat index of packed[0]); absmax f32 per
// flat block; bias f32 indexed by j0 + j; scratch: GEMV8_SCRATCH_HEAD + m * (kp * 2 + G * 4)
// + kp * 8 bytes, kp = k rounded up to 64, G = ceil(k / 64).
export function gemv4bitInt8(
  a: usize, m: i32, k: i32, adtype: i32, packed: usize, base: u32, j0: i32, n: i32, absmax: usize,
  blocksize: i32, qtype: i32, bias: usize, dtype: i32, out: usize, scratch: usize,
): void {
  const lut = qtype == QT_NF4 ? NF4_LUT : FP4_LUT;
  const wq = scratch + WQ, acc = scratch + ACC;
  for (let c = 0; c < 16; c++) store<i8>(wq + c, <i8>(<i32>nearest<f32>(load<f32>(lut + (<usize>c << 2)) * <f32>127)));
  const G = (k + 63) >> 6, kp = G << 6;
  const qs = scratch + GEMV8_SCRATCH_HEAD, ds = qs + ((<usize>m * kp) << 1);
  // whole chunks in power-of-two blocks of at least 32 (the op's blocksizes; the raw kernel takes any)
  const fast = ASC_FEATURE_SIMD && (k & 31) == 0 && k > 0 && blocksize >= 32 && popcnt(blocksize) == 1 &&
    ((<usize>j0 * k - base) & 31) == 0;
  for (let i = 0; i < m; i++) quantizeRow(a, i, k, adtype, qs + ((<usize>i * kp) << 1), ds + ((<usize>i * G) << 2), fast);
  const bs = <usize>blocksize;
  if (ASC_FEATURE_SIMD) {
    if (!fast) return gemvLiteral(qs, ds, m, k, kp, G, packed, base, j0, n, absmax, bs, wq, acc, bias, dtype, out);
    const sh = <usize>ctz(blocksize);
    const tbl = v128.load(wq);
    const cut = blocksize == 32 || (k & 63) != 0;
    const nch = k >> 5;
    // chunk sums: 4 W rows × 4 A rows, nch i32x4 each
    const cs = ds + ((<usize>m * G) << 2);
    const span = <usize>nch << 4;
    for (let i0 = 0; i0 < m; i0 += 4) {
      const mi = min(4, m - i0);
      const x0 = qs + ((<usize>i0 * kp) << 1);
      const x1 = mi > 1 ? x0 + (<usize>kp << 1) : x0, x2 = mi > 2 ? x0 + (<usize>kp << 2) : x0, x3 = mi > 3 ? x0 + (<usize>kp * 6) : x0;
      for (let j = 0; j < n; j += 4) {
        const jn = <usize>(j0 + j);
        const last = <usize>(j0 + n - 1);
        const r0 = jn * k, r1 = min(jn + 1, last) * k, r2 = min(jn + 2, last) * k, r3 = min(jn + 3, last) * k;
        if (mi == 1) {
          chunkSumsRows4(
            packed + ((r0 - base) >> 1), packed + ((r1 - base) >> 1), packed + ((r2 - base) >> 1), packed + ((r3 - base) >> 1),
            nch, x0, cs, cs + 4 * span, cs + 8 * span, cs + 12 * span, tbl,
          );
        } else {
          for (let r = 0; r < 4; r++) {
            const rf = r == 0 ? r0 : r == 1 ? r1 : r == 2 ? r2 : r3;
            const sr = cs + <usize>r * 4 * span;
            chunkSums4(packed + ((rf - base) >> 1), nch, x0, x1, x2, x3, sr, sr + span, sr + 2 * span, sr + 3 * span, tbl);
          }
        }
        for (let i = 0; i < mi; i++) {
          const d = ds + ((<usize>(i0 + i) * G) << 2);
          const ci = cs + <usize>i * span;
          const v = rowsSimd(ci, ci + 4 * span, ci + 8 * span, ci + 12 * span, d, k, r0, r1, r2, r3, absmax, sh, acc, cut);
          const o = <usize>(i0 + i) * n + j;
          storeOut(out, o, f32x4.extract_lane(v, 0), bias, jn, dtype);
          if (j + 1 < n) storeOut(out, o + 1, f32x4.extract_lane(v, 1), bias, jn + 1, dtype);
          if (j + 2 < n) storeOut(out, o + 2, f32x4.extract_lane(v, 2), bias, jn + 2, dtype);
          if (j + 3 < n) storeOut(out, o + 3, f32x4.extract_lane(v, 3), bias, jn + 3, dtype);
        }
      }
    }
    return;
  }
  gemvLiteral(qs, ds, m, k, kp, G, packed, base, j0, n, absmax, bs, wq, acc, bias, dtype, out);
}

function gemvLiteral(
  qs: usize, ds: usize, m: i32, k: i32, kp: i32, G: i32, packed: usize, base: usize, j0: i32, n: i32, absmax: usize,
  bs: usize, wq: usize, acc: usize, bias: usize, dtype: i32, out: usize,
): void {
  for (let i = 0; i < m; i++) {
    const q = qs + ((<usize>i * kp) << 1), d = ds + ((<usize>i * G) << 2);
    for (let j = 0; j < n; j++) {
      const jn = <usize>(j0 + j);
      const v = rowLiteral(q, d, k, packed, base, jn * <usize>k, absmax, bs, wq, acc);
      storeOut(out, <usize>i * n + j, v, bias, jn, dtype);
    }
  }
}
