// NaN, Inf and zero blocks: rejected by default; with allowNonFinite the CUDA
// behaviour of docs/bit-exactness.md#non-finite-input-and-zero-blocks, element by element.
import { describe, expect, it } from 'vitest';
import { dequantize4bit, dequantizeBlockwise, quantize4bit, quantizeBlockwise, tensor } from '../src/index.js';
import { f32Bits } from '../src/float16.js';

const nib = (p: Uint8Array, i: number) => (i % 2 === 0 ? p[i >> 1]! >> 4 : p[i >> 1]! & 15);
const block = (f: (i: number) => number, n = 64) => Float32Array.from({ length: n }, (_, i) => f(i));

describe('non-finite input', () => {
  it('is rejected by default with the first bad flat index', () => {
    const x = block((i) => i / 64);
    x[37] = NaN;
    x[50] = Infinity;
    for (const op of [() => quantize4bit(tensor(x, [2, 32])), () => quantizeBlockwise(tensor(x), { blocksize: 64 })]) {
      expect(op).toThrow(expect.objectContaining({ code: 'E_NON_FINITE' }));
      expect(op).toThrow(/non-finite value \(NaN\) at flat index 37.*allowNonFinite/);
    }
    const y = tensor(Uint16Array.from([0x3c00, 0x7c00]), [2], 'float16');
    expect(() => quantize4bit(y)).toThrow(/\(Infinity\) at flat index 1/);
  });

  it('4-bit NF4: NaN is left out of absmax and gets code 0 (decoding to -absmax)', () => {
    const x = block((i) => (i - 20) / 16);
    x[5] = NaN;
    const [p, s] = quantize4bit(tensor(x), { quantType: 'nf4', allowNonFinite: true });
    expect(s.absmax.data[0]).toBe(43 / 16);
    expect(nib(p.data as Uint8Array, 5)).toBe(0);
    expect(dequantize4bit(p, s).data[5]).toBe(-43 / 16);
  });

  it('4-bit: an all-zero block gives code 0 everywhere (NF4 decodes to -0.0)', () => {
    const [p, s] = quantize4bit(tensor(new Float32Array(64)), { quantType: 'nf4', allowNonFinite: true });
    expect([...p.data].every((b) => b === 0)).toBe(true);
    expect(s.absmax.data[0]).toBe(0);
    expect(Object.is(dequantize4bit(p, s).data[0], -0)).toBe(true);
  });

  it('4-bit: an Inf element makes absmax inf, finite elements code as 0 and the Inf as NaN (code 0)', () => {
    const x = block((i) => i - 30);
    x[3] = -Infinity;
    const [p, s] = quantize4bit(tensor(x), { quantType: 'nf4', allowNonFinite: true });
    expect(s.absmax.data[0]).toBe(Infinity);
    expect(nib(p.data as Uint8Array, 3)).toBe(0);
    for (const i of [0, 10, 63]) expect(nib(p.data as Uint8Array, i)).toBe(7);
    const [pf] = quantize4bit(tensor(x), { quantType: 'fp4', allowNonFinite: true });
    for (const i of [0, 3, 63]) expect(nib(pf.data as Uint8Array, i)).toBe(0);
  });

  it('an all-NaN full block stores absmax -FLT_MAX, an all-NaN tail block 0', () => {
    const x = block(() => NaN, 96);
    const [, s] = quantize4bit(tensor(x), { quantType: 'nf4', allowNonFinite: true });
    expect(f32Bits(s.absmax.data[0]!)).toBe(0xff7fffff);
    expect(s.absmax.data[1]).toBe(0);
    const [q, s8] = quantizeBlockwise(tensor(x), { blocksize: 64, allowNonFinite: true });
    expect(f32Bits(s8.absmax.data[0]!)).toBe(0xff7fffff);
    expect([...q.data].every((v) => v === 0)).toBe(true);
  });

  it('odd n pads the last low nibble with the code of 0 (NF4 0111, or 0000 when the block is all zero)', () => {
    const [p] = quantize4bit(tensor(block((i) => i + 1, 65)), { quantType: 'nf4' });
    expect(p.shape).toEqual([33, 1]);
    expect(p.data[32]! & 15).toBe(7);
    const z = block((i) => (i < 64 ? i + 1 : 0), 65);
    const [pz] = quantize4bit(tensor(z), { quantType: 'nf4' });
    expect(pz.data[32]! & 15).toBe(0);
    const [pf] = quantize4bit(tensor(block((i) => i + 1, 65)), { quantType: 'fp4' });
    expect(pf.data[32]! & 15).toBe(0);
  });

  it('FP4: -0.0 gets code 0 and tiny negatives code 8 (sign bit)', () => {
    const x = block((i) => (i === 0 ? 1 : i === 1 ? -0 : i === 2 ? -1e-9 : 0.5));
    const [p] = quantize4bit(tensor(x), { quantType: 'fp4' });
    expect(nib(p.data as Uint8Array, 1)).toBe(0);
    expect(nib(p.data as Uint8Array, 2)).toBe(8);
  });

  it('8-bit: NaN -> index 0, zero block -> index 0, Inf -> absmax inf with finite values at the zero code', () => {
    const x = block((i) => i / 10, 192);
    x[7] = NaN;
    for (let i = 64; i < 128; i++) x[i] = 0;
    x[130] = Infinity;
    const [q, s] = quantizeBlockwise(tensor(x), { blocksize: 64, allowNonFinite: true });
    expect(q.data[7]).toBe(0);
    expect(s.absmax.data[0]).toBe(Math.fround(63 / 10));
    expect([...q.data.subarray(64, 128)].every((v) => v === 0)).toBe(true);
    expect(s.absmax.data[2]).toBe(Infinity);
    expect(q.data[130]).toBe(0);
    expect(q.data[131]).toBe(127);
    const d = dequantizeBlockwise(q, s);
    expect(Object.is(d.data[64], -0)).toBe(true); // code[0] * 0
  });
});
