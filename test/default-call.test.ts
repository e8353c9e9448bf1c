// Issue 17, the default call: an op's fresh output (no `out`) holds the same bytes as
// its `out` call, on 1 and 2 threads; where the pool runs, a large fresh output is an
// ordinary typed array over its own SharedArrayBuffer whose pages the threads touched
// first (src/backend/wasm/fresh.ts), and stays the caller's after the threads are gone.
import { afterAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  quantize4bit,
  quantizeBlockwise,
  setNumThreads,
  tensor,
} from '../src/index.js';
import { setParallelThreshold, threadHost } from '../src/backend/wasm/threads/config.js';
import { castFloat } from '../src/backend/wasm/cast.js';
import { setFreshSharedBytes } from '../src/backend/wasm/fresh.js';
import { sharedWasm } from '../src/backend/wasm/threads/shared.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { onWasmBackend } from './helpers/util.js';

const rng = new Rng(1717);
const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const ROWS = 97,
  COLS = 1031; // n = 100007: odd, not a multiple of any blocksize
const X = tensor(randn(rng, ROWS * COLS), [ROWS, COLS]);
const [p4, s4] = quantize4bit(X, { quantType: 'nf4' });
const [q8, s8] = quantizeBlockwise(X);
const withDType = <S extends object>(s: S, dtype: string): S => Object.assign(Object.create(Object.getPrototypeOf(s)), s, { dtype });
const I8 = tensor(
  Int8Array.from({ length: ROWS * COLS }, () => rng.int(-127, 127)),
  [ROWS, COLS],
);
const SCB = tensor(
  Float32Array.from({ length: ROWS }, () => 1 + rng.next()),
  [ROWS],
);
const I32 = tensor(
  Int32Array.from({ length: ROWS * COLS }, () => rng.int(-50000, 50000)),
  [ROWS, COLS],
);
const colStats = tensor(
  Float32Array.from({ length: COLS }, () => 1 + rng.next()),
  [COLS],
);
const W8 = tensor(
  Uint8Array.from({ length: ROWS * COLS }, () => rng.int(0, 255) & 0xf7),
  [ROWS, COLS],
  'float8_e4m3fn',
);
const S1 = tensor(new Float32Array([0.02]), [1]);
const X16 = asDType(randn(rng, ROWS * COLS), [ROWS, COLS], 'float16');

onWasmBackend();
const threaded = threadHost() !== null;

afterAll(() => {
  setNumThreads(1);
  setParallelThreshold(1 << 20);
  setFreshSharedBytes(1 << 23);
});

/** [op, default call, out call or null (no out option)] */
const cases: [string, () => Tensor, ((out: Tensor) => Tensor) | null][] = [
  ...(['float32', 'float16', 'bfloat16'] as const).map(
    (dt) =>
      [
        `dequantize4bit -> ${dt}`,
        () => dequantize4bit(p4, withDType(s4, dt)),
        (out: Tensor) => dequantize4bit(p4, withDType(s4, dt), { out }),
      ] as [string, () => Tensor, (out: Tensor) => Tensor],
  ),
  [
    'dequantizeBlockwise -> float16',
    () => dequantizeBlockwise(q8, withDType(s8, 'float16')),
    (out) => dequantizeBlockwise(q8, withDType(s8, 'float16'), { out }),
  ],
  ['dequantizeFp8 -> bfloat16', () => dequantizeFp8(W8, S1), (out) => dequantizeFp8(W8, S1, { out })],
  ['int8VectorwiseDequant', () => int8VectorwiseDequant(I8, SCB), null],
  ['int8MmDequant -> float16', () => int8MmDequant(I32, SCB, colStats, { dtype: 'float16' }), null],
  ['castFloat f32 -> bf16', () => castFloat(X, 'bfloat16'), null],
  ['quantize4bit packed', () => quantize4bit(X, { quantType: 'fp4' })[0], null],
  ['quantizeBlockwise q', () => quantizeBlockwise(X)[0], null],
  ['int8VectorwiseQuant CB', () => int8VectorwiseQuant(X16)[0], null],
];

describe('the default call: the same bytes as the out call', () => {
  it.each(cases)('%s, on 1 and 2 threads, fresh outputs shared or not', (_name, def, withOut) => {
    setParallelThreshold(1000);
    setNumThreads(1);
    setFreshSharedBytes(1 << 23);
    const want = def();
    expect(want.data.buffer).toBeInstanceOf(ArrayBuffer); // one thread: an ordinary array, as before
    if (withOut) {
      const out = tensor(new (want.data.constructor as new (n: number) => Tensor['data'])(want.data.length), [...want.shape], want.dtype);
      expect(withOut(out)).toBe(out);
      expect(bytes(out).equals(bytes(want))).toBe(true);
    }
    for (const t of [1, 2]) {
      setNumThreads(t);
      setFreshSharedBytes(1); // every fresh output of a threaded op is first touched by the pool
      const got = def();
      expect([got.dtype, got.shape]).toEqual([want.dtype, want.shape]);
      expect(bytes(got).equals(bytes(want))).toBe(true);
      if (threaded && t === 2 && sharedWasm() !== null) expect(got.data.buffer).toBeInstanceOf(SharedArrayBuffer);
      if (withOut) {
        const out = tensor(new (want.data.constructor as new (n: number) => Tensor['data'])(want.data.length), [...want.shape], want.dtype);
        withOut(out);
        expect(bytes(out).equals(bytes(want))).toBe(true);
      }
    }
  });
});

describe.skipIf(!threaded)("a fresh shared output's data", () => {
  it('is a whole typed array of its own buffer, the callers to keep, slice, clone and read after the threads are retired', () => {
    setParallelThreshold(1000);
    setFreshSharedBytes(1);
    setNumThreads(1);
    const want = dequantize4bit(p4, withDType(s4, 'float16'));
    setNumThreads(2);
    const got = dequantize4bit(p4, withDType(s4, 'float16'));
    if (sharedWasm() === null) return;
    const d = got.data as Uint16Array;
    expect(d).toBeInstanceOf(Uint16Array);
    expect(d.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect([d.byteOffset, d.byteLength, d.buffer.byteLength]).toEqual([0, want.data.byteLength, want.data.byteLength]);
    // its bytes are nobody else's: the next op's fresh output is another buffer
    const again = dequantize4bit(p4, withDType(s4, 'float16'));
    expect(again.data.buffer).not.toBe(d.buffer);
    setNumThreads(1); // the worker is retired: the output stays readable and writable
    expect(bytes(got).equals(bytes(want))).toBe(true);
    d[0] = 0x1234;
    expect(d[0]).toBe(0x1234);
    expect(bytes(again).equals(bytes(want))).toBe(true);
    // slice(): an ordinary ArrayBuffer copy (what to transfer); structuredClone shares the memory
    const copy = d.slice();
    expect(copy.buffer).toBeInstanceOf(ArrayBuffer);
    expect(Buffer.from(copy.buffer).equals(bytes(got))).toBe(true);
    const clone = structuredClone(d);
    expect(clone.buffer).toBeInstanceOf(SharedArrayBuffer);
    clone[1] = 0x4321;
    expect(d[1]).toBe(0x4321);
    // a SharedArrayBuffer cannot be transferred: copy first (as documented in docs/threads.md)
    expect(() => structuredClone(d, { transfer: [d.buffer as unknown as ArrayBuffer] })).toThrow();
    // ops take it as input like any tensor
    expect(bytes(castFloat(got, 'float32')).equals(bytes(castFloat(tensor(d.slice(), [...got.shape], 'float16'), 'float32')))).toBe(true);
  });
});
