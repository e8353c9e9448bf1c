// The SIMD build and the scalar oracle give identical bytes: golden inputs and
// randomized shapes, dtypes, blocksizes, quant types, storages and codes.
import { afterAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  createDynamicMap,
  dequantize4bit,
  dequantizeBlockwise,
  quantize4bit,
  quantizeBlockwise,
  setWasmBuild,
} from '../src/index.js';
import { FloatDType } from '../src/dtypes.js';
import { BLOCKSIZES_4BIT, BLOCKSIZES_8BIT } from '../src/ops/validate.js';
import { bytes, casesOf, loadGolden } from './helpers/golden.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { both } from './helpers/util.js';

const DTYPES: FloatDType[] = ['float32', 'float16', 'bfloat16'];

function sameTensor(a: Tensor, b: Tensor, what: string): void {
  expect(a.dtype, what).toBe(b.dtype);
  expect(a.shape, what).toEqual(b.shape);
  expect(Buffer.from(bytes(a)).equals(Buffer.from(bytes(b))), what).toBe(true);
}

/** Random data with the awkward cases planted: zero, constant, tiny, huge, near-threshold blocks. */
function awkwardData(rng: Rng, n: number): Float32Array {
  const x = randn(rng, n, 10 ** rng.int(-3, 3));
  const kinds = ['zero', 'const', 'tiny', 'huge', 'subnormal', 'grid'];
  for (let k = 0; k < 4 && n > 0; k++) {
    const start = rng.int(0, n - 1),
      len = rng.int(1, 300);
    const kind = rng.pick(kinds);
    for (let i = start; i < Math.min(n, start + len); i++) {
      if (kind === 'zero') x[i] = 0;
      else if (kind === 'const') x[i] = 0.75;
      else if (kind === 'tiny') x[i] = rng.normal() * 1e-30;
      else if (kind === 'huge') x[i] = rng.normal() * 1e37;
      else if (kind === 'subnormal') x[i] = rng.normal() * 1e-40;
      else x[i] = rng.int(-8, 8) / 8; // exact multiples: many ties
    }
  }
  return x;
}

function randomShape(rng: Rng): number[] {
  const n = rng.pick([1, 2, 3, 31, 33, 63, 64, 65, 97, 127, 129, 255, 257, 1021, 4099, rng.int(1, 20000), rng.int(1, 70000)]);
  if (n % 2 === 0 && rng.next() < 0.5) return [2, n / 2];
  if (n % 3 === 0 && n > 100 && rng.next() < 0.3) return [3, 1, n / 3];
  return [n];
}

describe('SIMD build == scalar build', () => {
  it('on every golden 4-bit and blockwise input', () => {
    for (const c of casesOf('quantize_4bit')) {
      const g = loadGolden(c.file);
      const opts = {
        blocksize: c.blocksize as number,
        quantType: c.quant_type as 'nf4',
        compressStatistics: c.compress_statistics as boolean,
      };
      const [[p1, s1], [p2, s2]] = both(() => quantize4bit(g.input!, opts));
      sameTensor(p1, p2, c.file);
      sameTensor(s1.absmax, s2.absmax, c.file);
      for (const dtype of DTYPES) {
        const st = Object.assign(Object.create(Object.getPrototypeOf(s1)), s1, { dtype });
        const [d1, d2] = both(() => dequantize4bit(p1, st));
        sameTensor(d1, d2, `${c.file} -> ${dtype}`);
      }
    }
    for (const c of casesOf('quantize_blockwise')) {
      const g = loadGolden(c.file);
      const [[q1, s1], [q2, s2]] = both(() =>
        quantizeBlockwise(g.input!, { blocksize: c.blocksize as number, nested: c.nested as boolean }),
      );
      sameTensor(q1, q2, c.file);
      sameTensor(s1.absmax, s2.absmax, c.file);
      const [d1, d2] = both(() => dequantizeBlockwise(q1, s1));
      sameTensor(d1, d2, c.file);
    }
  });

  it('on every dtype x blocksize x quant type, with n = 1, odd, and not a multiple of the blocksize', () => {
    const rng = new Rng(99);
    for (const dtype of DTYPES) {
      for (const blocksize of BLOCKSIZES_4BIT) {
        for (const n of [1, 3, blocksize - 1, blocksize + 1, 3 * blocksize + 5]) {
          const A = asDType(awkwardData(rng, n), [n], dtype);
          for (const quantType of ['nf4', 'fp4'] as const) {
            const what = `${dtype} bs${blocksize} n=${n} ${quantType}`;
            const [[p1, s1], [p2, s2]] = both(() =>
              quantize4bit(A, { blocksize, quantType, compressStatistics: n > 100, allowNonFinite: true }),
            );
            sameTensor(p1, p2, what);
            sameTensor(s1.absmax, s2.absmax, what);
            for (const out of DTYPES) {
              const st = Object.assign(Object.create(Object.getPrototypeOf(s1)), s1, { dtype: out });
              const [d1, d2] = both(() => dequantize4bit(p1, st));
              sameTensor(d1, d2, `${what} -> ${out}`);
            }
          }
          if (blocksize >= 64) {
            const [[q1, t1], [q2, t2]] = both(() => quantizeBlockwise(A, { blocksize, allowNonFinite: true }));
            sameTensor(q1, q2, `blockwise ${dtype} bs${blocksize} n=${n}`);
            sameTensor(t1.absmax, t2.absmax, `blockwise ${dtype} bs${blocksize} n=${n}`);
            for (const out of DTYPES) {
              const st = Object.assign(Object.create(Object.getPrototypeOf(t1)), t1, { dtype: out });
              const [d1, d2] = both(() => dequantizeBlockwise(q1, st));
              sameTensor(d1, d2, `blockwise ${dtype} bs${blocksize} n=${n} -> ${out}`);
            }
          }
        }
      }
    }
  });

  const SEED = 20261122;
  it(`on random 4-bit cases (seed ${SEED})`, () => {
    const rng = new Rng(SEED);
    for (let trial = 0; trial < 600; trial++) {
      const shape = randomShape(rng);
      const n = shape.reduce((a, b) => a * b, 1);
      const dtype = rng.pick(DTYPES);
      const blocksize = rng.pick(BLOCKSIZES_4BIT);
      const quantType = rng.pick(['nf4', 'fp4'] as const);
      const compressStatistics = rng.next() < 0.4;
      let quantStorage = rng.pick(['uint8', 'float16', 'bfloat16', 'float32'] as const);
      const size = quantStorage === 'uint8' ? 1 : quantStorage === 'float32' ? 4 : 2;
      if (Math.ceil(n / 2) % size !== 0) quantStorage = 'uint8';
      const allowNonFinite = rng.next() < 0.2;
      const x = awkwardData(rng, n);
      if (allowNonFinite) for (let k = 0; k < 5; k++) x[rng.int(0, n - 1)] = rng.pick([NaN, Infinity, -Infinity]);
      const A = asDType(x, shape, dtype);
      const what = `trial ${trial}: n=${n} ${dtype} bs=${blocksize} ${quantType} nested=${compressStatistics} ${quantStorage}`;
      const opts = { blocksize, quantType, compressStatistics, quantStorage, allowNonFinite: true };
      const [[p1, s1], [p2, s2]] = both(() => quantize4bit(A, opts));
      sameTensor(p1, p2, what);
      sameTensor(s1.absmax, s2.absmax, what);
      expect(Object.is(s1.offset, s2.offset), what).toBe(true);
      if (compressStatistics) sameTensor(s1.state2!.absmax, s2.state2!.absmax, what);
      const [d1, d2] = both(() => dequantize4bit(p1, s1));
      sameTensor(d1, d2, what);
    }
  });

  it(`on random blockwise cases with several codes (seed ${SEED + 1})`, () => {
    const rng = new Rng(SEED + 1);
    const codes = [
      createDynamicMap(),
      createDynamicMap({ signed: false }),
      createDynamicMap({ maxExponentBits: 4 }),
      createDynamicMap({ totalBits: 4, maxExponentBits: 3 }), // 241 duplicate zeros
    ];
    for (let trial = 0; trial < 600; trial++) {
      const shape = randomShape(rng);
      const n = shape.reduce((a, b) => a * b, 1);
      const dtype = rng.pick(DTYPES);
      const blocksize = rng.pick(BLOCKSIZES_8BIT);
      const code = rng.pick(codes);
      const nested = rng.next() < 0.4;
      const x = awkwardData(rng, n);
      if (rng.next() < 0.2) for (let k = 0; k < 5; k++) x[rng.int(0, n - 1)] = rng.pick([NaN, Infinity, -Infinity]);
      const A = asDType(x, shape, dtype);
      const what = `trial ${trial}: n=${n} ${dtype} bs=${blocksize} nested=${nested}`;
      const [[q1, s1], [q2, s2]] = both(() => quantizeBlockwise(A, { blocksize, code, nested, allowNonFinite: true }));
      sameTensor(q1, q2, `${what}: q`);
      sameTensor(s1.absmax, s2.absmax, `${what}: absmax`);
      if (nested) sameTensor(s1.state2!.absmax, s2.state2!.absmax, `${what}: nested absmax`);
      const [d1, d2] = both(() => dequantizeBlockwise(q1, s1));
      sameTensor(d1, d2, `${what}: dequantized`);
    }
  });
});

afterAll(() => setWasmBuild('simd'));
