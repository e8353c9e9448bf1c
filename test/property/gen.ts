// Generators for the property tests. A case is a record of small parameters
// (shape, dtype, blocksize, a data seed, ...) that fast-check draws and shrinks;
// the tensor data are then made from the seed with a fast PRNG, with the awkward
// values planted that quantizers get wrong: zero and constant blocks, ties at the
// code thresholds, tiny and huge magnitudes, subnormals, and NaN/Inf when allowed.
import fc from 'fast-check';
import { FloatDType, TypedArray } from '../../src/dtypes.js';
import { numberToBf16, numberToF16 } from '../../src/float16.js';
import { Tensor, tensor } from '../../src/tensor.js';
import { NF4_T } from '../helpers/reference.js';
import { Rng } from '../helpers/random.js';

/** The recorded seed (bench/property-long.mjs passes another through BNBJS_PROP_SEED). */
export const SEED = Number(process.env.BNBJS_PROP_SEED ?? 20261123);
/** numRuns multiplier for the long runs (BNBJS_PROP_SCALE). */
export const SCALE = Number(process.env.BNBJS_PROP_SCALE ?? 1);

export function runs(n: number): { seed: number; numRuns: number } {
  return { seed: SEED, numRuns: Math.max(1, Math.round(n * SCALE)) };
}

export const FLOAT_DTYPES: FloatDType[] = ['float32', 'float16', 'bfloat16'];

const PRIMES = [2, 3, 5, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381];

/** Element counts: 1, primes, around block multiples, and a few large ones. */
export const count = (max = 70_000): fc.Arbitrary<number> =>
  fc.oneof(
    fc.constant(1),
    fc.integer({ min: 1, max: 70 }),
    fc.constantFrom(...PRIMES.filter((p) => p <= max)),
    fc
      .tuple(fc.constantFrom(32, 64, 128, 256, 512, 1024, 2048, 4096), fc.integer({ min: 1, max: 5 }), fc.integer({ min: -3, max: 3 }))
      .map(([b, k, d]) => Math.max(1, Math.min(max, b * k + d))),
    fc.integer({ min: 1, max }),
  );

/** A shape holding n elements: [n], [a, n/a], [a, b, n/(ab)] or with a leading 1. */
export function shapeOf(n: number, pick: number): number[] {
  const divisors = [2, 3, 4, 5, 7, 8, 16, 64].filter((d) => n % d === 0 && n > d);
  if (pick % 4 === 0 || divisors.length === 0) return [n];
  const d = divisors[pick % divisors.length]!;
  if (pick % 4 === 1) return [d, n / d];
  if (pick % 4 === 2) return [1, n];
  const e = divisors.find((x) => (n / d) % x === 0 && n / d > x);
  return e ? [d, e, n / d / e] : [n / d, d];
}

export type Planted = 'none' | 'zero' | 'const' | 'tiny' | 'huge' | 'subnormal' | 'grid' | 'ties' | 'f16max';
export const PLANTED: Planted[] = ['none', 'zero', 'const', 'tiny', 'huge', 'subnormal', 'grid', 'ties', 'f16max'];

/** n f32 values: N(0, 10^k) with runs of awkward values, and NaN/Inf when `nonFinite`. */
export function values(seed: number, n: number, planted: readonly Planted[], nonFinite = false): Float32Array {
  const rng = new Rng(seed);
  const scale = 10 ** rng.int(-3, 3);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal() * scale;
  for (const kind of planted) {
    if (kind === 'none') continue;
    const start = rng.int(0, n - 1),
      len = rng.int(1, 600);
    for (let i = start; i < Math.min(n, start + len); i++) {
      if (kind === 'zero') x[i] = 0;
      else if (kind === 'const') x[i] = -0.75;
      else if (kind === 'tiny') x[i] = rng.normal() * 1e-30;
      else if (kind === 'huge') x[i] = rng.normal() * 1e37;
      else if (kind === 'subnormal') x[i] = rng.normal() * 1e-40;
      else if (kind === 'grid') x[i] = rng.int(-8, 8) / 8;
      else if (kind === 'f16max') x[i] = rng.pick([65504, -65504, 65519, 6.1e-5, -6e-8]);
      // the NF4 decision thresholds and their f32 neighbours, against an absmax of 1
      else x[i] = i % 7 === 0 ? 1 : rng.pick(NF4_T) * (1 + rng.int(-1, 1) * 2 ** -23);
    }
  }
  if (nonFinite) for (let k = rng.int(1, 6); k > 0; k--) x[rng.int(0, n - 1)] = rng.pick([NaN, Infinity, -Infinity]);
  return x;
}

/**
 * f32 values as a tensor of `dtype` (16-bit floats rounded to nearest even); finite
 * values too large for float16 are clamped to its range rather than becoming Inf.
 */
export function floatTensor(x: Float32Array, shape: number[], dtype: FloatDType): Tensor {
  if (dtype === 'float32') return tensor(x, shape);
  if (dtype === 'bfloat16') return tensor(Uint16Array.from(x, numberToBf16), shape, dtype);
  return tensor(
    Uint16Array.from(x, (v) => numberToF16(Number.isFinite(v) ? Math.max(-65504, Math.min(65504, v)) : v)),
    shape,
    dtype,
  );
}

/**
 * The same elements in a view `pad` elements into a larger buffer whose other bytes
 * are garbage: a Float32Array at byte offset 4 (not 8- or 16-aligned), a
 * Uint16Array at 2, a Uint8Array at an odd offset. Results must not change.
 */
export function offsetView<T extends TypedArray>(data: T, pad: number): T {
  if (pad === 0) return data;
  const C = data.constructor as { new (b: ArrayBuffer, o: number, l: number): T; BYTES_PER_ELEMENT: number };
  const size = C.BYTES_PER_ELEMENT;
  const buf = new ArrayBuffer((data.length + pad + 3) * size);
  new Uint8Array(buf).fill(0xa5);
  const view = new C(buf, pad * size, data.length);
  view.set(data as never);
  return view;
}

export function withData(t: Tensor, data: TypedArray): Tensor {
  return tensor(data, [...t.shape], t.dtype);
}

/** Byte equality of two tensors (dtype, shape, bytes), with the first differing element named. */
export function assertSame(a: Tensor, b: Tensor, what: string): void {
  if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) {
    throw new Error(`${what}: ${a.dtype} [${a.shape}] vs ${b.dtype} [${b.shape}]`);
  }
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  if (x.length !== y.length) throw new Error(`${what}: ${x.length} vs ${y.length} bytes`);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      const e = Math.floor(i / a.data.BYTES_PER_ELEMENT);
      throw new Error(`${what}: element ${e} differs (${a.data[e]} vs ${b.data[e]})`);
    }
  }
}

export function check(ok: boolean, what: () => string): void {
  if (!ok) throw new Error(what());
}
