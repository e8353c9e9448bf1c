import { describe, expect, it } from 'vitest';
import { createDynamicMap, get4bitType, BnbError, tensor } from '../src/index.js';
import { dynamicMapRecipe } from '../src/maps.js';
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
