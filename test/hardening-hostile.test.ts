// Issue #15, case 17: tensors that change between two reads. A `data` (or `shape`,
// `dtype`) getter that answers differently after the first read, and a shape that is
// an Array subclass whose every() and iterator lie, slipped past the checks (quantize
// read 128 floats from a 1-element view; dequantize wrote past a 1-element `out` view,
// within its buffer). Now every op reads a tensor's fields once, copies the shape
// element by element and uses only that snapshot: the result is the first answer's,
// and the buffers of the later answers are never touched.
import { describe, expect, it } from 'vitest';
import {
  QuantState,
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  matmul4bit,
  quantize4bit,
  quantizeBlockwise,
  tensor,
} from '../src/index.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { error } from './helpers/util.js';

const rng = new Rng(1517);
const bytes = (t: Tensor | ArrayBufferView) => {
  const d = ArrayBuffer.isView(t) ? t : t.data;
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};
const FIELDS = ['dtype', 'shape', 'data', 'device'] as const;

/**
 * A tensor whose fields answer `first` on their first read and `later` ever after,
 * counting the reads. `later.data` is a 1-element view in the middle of a buffer
 * filled with 0x5a (its `spill`, which nothing may read or write).
 */
function shifty(first: Tensor): { t: Tensor; reads: Record<string, number>; spill: Uint8Array } {
  const Ctor = first.data.constructor as new (b: ArrayBuffer, at: number, n: number) => Tensor['data'];
  const spill = new Uint8Array(first.data.byteLength * 4 + 64).fill(0x5a);
  const one = new Ctor(spill.buffer as ArrayBuffer, 32, 1);
  const later: Tensor = { dtype: first.dtype, shape: [1], data: one, device: 'cpu' };
  const reads: Record<string, number> = { dtype: 0, shape: 0, data: 0, device: 0 };
  const t = {} as Tensor;
  for (const k of FIELDS) {
    Object.defineProperty(t, k, { enumerable: true, get: () => (++reads[k]! === 1 ? first[k] : later[k]) });
  }
  return { t, reads, spill };
}

/** The spill buffer is still all 0x5a. */
const untouched = (spill: Uint8Array) => spill.every((b) => b === 0x5a);

const f32 = tensor(randn(rng, 256), [4, 64]);
const h16 = asDType(randn(rng, 256), [4, 64], 'float16');
const [p4, s4] = quantize4bit(f32, { quantType: 'nf4', compressStatistics: true });
const [q8, s8] = quantizeBlockwise(f32, { blocksize: 64 });
const [cb, rowStats] = int8VectorwiseQuant(h16);
const i8b = tensor(
  Int8Array.from({ length: 8 * 64 }, () => rng.int(-127, 127)),
  [8, 64],
);
const acc = int8LinearMatmul(cb, i8b);
const colStats = tensor(randn(rng, 8).map(Math.abs), [8]);
const fp8 = tensor(
  Uint8Array.from({ length: 256 }, (_, i) => (i * 7) & 0x77),
  [4, 64],
  'float8_e4m3fn',
);
const [pw, sw] = quantize4bit(tensor(randn(rng, 8 * 64), [8, 64]), { quantType: 'fp4' });
const x1 = tensor(randn(rng, 2 * 64), [2, 64]);
const bias = tensor(randn(rng, 8), [8]);

/** Each op with one argument made shifty (by position), and the same op on plain tensors. */
const CASES: [string, Tensor, (t: Tensor) => unknown][] = [
  ['quantize4bit A', f32, (t) => quantize4bit(t, { quantType: 'nf4' })],
  ['quantizeBlockwise A', f32, (t) => quantizeBlockwise(t, { blocksize: 64 })],
  ['dequantize4bit A', p4, (t) => dequantize4bit(t, s4)],
  ['dequantize4bit state.absmax', s4.absmax, (t) => dequantize4bit(p4, new QuantState({ ...s4, absmax: t }))],
  [
    'dequantize4bit state.state2.absmax',
    s4.state2!.absmax,
    (t) => dequantize4bit(p4, new QuantState({ ...s4, state2: new QuantState({ ...s4.state2!, absmax: t }) })),
  ],
  ['dequantizeBlockwise A', q8, (t) => dequantizeBlockwise(t, s8)],
  ['dequantizeBlockwise state.absmax', s8.absmax, (t) => dequantizeBlockwise(q8, new QuantState({ ...s8, absmax: t }))],
  ['gemv4bit A', x1, (t) => gemv4bit(t, pw, sw)],
  ['gemv4bit B', pw, (t) => gemv4bit(x1, t, sw)],
  ['matmul4bit bias', bias, (t) => matmul4bit(x1, pw, sw, { bias: t })],
  ['int8VectorwiseQuant A', h16, (t) => int8VectorwiseQuant(t, { threshold: 1 })],
  ['int8DoubleQuant A', h16, (t) => int8DoubleQuant(t)],
  ['int8VectorwiseDequant A', cb, (t) => int8VectorwiseDequant(t, rowStats)],
  ['int8VectorwiseDequant stats', rowStats, (t) => int8VectorwiseDequant(cb, t)],
  ['int8LinearMatmul A', cb, (t) => int8LinearMatmul(t, i8b)],
  ['int8LinearMatmul B', i8b, (t) => int8LinearMatmul(cb, t)],
  ['int8MmDequant A', acc, (t) => int8MmDequant(t, rowStats, colStats)],
  ['int8MmDequant colStats', colStats, (t) => int8MmDequant(acc, rowStats, t)],
  ['dequantizeFp8 W', fp8, (t) => dequantizeFp8(t, tensor([0.5]))],
];

/** The bytes of every tensor in a result (a tensor, a list, a [packed, state] pair). */
function resultBytes(r: unknown): Buffer[] {
  if (r instanceof QuantState) return [bytes(r.absmax), ...(r.state2 ? [bytes(r.state2.absmax)] : [])];
  if (Array.isArray(r)) return r.flatMap(resultBytes);
  if (r === null) return [];
  return [bytes(r as Tensor)];
}

describe('a tensor whose getters change after the first read', () => {
  for (const [name, plain, op] of CASES) {
    it(`${name}: fields read once, the first answer used, the later view never touched`, () => {
      const want = resultBytes(op(plain));
      const { t, reads, spill } = shifty(plain);
      const before = Buffer.from(bytes(plain));
      const got = resultBytes(op(t));
      expect(got.length).toBe(want.length);
      got.forEach((b, i) => expect(b.equals(want[i]!), `${name} output ${i}`).toBe(true));
      expect({ data: reads.data, shape: reads.shape, dtype: reads.dtype }).toEqual({ data: 1, shape: 1, dtype: 1 });
      expect(untouched(spill)).toBe(true);
      expect(bytes(plain).equals(before)).toBe(true);
    });
  }

  it('out whose data getter turns into a 1-element view: the result goes to the first answer, the later buffer is untouched', () => {
    for (const [name, make, run] of [
      ['dequantize4bit', () => tensor(new Float32Array(256), [4, 64]), (out: Tensor) => dequantize4bit(p4, s4, { out })],
      ['dequantizeBlockwise', () => tensor(new Float32Array(256), [4, 64]), (out: Tensor) => dequantizeBlockwise(q8, s8, { out })],
      [
        'dequantizeFp8',
        () => tensor(new Uint16Array(256), [4, 64], 'bfloat16'),
        (out: Tensor) => dequantizeFp8(fp8, tensor([0.5]), { out }),
      ],
    ] as const) {
      const plainOut = make();
      run(plainOut);
      const first = make();
      const { t, reads, spill } = shifty(first);
      expect(run(t), name).toBe(t); // the caller's out object is returned
      expect(bytes(first).equals(bytes(plainOut)), name).toBe(true);
      expect(reads.data, name).toBe(1);
      expect(untouched(spill), name).toBe(true);
    }
  });
});

/** An Array subclass that says every element is valid and iterates as [1]. */
class LyingShape extends Array<number> {}
Object.defineProperty(LyingShape.prototype, 'every', { value: () => true });
Object.defineProperty(LyingShape.prototype, Symbol.iterator, {
  value: function* () {
    yield 1;
  },
});
const lying = (...dims: number[]) => {
  const s = new LyingShape();
  dims.forEach((d, i) => (s[i] = d));
  return s as unknown as number[];
};

describe('a shape that is an Array subclass whose every() and iterator lie', () => {
  it('is copied element by element: [128] over 1 element, [-1], [1.5] are E_SHAPE; the buffer around the view is untouched', () => {
    const spill = new Uint8Array(1024).fill(0x5a);
    const one = new Float32Array(spill.buffer, 64, 1);
    const one16 = new Uint16Array(spill.buffer, 64, 1);
    const packedOne = new Uint8Array(spill.buffer, 64, 1);
    for (const shape of [lying(128), lying(-1), lying(1.5), lying(2, 64)]) {
      const A = { dtype: 'float32', shape, data: one, device: 'cpu' } as Tensor;
      for (const f of [
        () => quantize4bit(A),
        () => quantizeBlockwise(A, { blocksize: 64 }),
        () => int8VectorwiseQuant({ ...A, dtype: 'float16', data: one16 } as Tensor),
        () => gemv4bit(A, pw, sw),
      ]) {
        expect(error(f)).toMatchObject({ code: 'E_SHAPE', message: expect.stringMatching(/^A\.shape/) });
      }
      const out = { dtype: 'float32', shape, data: one, device: 'cpu' } as Tensor;
      expect(error(() => dequantize4bit(p4, s4, { out }))).toMatchObject({
        code: 'E_SHAPE',
        message: expect.stringMatching(/^out\.shape/),
      });
      expect(error(() => dequantizeBlockwise(q8, s8, { out }))).toMatchObject({
        code: 'E_SHAPE',
        message: expect.stringMatching(/^out\.shape/),
      });
      expect(error(() => dequantize4bit({ dtype: 'uint8', shape, data: packedOne, device: 'cpu' } as Tensor, s4))).toMatchObject({
        code: 'E_SHAPE',
      });
    }
    expect(untouched(spill)).toBe(true);
  });

  it('a state shape that lies is read by index too: [8, 64] as the weight of gemv4bit, not [1]', () => {
    const s = new QuantState({ ...sw, shape: lying(8, 64) });
    expect(bytes(gemv4bit(x1, pw, s)).equals(bytes(gemv4bit(x1, pw, sw)))).toBe(true);
  });
});

describe('data that is not what it claims', () => {
  it("a typed-array subclass with a lying length or buffer is read by the engine's own geometry", () => {
    class Long extends Float32Array {
      override get length(): number {
        return 256;
      }
    }
    const spill = new Uint8Array(2048).fill(0x5a);
    const d = new Long(spill.buffer, 0, 1);
    expect(error(() => quantize4bit({ dtype: 'float32', shape: [256], data: d, device: 'cpu' } as Tensor))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/holds 256 elements but A\.data has 1/),
    });
    const own = new Float32Array(spill.buffer, 0, 1);
    Object.defineProperty(own, 'length', { value: 256 });
    Object.defineProperty(own, 'byteLength', { value: 1024 });
    expect(
      error(() => dequantize4bit(p4, s4, { out: { dtype: 'float32', shape: [4, 64], data: own, device: 'cpu' } as Tensor })),
    ).toMatchObject({ code: 'E_SHAPE', message: expect.stringMatching(/^out\.shape \[4, 64\] holds 256 elements but out\.data has 1/) });
    expect(untouched(spill)).toBe(true);
    const fake = Object.create(Float32Array.prototype) as Float32Array; // instanceof passes, it is no typed array
    expect(error(() => quantize4bit({ dtype: 'float32', shape: [1], data: fake, device: 'cpu' } as Tensor))).toMatchObject({
      code: 'E_ARGUMENT',
    });
  });
});
