import { describe, expect, it } from 'vitest';
import { createDynamicMap, createFp8Map, createLinearMap, createNormalMap, get4bitType, BnbError, tensor } from '../src/index.js';
import { dynamicMapRecipe } from '../src/maps.js';
import { normPpf } from '../src/normal-ppf.js';
import { bytes, loadGolden } from './helpers/golden.js';

const maps = loadGolden('maps.safetensors');

describe('code maps (golden maps case)', () => {
  it('get4bitType matches bitsandbytes nf4 and fp4 tables bit for bit', () => {
    expect(bytes(get4bitType('nf4'))).toEqual(bytes(maps.nf4!));
    expect(bytes(get4bitType('fp4'))).toEqual(bytes(maps.fp4!));
    // Python's table has +0.0 at code 8 (CUDA's decode table uses -0.0)
    expect(Object.is(get4bitType('fp4').data[8], 0)).toBe(true);
  });

  it('createDynamicMap matches signed, unsigned and 4-exponent-bit maps', () => {
    expect(bytes(createDynamicMap())).toEqual(bytes(maps.dynamic_signed!));
    expect(bytes(createDynamicMap({ signed: false }))).toEqual(bytes(maps.dynamic_unsigned!));
    expect(bytes(createDynamicMap({ maxExponentBits: 4 }))).toEqual(bytes(maps.dynamic_signed_e4!));
  });

  it('the linspace recipe regenerates the shipped Appendix A constants exactly', () => {
    expect(bytes(tensor(dynamicMapRecipe(true, 7, 8), [256]))).toEqual(bytes(createDynamicMap()));
    const d = createDynamicMap().data;
    expect(d[0]).toBe(Math.fround(-0.99296875));
    expect(d[127]).toBe(0);
    expect(d[255]).toBe(1);
  });

  it('smaller maps pad with zeros and stay sorted', () => {
    const m = createDynamicMap({ totalBits: 4, maxExponentBits: 3 }).data;
    expect(m.length).toBe(256);
    expect([...m].every((v, i) => i === 0 || v >= m[i - 1]!)).toBe(true);
    expect(new Set(m).size).toBe(16);
  });

  it('rejects parameters bitsandbytes cannot build', () => {
    expect(() => createDynamicMap({ signed: false, maxExponentBits: 4 })).toThrow(BnbError);
    expect(() => createDynamicMap({ totalBits: 9 })).toThrow(/totalBits = 9/);
    expect(() => get4bitType('int4' as 'nf4')).toThrow(expect.objectContaining({ code: 'E_QUANT_TYPE' }));
  });
});

const isSorted = (m: Float32Array) => m.every((v, i) => i === 0 || v >= m[i - 1]!);

describe('normal, linear and fp8 maps (golden maps case)', () => {
  it('createNormalMap matches create_normal_map bit for bit', () => {
    expect(bytes(createNormalMap())).toEqual(bytes(maps.normal!));
  });

  it('the normal map is NF4 padded with zeros', () => {
    const m = createNormalMap().data as Float32Array;
    expect(m.length).toBe(256);
    expect(isSorted(m)).toBe(true);
    expect(m[255]).toBe(1);
    // 7 negatives, 241 (+0) zeros, 8 positives; with the middle zero these are the 16 NF4 values
    expect(m.slice(7, 248).every((v) => Object.is(v, 0))).toBe(true);
    const nf4 = new Float32Array([...m.slice(0, 8), ...m.slice(248)]);
    expect(bytes(tensor(nf4, [16]))).toEqual(bytes(get4bitType('nf4')));
  });

  it('without the extra value the normal map is symmetric', () => {
    const m = createNormalMap({ useExtraValue: false }).data as Float32Array;
    expect(isSorted(m)).toBe(true);
    expect(m.filter((v) => v !== 0).length).toBe(14);
    expect(m[0]).toBe(-1);
    for (let i = 0; i < 256; i++) expect(m[i]).toBe(-m[255 - i]! || 0);
  });

  it('normPpf agrees with reference quantiles to f64 precision', () => {
    // (p, quantile) pairs computed with 200-bit arithmetic
    const ref: [number, number][] = [
      [0.975, 1.9599639845400538],
      [0.8413447460685429, 0.9999999999999999],
      [0.5000221267318777, 5.546349177834898e-5],
      [0.9677082896232605, 1.848130816262525],
      [1e-10, -6.361340902404057],
      [1e-300, -37.0470962993612],
    ];
    for (const [p, x] of ref) expect(Math.abs(normPpf(p) - x)).toBeLessThanOrEqual(4 * Number.EPSILON * Math.abs(x));
    expect(normPpf(0.5)).toBe(0);
    expect(normPpf(0.3125)).toBe(-normPpf(0.6875)); // exact mirror pairs about 0.5
    expect(normPpf(0.0625)).toBe(-normPpf(0.9375));
    expect([normPpf(0), normPpf(1), normPpf(1.5), normPpf(NaN)]).toEqual([-Infinity, Infinity, NaN, NaN]);
  });

  it('createLinearMap matches signed and unsigned create_linear_map', () => {
    expect(bytes(createLinearMap())).toEqual(bytes(maps.linear_signed!));
    expect(bytes(createLinearMap({ signed: false }))).toEqual(bytes(maps.linear_unsigned!));
  });

  it('linear maps are sorted, span [-1, 1] or [0, 1] and pad in the middle', () => {
    const s = createLinearMap().data as Float32Array;
    expect(isSorted(s)).toBe(true);
    expect([s[0], s[127], s[255]]).toEqual([-1, 0, 1]);
    expect(Math.abs(s[128]!)).toBeLessThan(1e-7); // the linspace's own (near-)zero
    const u = createLinearMap({ signed: false }).data;
    expect([u[0], u[255], new Set(u).size]).toEqual([0, 1, 256]);
    expect(createLinearMap({ addZero: false }).data[0]).toBe(-1);
    expect(new Set(createLinearMap({ addZero: false }).data).size).toBe(256);
    // 15 values: 7 negatives, 241 zeros, then the linspace's middle value, which need not be
    // exactly 0 (so the map need not be sorted), and 7 positives
    const small = createLinearMap({ totalBits: 4 }).data as Float32Array;
    expect(small.slice(0, 7).every((v) => v < 0) && small.slice(249).every((v) => v > 0)).toBe(true);
    expect(small.slice(7, 248).every((v) => Object.is(v, 0))).toBe(true);
    expect(Math.abs(small[248]!)).toBeLessThan(1e-7);
    expect([small[0], small[255]]).toEqual([-1, 1]);
  });

  it('createFp8Map matches e4m3 and e5m2 create_fp8_map', () => {
    expect(bytes(createFp8Map({ exponentBits: 4, precisionBits: 3 }))).toEqual(bytes(maps.fp8_e4m3!));
    expect(bytes(createFp8Map())).toEqual(bytes(maps.fp8_e5m2!));
  });

  it('fp8 maps keep +0 before -0 (stable sort) and pad with zeros', () => {
    const m = createFp8Map().data as Float32Array;
    expect(isSorted(m)).toBe(true);
    expect([m[0], m[255]]).toEqual([-1, 1]);
    expect(Object.is(m[127], 0) && Object.is(m[128], -0)).toBe(true);
    const small = createFp8Map({ exponentBits: 3, precisionBits: 2, totalBits: 6 }).data as Float32Array;
    expect(isSorted(small)).toBe(true);
    expect(small.filter((v) => v !== 0).length).toBe(62);
    expect(small[255]).toBe(1);
    const u = createFp8Map({ signed: false, exponentBits: 4, precisionBits: 4 }).data;
    expect([u[0], u[255], new Set(u).size]).toEqual([0, 1, 256]);
  });

  it('rejects parameters bitsandbytes rejects or cannot build', () => {
    const arg = expect.objectContaining({ code: 'E_ARGUMENT' });
    expect(() => createFp8Map({ exponentBits: 4 })).toThrow(arg); // 4 + 2 != 7
    expect(() => createFp8Map({ signed: false })).toThrow(/totalBits - 0 = 8/);
    expect(() => createFp8Map({ exponentBits: 0, precisionBits: 7 })).toThrow(arg);
    expect(() => createFp8Map({ totalBits: 9, exponentBits: 5, precisionBits: 3 })).toThrow(/totalBits = 9/);
    expect(() => createLinearMap({ totalBits: 1 })).toThrow(arg);
    expect(() => createLinearMap({ addZero: 1 as unknown as boolean })).toThrow(BnbError);
    expect(() => createNormalMap({ offset: 1 })).toThrow(/offset = 1/);
    expect(() => createNormalMap({ offset: 0.4 })).toThrow(arg);
    expect(() => createNormalMap({ offset: 0.99999999 })).toThrow(arg); // rounds to 1 in f32
    expect(() => createNormalMap({ useExtraValue: 'yes' as unknown as boolean })).toThrow(arg);
  });
});
