// gemv4bit's int8-activation mode written out from its definition (docs/bit-exactness.md,
// "4-bit GEMV", "int8-activation mode") in plain JS: every f32 operation one Math.fround, the
// integer sums exact (they stay far below 2^53), no float64 intermediate kept anywhere.
const f = Math.fround;

/** Round half to even, for finite values. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The 16 int8 weight levels of a 4-bit code table (f32 values). */
export function weightLevels(code: Float32Array): Int32Array {
  return Int32Array.from(code, (c) => roundEven(f(c * 127)));
}

/** q and d of one A row (f32 values), per the definition. */
export function quantizeRowRef(x: Float32Array): { q: Int32Array; d: Float32Array } {
  const K = x.length,
    G = Math.ceil(K / 64);
  const q = new Int32Array(K),
    d = new Float32Array(G);
  for (let g = 0; g < G; g++) {
    const k0 = g * 64,
      k1 = Math.min(K, k0 + 64);
    let amax = 0,
      bad = false;
    for (let k = k0; k < k1; k++) {
      const a = Math.abs(x[k]!);
      if (!Number.isFinite(a)) bad = true;
      else if (a > amax) amax = a;
    }
    if (bad) {
      d[g] = NaN;
      continue;
    }
    if (amax < 2 ** -126) continue; // q = 0, d = 0
    const r = f(127 / amax);
    d[g] = f(amax / 16129);
    for (let k = k0; k < k1; k++) {
      const v = f(x[k]! * r);
      q[k] = Number.isNaN(v) ? 0 : Math.max(-127, Math.min(127, Number.isFinite(v) ? roundEven(v) : v));
    }
  }
  return { q, d };
}

/**
 * out[i, n] for A [M, K] (f32 values), codes (one per weight, row-major [N, K]), the f32
 * absmax per flat block, the f32 code table and an optional f32 bias: the f32 results
 * before the rounding to A's dtype.
 */
export function gemvInt8Ref(
  A: Float32Array,
  M: number,
  K: number,
  codes: Uint8Array,
  N: number,
  absmax: Float32Array,
  blocksize: number,
  code: Float32Array,
  bias: Float32Array | null,
): Float32Array {
  const wq = weightLevels(code);
  const out = new Float32Array(M * N);
  const G = Math.ceil(K / 64);
  for (let i = 0; i < M; i++) {
    const { q, d } = quantizeRowRef(A.subarray(i * K, (i + 1) * K));
    for (let n = 0; n < N; n++) {
      const acc = new Float32Array(32);
      for (let g = 0; g < G; g++) {
        const k0 = g * 64,
          k1 = Math.min(K, k0 + 64);
        let t = 0,
          isum = 0,
          blk = Math.floor((n * K + k0) / blocksize);
        for (let k = k0; k < k1; k++) {
          const b = Math.floor((n * K + k) / blocksize);
          if (b !== blk) {
            t = f(t + f(isum * f(absmax[blk]! * d[g]!)));
            isum = 0;
            blk = b;
          }
          isum += q[k]! * wq[codes[n * K + k]!]!;
        }
        t = f(t + f(isum * f(absmax[blk]! * d[g]!)));
        acc[g % 32] = f(acc[g % 32]! + t);
      }
      for (let s = 16; s > 0; s >>= 1) for (let l = 0; l < s; l++) acc[l] = f(acc[l]! + acc[l + s]!);
      out[i * N + n] = bias ? f(acc[0]! + bias[n]!) : acc[0]!;
    }
  }
  return out;
}

/** The 4-bit codes of a packed weight, one per element (high nibble first). */
export function unpackCodes(packed: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = i & 1 ? packed[i >> 1]! & 15 : packed[i >> 1]! >> 4;
  return out;
}
