// Properties of the 4-bit and 8-bit blockwise ops: the SIMD build against the
// scalar oracle byte for byte, and each code, absmax and dequantized value against
// an independent statement of bitsandbytes' CUDA arithmetic (test/helpers/reference.ts).
import fc from 'fast-check';
import {
  QuantState,
  Tensor,
  createDynamicMap,
  createLinearMap,
  dequantize4bit,
  dequantizeBlockwise,
  get4bitType,
  quantize4bit,
  quantizeBlockwise,
  toFloat32,
} from '../../src/index.js';
import { FloatDType } from '../../src/dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../../src/float16.js';
import { BLOCKSIZES_4BIT, BLOCKSIZES_8BIT } from '../../src/ops/validate.js';
import { fp4Code, nextDown, nextUp, nf4Code } from '../helpers/reference.js';
import { Rng } from '../helpers/random.js';
import { both } from '../helpers/util.js';
import { FLOAT_DTYPES, PLANTED, assertSame, check, count, floatTensor, offsetView, shapeOf, values, withData } from './gen.js';

const roundTo = (dtype: FloatDType) =>
  dtype === 'float16'
    ? (x: number) => f16ToNumber(numberToF16(x))
    : dtype === 'bfloat16'
      ? (x: number) => bf16ToNumber(numberToBf16(x))
      : (x: number) => Math.fround(x);

/** The same state with another output dtype. */
const withDType = (s: QuantState, dtype: FloatDType) => new QuantState({ ...s, dtype });

/** Block absmax as CUDA computes it when the block is finite: max |x|. */
function blockStats(x: Float32Array, blocksize: number): { amax: number[]; finite: boolean[] } {
  const amax: number[] = [],
    finite: boolean[] = [];
  for (let b = 0; b * blocksize < x.length; b++) {
    let m = 0,
      ok = true;
    for (let i = b * blocksize; i < Math.min(x.length, (b + 1) * blocksize); i++) {
      if (!Number.isFinite(x[i]!)) ok = false;
      else m = Math.max(m, Math.abs(x[i]!));
    }
    amax.push(m);
    finite.push(ok);
  }
  return { amax, finite };
}

/** Codes reachable with the IEEE reciprocal of amax or one a ulp away (docs/bit-exactness.md#the-reciprocal). */
function allowedCodes(x: number, amax: number, codeOf: (s: number) => number): number[] {
  if (amax === 0) return [codeOf(NaN)];
  const r = Math.fround(1 / amax);
  return [r, nextUp(r), nextDown(r)].map((rr) => codeOf(Math.fround(x * rr)));
}

export const quant4Case = fc.record({
  n: count(),
  pick: fc.nat(),
  dtype: fc.constantFrom(...FLOAT_DTYPES),
  blocksize: fc.constantFrom(...BLOCKSIZES_4BIT),
  quantType: fc.constantFrom('nf4' as const, 'fp4' as const),
  storage: fc.constantFrom('uint8', 'float16', 'bfloat16', 'float32'),
  nested: fc.boolean(),
  nonFinite: fc.boolean(),
  planted: fc.array(fc.constantFrom(...PLANTED), { maxLength: 4 }),
  seed: fc.integer(),
  pad: fc.integer({ min: 0, max: 3 }),
  out: fc.constantFrom(...FLOAT_DTYPES),
});

/** quantize4bit / dequantize4bit: both builds, the reference codes and values, every storage, odd-offset inputs. */
export const quantize4bitProperty = () =>
  fc.property(quant4Case, (c) => {
    const x = values(c.seed, c.n, c.planted, c.nonFinite);
    const shape = shapeOf(c.n, c.pick);
    const A = floatTensor(x, shape, c.dtype);
    const view = withData(A, offsetView(A.data, c.pad));
    const before = Buffer.from(new Uint8Array(A.data.buffer, A.data.byteOffset, A.data.byteLength));
    const opts = {
      blocksize: c.blocksize,
      quantType: c.quantType,
      quantStorage: c.storage,
      compressStatistics: c.nested,
      allowNonFinite: c.nonFinite,
    };
    const size = c.storage === 'uint8' ? 1 : c.storage === 'float32' ? 4 : 2;
    if (Math.ceil(c.n / 2) % size !== 0) {
      const [e1, e2] = both(() => {
        try {
          quantize4bit(view, opts);
        } catch (e) {
          return (e as { code?: string }).code;
        }
        return 'none';
      });
      check(e1 === 'E_STORAGE' && e2 === 'E_STORAGE', () => `expected E_STORAGE, got ${e1} / ${e2}`);
      return;
    }
    const [[p1, s1], [p2, s2]] = both(() => quantize4bit(view, opts));
    assertSame(p1, p2, 'packed');
    assertSame(s1.absmax, s2.absmax, 'absmax');
    check(Object.is(s1.offset, s2.offset), () => `offset ${s1.offset} vs ${s2.offset}`);
    if (c.nested) assertSame(s1.state2!.absmax, s2.state2!.absmax, 'nested absmax');
    check(Buffer.from(new Uint8Array(A.data.buffer, A.data.byteOffset, A.data.byteLength)).equals(before), () => 'the input was modified');
    const xs = toFloat32(A);
    const bytes = new Uint8Array(p1.data.buffer, p1.data.byteOffset, p1.data.byteLength);
    const code = (i: number) => (i % 2 === 0 ? bytes[i >> 1]! >> 4 : bytes[i >> 1]! & 15);
    const table = Float32Array.from(get4bitType(c.quantType).data);
    if (c.quantType === 'fp4') table[8] = -0; // CUDA's FP4 decoder keeps the sign of code 8; bnb's Python table has +0
    if (!c.nested) {
      const { amax, finite } = blockStats(xs, c.blocksize);
      const codeOf = c.quantType === 'nf4' ? nf4Code : fp4Code;
      amax.forEach((m, b) => finite[b] && check(s1.absmax.data[b] === m, () => `absmax[${b}] = ${s1.absmax.data[b]}, max |x| = ${m}`));
      for (let i = 0; i < c.n; i++) {
        const b = Math.floor(i / c.blocksize);
        if (!finite[b]) continue;
        const allowed = amax[b] === 0 ? [0] : allowedCodes(xs[i]!, amax[b]!, (s) => (Number.isNaN(s) ? 0 : codeOf(s)));
        check(allowed.includes(code(i)), () => `x[${i}] = ${xs[i]} (absmax ${amax[b]}): code ${code(i)}, expected one of ${allowed}`);
      }
    }
    const deq = withDType(s1, c.out);
    const [d1, d2] = both(() => dequantize4bit(p1, deq));
    assertSame(d1, d2, `dequantized to ${c.out}`);
    const absmax = c.nested ? null : (s1.absmax.data as Float32Array);
    if (absmax) {
      const round = roundTo(c.out),
        got = toFloat32(d1);
      const transposed = p1.shape[0] === 1 && shape.length === 2;
      for (let i = 0; i < c.n; i++) {
        const want = round(Math.fround(table[code(i)]! * absmax[Math.floor(i / c.blocksize)]!));
        const at = transposed ? (i % shape[1]!) * shape[0]! + Math.floor(i / shape[1]!) : i;
        check(
          Object.is(got[at], want) || (Number.isNaN(got[at]!) && Number.isNaN(want)),
          () => `dequantized[${i}] = ${got[at]}, expected ${want}`,
        );
      }
    }
  });

function codeFor(kind: number, seed: number): Tensor {
  if (kind === 0) return createDynamicMap();
  if (kind === 1) return createDynamicMap({ signed: false });
  if (kind === 2) return createDynamicMap({ maxExponentBits: 4 });
  if (kind === 3) return createDynamicMap({ totalBits: 4, maxExponentBits: 3 }); // 241 duplicate zeros
  if (kind === 4) return createLinearMap();
  // a random sorted code, with duplicates
  const rng = new Rng(seed);
  const v = Float32Array.from({ length: 256 }, () => (rng.next() < 0.1 ? 0 : Math.fround(rng.normal() / 3)));
  v.sort();
  return { ...createDynamicMap(), data: v };
}

/** Is code[q] a nearest entry to x·r for r = 1/amax or a ulp away (ties and the f32 midpoint allowed)? */
function nearestOk(code: Float32Array, q: number, x: number, amax: number): boolean {
  if (amax === 0 || Number.isNaN(x)) return q === 0;
  const r = Math.fround(1 / amax);
  return [r, nextUp(r), nextDown(r)].some((rr) => {
    const s = Math.fround(x * rr);
    if (Number.isNaN(s)) return q === 0; // 0 · (1/subnormal = inf), as CUDA: index 0
    let best = Infinity;
    for (const v of code) best = Math.min(best, Math.abs(s - v));
    return Math.abs(s - code[q]!) <= best + 1e-7 * (Math.abs(s) + Math.abs(code[q]!));
  });
}

export const blockwiseCase = fc.record({
  n: count(),
  pick: fc.nat(),
  dtype: fc.constantFrom(...FLOAT_DTYPES),
  blocksize: fc.constantFrom(...BLOCKSIZES_8BIT),
  codeKind: fc.integer({ min: 0, max: 5 }),
  nested: fc.boolean(),
  nonFinite: fc.boolean(),
  planted: fc.array(fc.constantFrom(...PLANTED), { maxLength: 4 }),
  seed: fc.integer(),
  pad: fc.integer({ min: 0, max: 3 }),
  out: fc.constantFrom(...FLOAT_DTYPES),
});

/** quantizeBlockwise / dequantizeBlockwise: both builds, nearest codes, exact values, random codes. */
export const blockwiseProperty = () =>
  fc.property(blockwiseCase, (c) => {
    const x = values(c.seed, c.n, c.planted, c.nonFinite);
    const A = floatTensor(x, shapeOf(c.n, c.pick), c.dtype);
    const code = codeFor(c.codeKind, c.seed);
    const view = withData(A, offsetView(A.data, c.pad));
    const opts = { blocksize: c.blocksize, code, nested: c.nested, allowNonFinite: c.nonFinite };
    const [[q1, s1], [q2, s2]] = both(() => quantizeBlockwise(view, opts));
    assertSame(q1, q2, 'q');
    assertSame(s1.absmax, s2.absmax, 'absmax');
    if (c.nested) assertSame(s1.state2!.absmax, s2.state2!.absmax, 'nested absmax');
    const xs = toFloat32(A),
      cd = code.data as Float32Array;
    if (!c.nested) {
      const { amax, finite } = blockStats(xs, c.blocksize);
      amax.forEach((m, b) => finite[b] && check(s1.absmax.data[b] === m, () => `absmax[${b}] = ${s1.absmax.data[b]}, max |x| = ${m}`));
      for (let i = 0; i < c.n; i++) {
        const b = Math.floor(i / c.blocksize);
        if (finite[b])
          check(
            nearestOk(cd, q1.data[i]!, xs[i]!, amax[b]!),
            () => `x[${i}] = ${xs[i]} (absmax ${amax[b]}): q = ${q1.data[i]} (${cd[q1.data[i]!]})`,
          );
      }
    }
    const st = withDType(s1, c.out);
    const [d1, d2] = both(() => dequantizeBlockwise(q1, st));
    assertSame(d1, d2, `dequantized to ${c.out}`);
    if (!c.nested) {
      const round = roundTo(c.out),
        got = toFloat32(d1),
        absmax = s1.absmax.data as Float32Array;
      for (let i = 0; i < c.n; i++) {
        const want = round(Math.fround(cd[q1.data[i]!]! * absmax[Math.floor(i / c.blocksize)]!));
        check(
          Object.is(got[i], want) || (Number.isNaN(got[i]!) && Number.isNaN(want)),
          () => `dequantized[${i}] = ${got[i]}, expected ${want}`,
        );
      }
    }
  });
