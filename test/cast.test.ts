// castFloat (issue 14): the WebAssembly cast kernel gives the bytes of the per-element
// reference (numberToF16 / numberToBf16 on the value as a JavaScript number) for every
// pair of float dtypes, on the SIMD build, the scalar oracle and threads.
import { afterAll, describe, expect, it } from 'vitest';
import { FLOAT_DTYPES, FloatDType } from '../src/dtypes.js';
import { f16ToNumber, f32Bits } from '../src/float16.js';
import { Tensor, setNumThreads, setWasmBuild, tensor } from '../src/index.js';
import { castFloat, castFloatReference } from '../src/backend/wasm/cast.js';
import { setParallelThreshold } from '../src/backend/wasm/threads/config.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { Rng } from './helpers/random.js';
import { error } from './helpers/util.js';

const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const PAIRS = FLOAT_DTYPES.flatMap((from) => FLOAT_DTYPES.filter((to) => to !== from).map((to) => [from, to] as const));

/** Every 16-bit pattern: NaN payloads of both signs, ±Inf, ±0, subnormals, all of them. */
const ALL16 = Uint16Array.from({ length: 65536 }, (_, i) => i);

/** f32 bit patterns at every decision the casts take, and random ones. */
function f32Cases(): Float32Array {
  const b: number[] = [
    0,
    0x80000000,
    0x7f800000,
    0xff800000, // ±0, ±Inf
    0x7fc00000,
    0xffc00000,
    0x7f800001,
    0xff800001,
    0x7fbfffff,
    0x7fffffff,
    0xffffffff,
    0x7fa5a5a5, // NaN: quiet, signalling, payloads
    1,
    0x80000001,
    0x007fffff,
    0x00800000,
    0x7f7fffff,
    0xff7fffff, // f32 subnormals, min normal, max
    0x477fe000,
    0x477fefff,
    0x477ff000,
    0x477ff001,
    0x47800000, // f16: 65504, just below 65520, 65520 (-> Inf), above
    0x38800000,
    0x387fffff,
    0x38000000,
    0x33800000,
    0x33000000,
    0x33000001,
    0x32ffffff,
    0x33c00000, // f16 normal/subnormal edges, 2^-25 ties
    0x3f808000,
    0x3f818000,
    0x3f808001,
    0x3f807fff,
    0x7f7f8000,
    0x7f7f7fff, // bf16 ties to even, rounding to Inf
  ];
  // every f16 rounding tie (the midpoint of two neighbours, exact in f32) and the f32 values beside it
  for (let h = 0; h < 0x7bff; h++) {
    const m = f32Bits((f16ToNumber(h) + f16ToNumber(h + 1)) / 2);
    b.push(m - 1, m, m + 1, m | 0x80000000);
  }
  // every bf16 tie (low half 0x8000) and its neighbours, NaN and Inf exponents included
  for (let h = 0; h < 0x10000; h++) b.push((h << 16) | 0x7fff, (h << 16) | 0x8000, (h << 16) | 0x8001);
  const rng = new Rng(14);
  for (let i = 0; i < 100_000; i++) b.push(rng.int(0, 0xffffffff));
  return new Float32Array(Uint32Array.from(b, (x) => x >>> 0).buffer);
}
const F32 = f32Cases();

function input(dtype: FloatDType): Tensor {
  return dtype === 'float32' ? tensor(F32, [F32.length]) : tensor(ALL16, [ALL16.length], dtype);
}

/** The bits of castFloat(x) for one value of a dtype (given as its bits). */
function cast1(from: FloatDType, bits: number, to: FloatDType): number {
  const t = from === 'float32' ? tensor(new Float32Array(new Uint32Array([bits]).buffer), [1]) : tensor(new Uint16Array([bits]), [1], from);
  const out = castFloat(t, to);
  return to === 'float32' ? new Uint32Array(out.data.buffer, out.data.byteOffset, 1)[0]! : out.data[0]!;
}

describe('castFloat', () => {
  afterAll(() => {
    setWasmBuild('simd');
    setNumThreads(2);
    setParallelThreshold(1 << 20);
    setChunkElements(1 << 18);
  });

  for (const build of ['simd', 'scalar'] as const) {
    it(`gives the reference's bytes for every pair of float dtypes (${build} build)`, () => {
      setWasmBuild(build);
      for (const [from, to] of PAIRS) {
        const x = input(from);
        const got = castFloat(x, to),
          want = castFloatReference(x, to);
        expect([got.dtype, got.shape], `${from} -> ${to}`).toEqual([to, x.shape]);
        expect(bytes(got).equals(bytes(want)), `${from} -> ${to}`).toBe(true);
      }
    });
  }

  it('rounds to nearest even, NaN -> 0x7fff, and widens exactly (values)', () => {
    setWasmBuild('simd');
    expect(cast1('float32', 0x477fefff, 'float16')).toBe(0x7bff); // just below 65520: 65504
    expect(cast1('float32', 0x477ff000, 'float16')).toBe(0x7c00); // 65520: a tie that rounds to Inf
    expect(cast1('float32', 0xc77ff000, 'float16')).toBe(0xfc00);
    expect(cast1('float32', 0x33000000, 'float16')).toBe(0x0000); // 2^-25: tie between 0 and the least subnormal, to even
    expect(cast1('float32', 0x33000001, 'float16')).toBe(0x0001);
    expect(cast1('float32', 0x33c00000, 'float16')).toBe(0x0002); // 1.5 * 2^-24: tie, to even
    expect(cast1('float32', 0x80000001, 'float16')).toBe(0x8000); // f32 subnormal: -0
    expect(cast1('float32', 0x3f808000, 'bfloat16')).toBe(0x3f80); // tie, to even (down)
    expect(cast1('float32', 0x3f818000, 'bfloat16')).toBe(0x3f82); // tie, to even (up)
    expect(cast1('float32', 0x3f808001, 'bfloat16')).toBe(0x3f81);
    expect(cast1('float32', 0x7f7f8000, 'bfloat16')).toBe(0x7f80); // rounds to Inf
    for (const nan of [0x7fc00000, 0xffc00000, 0x7f800001, 0xffffffff]) {
      expect(cast1('float32', nan, 'float16')).toBe(0x7fff);
      expect(cast1('float32', nan, 'bfloat16')).toBe(0x7fff);
    }
    expect(cast1('float16', 0xfe01, 'bfloat16')).toBe(0x7fff);
    expect(cast1('bfloat16', 0xff81, 'float16')).toBe(0x7fff);
    expect(cast1('bfloat16', 0x4780, 'float16')).toBe(0x7c00); // 65536 overflows float16
    expect(cast1('bfloat16', 0x477f, 'float16')).toBe(0x7bf8); // 65280
    expect(cast1('float16', 0x0001, 'bfloat16')).toBe(0x3380); // 2^-24
    expect(cast1('float16', 0x0001, 'float32')).toBe(0x33800000);
    expect(cast1('float16', 0x8000, 'float32')).toBe(0x80000000);
    expect(cast1('float16', 0xfc00, 'float32')).toBe(0xff800000);
    expect(cast1('float16', 0x7bff, 'float32')).toBe(0x477fe000);
    // float32 NaN as a JavaScript number stores it: float16's payload-less, bfloat16's quieted with sign and payload
    expect(cast1('float16', 0xfd01, 'float32')).toBe(0x7fc00000);
    expect(cast1('bfloat16', 0xff81, 'float32')).toBe(0xffc10000);
    expect(cast1('bfloat16', 0x7fc1, 'float32')).toBe(0x7fc10000);
    expect(cast1('bfloat16', 0x3f81, 'float32')).toBe(0x3f810000);
  });

  it('gives the same bytes on 1, 2 and 3 threads and any chunk size', () => {
    setWasmBuild('scalar');
    setNumThreads(1);
    const x = PAIRS.map(([from]) =>
      from === 'float32' ? tensor(F32.subarray(0, 70_001), [70_001]) : tensor(ALL16.subarray(0, 65_533), [65_533], from),
    );
    const oracle = PAIRS.map(([, to], i) => bytes(castFloat(x[i]!, to)));
    setWasmBuild('simd');
    setParallelThreshold(0);
    for (const [threads, chunk] of [
      [1, 1 << 18],
      [2, 1 << 18],
      [3, 4096],
      [2, 999],
      [2, 1],
    ] as const) {
      setNumThreads(threads);
      setChunkElements(chunk);
      PAIRS.forEach(([from, to], i) =>
        expect(bytes(castFloat(x[i]!, to)).equals(oracle[i]!), `${from} -> ${to}, ${threads} threads, chunk ${chunk}`).toBe(true),
      );
    }
  });

  it('keeps the other cases: the same tensor, empty tensors, integer inputs, and its errors', () => {
    setWasmBuild('simd');
    const x = tensor(new Float32Array([1.5, -2]), [2]);
    expect(castFloat(x, 'float32')).toBe(x);
    const empty = castFloat(tensor(new Uint16Array(0), [3, 0], 'bfloat16'), 'float16');
    expect([empty.dtype, empty.shape, empty.data.length]).toEqual(['float16', [3, 0], 0]);
    const ints = tensor(new Int8Array([1, -2, 127, -128]), [2, 2]);
    expect(Array.from(castFloat(ints, 'bfloat16').data)).toEqual([0x3f80, 0xc000, 0x42fe, 0xc300]);
    expect(bytes(castFloat(ints, 'float16')).equals(bytes(castFloatReference(ints, 'float16')))).toBe(true);
    expect(error(() => castFloat(x, 'int8' as FloatDType))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/^dtype = "int8" is not accepted/),
    });
    expect(error(() => castFloat(null as unknown as Tensor, 'float16'))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^t = null/),
    });
    expect(error(() => castFloat({ ...x, shape: [3] }, 'float16'))).toMatchObject({ code: 'E_SHAPE' });
    expect(error(() => castFloat({ ...x, data: new Uint16Array(2) } as unknown as Tensor, 'float16'))).toMatchObject({ code: 'E_DTYPE' });
  });
});
