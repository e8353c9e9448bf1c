import { describe, expect, it } from 'vitest';
import {
  BnbError,
  QuantState,
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  quantize4bit,
  quantizeBlockwise,
  tensor,
  toFloat32,
} from '../src/index.js';
import { PyFloat, pyFloatRepr, pyJsonDumps } from '../src/json/dumps.js';
import { Rng, randn } from './helpers/random.js';

const data = randn(new Rng(7), 300 * 40);
const A = tensor(data, [300, 40]);
const text = (t: Tensor) => new TextDecoder().decode(t.data as Uint8Array);

describe('Python json.dumps emulation', () => {
  it('formats floats like repr()', () => {
    const cases: [number, string][] = [
      [0, '0.0'],
      [-0, '-0.0'],
      [1, '1.0'],
      [123, '123.0'],
      [0.1, '0.1'],
      [1e-5, '1e-05'],
      [0.0001, '0.0001'],
      [1.5e-7, '1.5e-07'],
      [1e16, '1e+16'],
      [1234567890123456, '1234567890123456.0'],
      [1e22, '1e+22'],
      [2.4638543128967285, '2.4638543128967285'],
      [Math.fround(0.032167), '0.03216699883341789'],
      [1 / 3, '0.3333333333333333'],
      [-2.5e-300, '-2.5e-300'],
      [NaN, 'NaN'],
      [Infinity, 'Infinity'],
      [-Infinity, '-Infinity'],
    ];
    for (const [x, want] of cases) expect(pyFloatRepr(x), String(x)).toBe(want);
  });

  it('uses Python separators, ints and ASCII escapes', () => {
    expect(pyJsonDumps({ a: 1, b: [2, 3], c: new PyFloat(64), d: null, e: 'é"\n' })).toBe(
      '{"a": 1, "b": [2, 3], "c": 64.0, "d": null, "e": "\\u00e9\\"\\n"}',
    );
  });
});

describe('QuantState.asDict / fromDict', () => {
  const [packed, nested] = quantize4bit(A, { quantType: 'nf4', compressStatistics: true, blocksize: 64 });

  it('unpacked form has bnb keys in bnb order', () => {
    const d = nested.asDict();
    expect(Object.keys(d)).toEqual([
      'quant_type',
      'absmax',
      'blocksize',
      'quant_map',
      'dtype',
      'shape',
      'nested_absmax',
      'nested_blocksize',
      'nested_quant_map',
      'nested_dtype',
      'nested_offset',
    ]);
    expect(d.nested_offset).toBe(nested.offset);
    expect(d.shape).toEqual([300, 40]);
  });

  it('packed form holds tensors plus the JSON blob', () => {
    const d = nested.asDict({ packed: true });
    expect(Object.keys(d)).toEqual(['absmax', 'quant_map', 'nested_absmax', 'nested_quant_map', 'quant_state.bitsandbytes__nf4']);
    const blob = text(d['quant_state.bitsandbytes__nf4'] as Tensor);
    expect(blob).toBe(
      `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [300, 40], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": ${pyFloatRepr(nested.offset!)}}`,
    );
  });

  it('round-trips packed and unpacked, with module prefixes, to identical dequantized bits', () => {
    const want = dequantize4bit(packed, nested);
    const prefixed: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(nested.asDict({ packed: true }))) prefixed[`model.layers.0.mlp.up_proj.weight.${k}`] = v;
    for (const d of [nested.asDict(), nested.asDict({ packed: true }), prefixed]) {
      const s = QuantState.fromDict(d);
      expect(s.equals(nested)).toBe(true);
      expect(s.nested).toBe(true);
      expect(dequantize4bit(packed, s).data).toEqual(want.data);
    }
  });

  it('8-bit states have no packed form (bnb names the blob by the quant type, and fails on None): E_STATE; asDict() gives their fields', () => {
    const [, s] = quantizeBlockwise(A, { blocksize: 256 });
    expect(() => s.asDict({ packed: true })).toThrow(
      expect.objectContaining({ code: 'E_STATE', message: expect.stringMatching(/8-bit state has no packed form/) }),
    );
    const d = s.asDict();
    expect(d.quant_type).toBeNull();
    expect(QuantState.fromDict(d).equals(s)).toBe(true);
  });

  it('reads NaN offsets written by Python (with allowNonFinite: by default they are E_STATE)', () => {
    const d = nested.asDict({ packed: true });
    const blob = text(d['quant_state.bitsandbytes__nf4'] as Tensor).replace(/"nested_offset": [^}]*/, '"nested_offset": NaN');
    const bytes = new TextEncoder().encode(blob);
    const dict = { ...d, 'quant_state.bitsandbytes__nf4': tensor(bytes, [bytes.length]) };
    const s = QuantState.fromDict(dict, { allowNonFinite: true });
    expect(Number.isNaN(s.offset)).toBe(true);
    expect(() => QuantState.fromDict(dict)).toThrow(expect.objectContaining({ code: 'E_STATE' }));
  });

  it("rejects dicts bnb's from_dict rejects, with codes", () => {
    const d = nested.asDict({ packed: true });
    const err = (x: Record<string, unknown>) => {
      try {
        QuantState.fromDict(x);
      } catch (e) {
        return e as BnbError;
      }
      throw new Error('no error');
    };
    expect(err({ absmax: d.absmax }).message).toMatch(/found neither/);
    expect(err({ ...d, 'x.quant_state.bitsandbytes__fp4': d['quant_state.bitsandbytes__nf4'] }).message).toMatch(
      /exactly one `quant_state`/,
    );
    expect(err({ ...d, 'weight.bias': d.absmax })).toMatchObject({ code: 'E_STATE_KEY', message: expect.stringMatching(/"weight.bias"/) });
    const { absmax: _a, ...noAbsmax } = d;
    expect(err(noAbsmax)).toMatchObject({ code: 'E_STATE', message: expect.stringMatching(/missing "absmax"/) });
    const bad = new TextEncoder().encode('{"quant_type": "nf4",');
    expect(err({ ...d, 'quant_state.bitsandbytes__nf4': tensor(bad, [bad.length]) }).message).toMatch(/valid JSON/);
    expect(err({ ...nested.asDict(), dtype: 'float64' })).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/dtype = "float64"/),
    });
  });
});

describe('dequantize4bit layouts', () => {
  it('returns the transposed result when the packed tensor has one row (bnb shim)', () => {
    const x = tensor([0.5, -1], [1, 2]);
    const [p, s] = quantize4bit(x, { quantType: 'nf4' });
    expect(p.shape).toEqual([1, 1]);
    const out = dequantize4bit(p, s);
    expect(out.shape).toEqual([2, 1]);
    const w = tensor(randn(new Rng(3), 6 * 64), [6, 64]);
    const [pw, sw] = quantize4bit(w, { quantType: 'fp4' });
    const normal = toFloat32(dequantize4bit(pw, sw));
    const t = dequantize4bit({ ...pw, shape: [1, pw.shape[0]!] }, sw);
    expect(t.shape).toEqual([64, 6]);
    for (let r = 0; r < 6; r++) for (let c = 0; c < 64; c++) expect(t.data[c * 6 + r]).toBe(normal[r * 64 + c]);
  });

  it('reads any quant storage as the same bytes', () => {
    const [p8, s] = quantize4bit(A, { quantType: 'nf4' });
    for (const quantStorage of ['float16', 'bfloat16', 'float32'] as const) {
      const [p, s2] = quantize4bit(A, { quantType: 'nf4', quantStorage });
      expect(p.dtype).toBe(quantStorage);
      expect(p.shape).toEqual([6000 / (quantStorage === 'float32' ? 4 : 2), 1]);
      expect(new Uint8Array(p.data.buffer)).toEqual(p8.data);
      expect(dequantize4bit(p, s2).data).toEqual(dequantize4bit(p8, s).data);
    }
    expect(() => quantize4bit(tensor(new Float32Array(6)), { quantStorage: 'float32' })).toThrow(
      expect.objectContaining({ code: 'E_STORAGE' }),
    );
  });

  it('writes into a given out tensor, checking its dtype and shape', () => {
    const [p, s] = quantize4bit(A, { quantType: 'nf4' });
    const out = tensor(new Float32Array(12000), [300, 40]);
    expect(dequantize4bit(p, s, { out })).toBe(out);
    expect(out.data).toEqual(dequantize4bit(p, s).data);
    expect(() => dequantize4bit(p, s, { out: tensor(new Float32Array(12000), [40, 300]) })).toThrow(
      expect.objectContaining({ code: 'E_SHAPE', message: expect.stringMatching(/out.shape = \[40, 300\].*expected \[300, 40\]/) }),
    );
    expect(() => dequantize4bit(p, s, { out: tensor(new Uint16Array(12000), [300, 40], 'float16') })).toThrow(
      expect.objectContaining({ code: 'E_DTYPE' }),
    );
    const [q, s8] = quantizeBlockwise(A, { blocksize: 64 });
    const out8 = tensor(new Float32Array(12000), [300, 40]);
    expect(dequantizeBlockwise(q, s8, { out: out8 }).data).toEqual(dequantizeBlockwise(q, s8).data);
  });

  it('dequantizes from { absmax, shape, blocksize, quantType, dtype } too', () => {
    const [p, s] = quantize4bit(A, { quantType: 'fp4', blocksize: 128 });
    const out = dequantize4bit(p, { absmax: s.absmax, shape: [300, 40], blocksize: 128, quantType: 'fp4', dtype: 'float32' });
    expect(out.data).toEqual(dequantize4bit(p, s).data);
  });
});
