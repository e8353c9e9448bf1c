// Bad input: one error class, a stable code, a message naming argument, value and what is accepted.
import { describe, expect, it } from 'vitest';
import {
  QuantState,
  createDynamicMap,
  dequantize4bit,
  dequantizeBlockwise,
  quantize4bit,
  quantizeBlockwise,
  tensor,
} from '../src/index.js';
import { error } from './helpers/util.js';

const A = tensor(
  new Float32Array(256).map((_, i) => Math.sin(i)),
  [4, 64],
);

describe('errors', () => {
  it('tensor(): dtype inference and shape checks', () => {
    expect(error(() => tensor(new Uint16Array(4)))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/Uint16Array.*'float16' or 'bfloat16'/),
    });
    expect(error(() => tensor(new Float32Array(6), [4, 2]))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/shape \[4, 2\] holds 8 elements but data has 6/),
    });
    expect(error(() => tensor(new Float32Array(4), [2, -2]))).toMatchObject({ code: 'E_SHAPE' });
    expect(error(() => tensor(new Uint8Array(4), [4], 'float16'))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/Uint8Array.*"float16".*Uint16Array/),
    });
    expect(error(() => tensor(new Float32Array(4), [4], 'float64' as 'float32'))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/dtype = "float64"/),
    });
    expect(tensor(new Uint16Array(2), [2], 'bfloat16').dtype).toBe('bfloat16');
  });

  it('quantize4bit: dtype, blocksize, quant type, storage, options, empty input', () => {
    expect(error(() => quantize4bit(tensor(new Uint8Array(64))))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/A.dtype = "uint8".*16\/32-bit floats/),
    });
    expect(error(() => quantize4bit(A, { blocksize: 16 }))).toMatchObject({
      code: 'E_BLOCKSIZE',
      message: expect.stringMatching(/blocksize = 16.*32, 64, 128/),
    });
    expect(error(() => quantize4bit(A, { quantType: 'int4' as 'nf4' }))).toMatchObject({
      code: 'E_QUANT_TYPE',
      message: expect.stringMatching(/quantType = "int4".*'nf4' or 'fp4'/),
    });
    expect(error(() => quantize4bit(A, { quantStorage: 'int32' }))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/quantStorage = "int32"/),
    });
    expect(error(() => quantize4bit(A, { quant_type: 'nf4' } as object))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/quant_type/),
    });
    expect(error(() => quantize4bit(tensor(new Float32Array(0), [0, 3])))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/no elements/),
    });
    expect(error(() => quantize4bit({ dtype: 'float32', shape: [3], data: new Float32Array(2), device: 'cpu' }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/A.shape \[3\] holds 3 elements but A.data has 2/),
    });
    expect(error(() => quantize4bit(null as never))).toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/^A = null/) });
  });

  it('dequantize4bit: missing state fields, short data, wrong absmax', () => {
    const [p, s] = quantize4bit(A, { quantType: 'nf4' });
    expect(error(() => dequantize4bit(p, {} as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/absmax and shape/),
    });
    expect(error(() => dequantize4bit({ ...p, shape: [10, 1], data: p.data.subarray(0, 10) }, s))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/holds 10 bytes.*needs 128/),
    });
    const short = new QuantState({ ...s, absmax: tensor(new Float32Array(3)) });
    expect(error(() => dequantize4bit(p, short))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/state.absmax has 3 entries but the data needs 4/),
    });
    const noShape = new QuantState({ ...s, shape: null });
    expect(error(() => dequantize4bit(p, noShape))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/state.shape = null/),
    });
    const int8 = new QuantState({ ...s, dtype: 'int8' });
    expect(error(() => dequantize4bit(p, int8))).toMatchObject({ code: 'E_DTYPE', message: expect.stringMatching(/dtype = "int8"/) });
    const nestedNoOffset = new QuantState({ ...quantize4bit(A, { compressStatistics: true })[1], offset: null });
    expect(error(() => dequantize4bit(p, nestedNoOffset))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/state.offset = null/),
    });
  });

  it('blockwise: blocksize set, code shape and order, q dtype', () => {
    expect(error(() => quantizeBlockwise(A, { blocksize: 32 }))).toMatchObject({
      code: 'E_BLOCKSIZE',
      message: expect.stringMatching(/blocksize = 32.*64, 128/),
    });
    const unsorted = createDynamicMap();
    unsorted.data[10] = 0.5;
    expect(error(() => quantizeBlockwise(A, { code: unsorted }))).toMatchObject({
      code: 'E_CODE',
      message: expect.stringMatching(/sorted ascending.*code\[10\] = 0.5/),
    });
    expect(error(() => quantizeBlockwise(A, { code: tensor(new Float32Array(16)) }))).toMatchObject({
      code: 'E_CODE',
      message: expect.stringMatching(/256 entries/),
    });
    const [q, s] = quantizeBlockwise(A, { blocksize: 64 });
    expect(error(() => dequantizeBlockwise(tensor(new Int8Array(q.data.buffer)), s))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/A.dtype = "int8".*'uint8'/),
    });
    expect(error(() => dequantizeBlockwise(q, {} as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/QuantState or \{ absmax \}/),
    });
  });
});
