// Issue #15, cases 13, 14, 15 and the deep config.json of 12: checkpoint conversion
// with a global `skip` RegExp, with tiny layers whose packed weight has a leading
// dimension of 1, with quant_states holding NaN/Inf statistics, and with JSON nested
// far too deep. Each failure is its exact code, with the input's bytes intact and no
// output written.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BnbError,
  QuantState,
  Tensor,
  dequantize4bit,
  parseSafetensors,
  quantize4bit,
  serializeSafetensors,
  tensor,
  toFloat32,
} from '../src/index.js';
import { dequantizeCheckpoint, inspectCheckpoint, quantizeCheckpoint } from '../src/node.js';
import { Rng, randn } from './helpers/random.js';
import { error, rejection } from './helpers/util.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-hardening-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let serial = 0;
const fresh = (name: string) => join(tmp, `${serial++}-${name}`);
const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const rng = new Rng(1513);

function writeModel(tensors: Record<string, Tensor>, config?: string): string {
  const dir = fresh('model');
  mkdirSync(dir);
  writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors, { metadata: { format: 'pt' } }));
  if (config !== undefined) writeFileSync(join(dir, 'config.json'), config);
  return dir;
}

const read = (path: string) => parseSafetensors(readFileSync(path)).tensors as Record<string, Tensor>;

describe('skip with a global or sticky RegExp (case 13)', () => {
  it("leaves every matching layer unquantized, however many, and does not touch the caller's RegExp", async () => {
    const tensors: Record<string, Tensor> = {};
    for (let l = 0; l < 12; l++) {
      for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj'])
        tensors[`model.layers.${l}.self_attn.${p}.weight`] = tensor(randn(rng, 64 * 64), [64, 64]);
      tensors[`model.layers.${l}.mlp.fc.weight`] = tensor(randn(rng, 64 * 64), [64, 64]);
    }
    const dir = writeModel(tensors, '{"model_type": "llama", "torch_dtype": "float32"}');
    const matching = Object.keys(tensors).filter((n) => n.includes('proj'));
    for (const skip of [/proj/g, /.*proj/y, /PROJ/gi, 'proj']) {
      const lastIndex = skip instanceof RegExp ? (skip.lastIndex = 0) : 0;
      const out = fresh('skipped');
      const r = await quantizeCheckpoint(dir, out, { format: 'nf4', skip });
      expect(r.layers, String(skip)).toBe(12); // only the fc layers
      const got = read(join(out, 'model.safetensors'));
      for (const n of matching) {
        expect(got[n]?.dtype, `${String(skip)} ${n}`).toBe('float32');
        expect(bytes(got[n]!).equals(bytes(tensors[n]!))).toBe(true);
        expect(got[`${n}.absmax`]).toBeUndefined();
      }
      for (let l = 0; l < 12; l++) expect(got[`model.layers.${l}.mlp.fc.weight`]!.dtype).toBe('uint8');
      if (skip instanceof RegExp) expect(skip.lastIndex).toBe(lastIndex);
      // config.json lists exactly the skipped Linear modules
      const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      expect([...config.quantization_config.llm_int8_skip_modules].sort()).toEqual(
        matching.map((n) => n.slice(0, -'.weight'.length)).sort(),
      );
    }
  });

  it('a skip that is neither a string nor a RegExp is E_ARGUMENT, and nothing is written', async () => {
    const dir = writeModel({ 'l.weight': tensor(randn(rng, 64 * 64), [64, 64]) });
    const before = readFileSync(join(dir, 'model.safetensors'));
    for (const skip of [5, {}, ['proj'], { source: 'x', flags: 'g', test: () => true }]) {
      const out = fresh('bad-skip');
      expect(await rejection(() => quantizeCheckpoint(dir, out, { format: 'nf4', skip: skip as never }))).toMatchObject({
        code: 'E_ARGUMENT',
        message: expect.stringMatching(/^skip = /),
      });
      expect(existsSync(out)).toBe(false);
    }
    expect(readFileSync(join(dir, 'model.safetensors')).equals(before)).toBe(true);
  });
});

describe("tiny layers: the quant_state's shape is authoritative, not the packed tensor's leading 1 (case 14)", () => {
  // every storage that holds the packed bytes of the shape (E_STORAGE otherwise, as bnb)
  const SHAPES: [number, number][] = [
    [2, 2],
    [1, 8],
    [8, 1],
    [2, 4],
    [4, 2],
    [1, 2],
    [2, 1],
    [1, 16],
    [16, 1],
    [1, 64],
    [3, 2],
    [2, 3],
  ];
  for (const storage of ['uint8', 'float16', 'bfloat16', 'float32'] as const) {
    it(`round trips [2, 2], [1, 8], [8, 1], ... with ${storage} storage`, async () => {
      const size = { uint8: 1, float16: 2, bfloat16: 2, float32: 4 }[storage];
      const shapes = SHAPES.filter(([r, c]) => Math.ceil((r * c) / 2) % size === 0);
      const tensors: Record<string, Tensor> = {};
      shapes.forEach(
        ([r, c], i) =>
          (tensors[`model.layers.${i}.mlp.up_proj.weight`] = tensor(
            randn(rng, r * c).map((v, j) => v + j),
            [r, c],
          )),
      );
      const dir = writeModel(tensors);
      const q = fresh(`tiny-${storage}`),
        d = fresh(`tiny-${storage}-back`);
      await quantizeCheckpoint(dir, q, { format: 'nf4', storage, doubleQuant: true });
      const packed = read(join(q, 'model.safetensors'));
      await dequantizeCheckpoint(q, d);
      const back = read(join(d, 'model.safetensors'));
      shapes.forEach(([r, c], i) => {
        const name = `model.layers.${i}.mlp.up_proj.weight`;
        expect(packed[name]!.dtype).toBe(storage);
        // the reference: the same values quantized and dequantized flat (blocks run over the flat order)
        const [p, s] = quantize4bit(tensor(tensors[name]!.data as Float32Array, [r * c]), { quantType: 'nf4', compressStatistics: true });
        const want = dequantize4bit(p, s);
        expect(back[name]!.shape, `${name} [${r}, ${c}]`).toEqual([r, c]);
        expect(bytes(back[name]!).equals(bytes(want)), `${name} [${r}, ${c}] with ${storage}`).toBe(true);
        // and close to the input (NF4 error at most half the largest code gap of its block's absmax)
        const x = toFloat32(tensors[name]!),
          y = toFloat32(back[name]!);
        const absmax = Math.max(...x.map(Math.abs));
        x.forEach((v, j) => expect(Math.abs(v - y[j]!)).toBeLessThanOrEqual(0.16 * absmax + 1e-3 * absmax));
      });
    });
  }
});

describe('non-finite quant_state statistics (case 15)', () => {
  const W = tensor(randn(rng, 64 * 64), [64, 64]);
  const [p, nested] = quantize4bit(W, { quantType: 'nf4', compressStatistics: true });
  const [, plain] = quantize4bit(W, { quantType: 'nf4' });

  /** The packed dict of `s` with `edit` applied: the blob's JSON text, or a tensor replaced. */
  function damaged(s: QuantState, edit: { offset?: string; key?: string; at?: number; value?: number }): Record<string, Tensor> {
    const d = s.asDict({ packed: true });
    if (edit.offset !== undefined) {
      const key = 'quant_state.bitsandbytes__nf4';
      const text = Buffer.from(bytes(d[key]!))
        .toString('utf8')
        .replace(/"nested_offset": [^,}]*/, `"nested_offset": ${edit.offset}`);
      const b = new TextEncoder().encode(text);
      d[key] = tensor(b, [b.length]);
    } else {
      const t = d[edit.key!]!;
      const v = Float32Array.from(t.data as Float32Array);
      v[edit.at!] = edit.value!;
      d[edit.key!] = tensor(v, [...t.shape]);
    }
    return d;
  }

  const CASES: [string, QuantState, Parameters<typeof damaged>[1], RegExp][] = [
    ['nested_offset NaN', nested, { offset: 'NaN' }, /nested_offset = NaN is not finite/],
    ['nested_offset Infinity', nested, { offset: 'Infinity' }, /nested_offset = Infinity/],
    ['nested_offset -Infinity', nested, { offset: '-Infinity' }, /nested_offset = -Infinity/],
    ['nested_offset 1e39 (Inf as a float32)', nested, { offset: '1e39' }, /nested_offset = 1e\+39 is not finite as a float32 \(Infinity\)/],
    ['nested_absmax NaN', nested, { key: 'nested_absmax', at: 0, value: NaN }, /nested_absmax has a non-finite value \(NaN\) at index 0/],
    ['nested_absmax Inf', nested, { key: 'nested_absmax', at: 0, value: -Infinity }, /nested_absmax has a non-finite value \(-Infinity\)/],
    ['absmax NaN', plain, { key: 'absmax', at: 5, value: NaN }, /absmax has a non-finite value \(NaN\) at index 5/],
    ['absmax Inf', plain, { key: 'absmax', at: 63, value: Infinity }, /absmax has a non-finite value \(Infinity\) at index 63/],
  ];

  for (const [name, s, edit, msg] of CASES) {
    it(`${name}: fromDict is E_STATE (its tensors untouched); allowNonFinite: true reads it`, () => {
      const d = damaged(s, edit);
      const snapshot = Object.fromEntries(Object.entries(d).map(([k, t]) => [k, Buffer.from(bytes(t))]));
      expect(error(() => QuantState.fromDict(d))).toMatchObject({ code: 'E_STATE', message: expect.stringMatching(msg) });
      expect(error(() => QuantState.fromDict(d))).toMatchObject({ message: expect.stringMatching(/allowNonFinite: true/) });
      for (const [k, t] of Object.entries(d)) expect(bytes(t).equals(snapshot[k]!), k).toBe(true);
      const back = QuantState.fromDict(d, { allowNonFinite: true });
      const x = toFloat32(dequantize4bit(p, back));
      expect(x.some((v) => !Number.isFinite(v))).toBe(true); // what the check prevents by default
    });
  }

  it('a finite state is unchanged by the check (finite extremes included)', () => {
    expect(QuantState.fromDict(nested.asDict({ packed: true })).equals(nested)).toBe(true);
    const big = damaged(plain, { key: 'absmax', at: 1, value: 3.4028234663852886e38 });
    expect(() => QuantState.fromDict(big)).not.toThrow();
    expect(error(() => QuantState.fromDict(nested.asDict({ packed: true }), { allowNonFinite: 1 } as never))).toMatchObject({
      code: 'E_ARGUMENT',
    });
  });

  it('dequantizeCheckpoint: E_STATE naming the layer, input intact, no output; allowNonFinite converts it', async () => {
    for (const [name, s, edit] of CASES) {
      const d = damaged(s, edit);
      const tensors: Record<string, Tensor> = { 'model.layers.0.mlp.up_proj.weight': p };
      for (const [k, t] of Object.entries(d)) tensors[`model.layers.0.mlp.up_proj.weight.${k}`] = t;
      const dir = writeModel(tensors);
      const before = readFileSync(join(dir, 'model.safetensors'));
      const out = fresh('nonfinite');
      const e = await rejection(() => dequantizeCheckpoint(dir, out));
      expect(e, name).toMatchObject({ code: 'E_STATE', message: expect.stringMatching(/^model\.layers\.0\.mlp\.up_proj: /) });
      expect(existsSync(out)).toBe(false);
      expect(readFileSync(join(dir, 'model.safetensors')).equals(before)).toBe(true);
      await dequantizeCheckpoint(dir, out, { allowNonFinite: true });
      const got = read(join(out, 'model.safetensors'))['model.layers.0.mlp.up_proj.weight']!;
      expect(
        toFloat32(got).some((v) => !Number.isFinite(v)),
        name,
      ).toBe(true);
    }
  });
});

describe('JSON nested far too deep (case 12)', () => {
  it('a 200,000-deep config.json is E_CKPT_FORMAT for quantize, dequantize and inspect, not a stack overflow', async () => {
    const deep = `{"a": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
    const [p, s] = quantize4bit(tensor(randn(rng, 64 * 64), [64, 64]), { quantType: 'nf4' });
    const quantized: Record<string, Tensor> = { 'l.weight': p };
    for (const [k, t] of Object.entries(s.asDict({ packed: true }))) quantized[`l.weight.${k}`] = t;
    const float = writeModel({ 'l.weight': tensor(randn(rng, 64 * 64), [64, 64]) }, deep);
    const quant = writeModel(quantized, deep);
    for (const [dir, f] of [
      [float, (o: string) => quantizeCheckpoint(float, o, { format: 'nf4' })],
      [quant, (o: string) => dequantizeCheckpoint(quant, o)],
      [quant, () => inspectCheckpoint(quant)],
    ] as const) {
      const before = readFileSync(join(dir, 'config.json'));
      const out = fresh('deep');
      expect(await rejection(() => f(out))).toMatchObject({
        code: 'E_CKPT_FORMAT',
        message: expect.stringMatching(/config\.json is not valid JSON: nesting too deep/),
      });
      expect(existsSync(out)).toBe(false);
      expect(readFileSync(join(dir, 'config.json')).equals(before)).toBe(true);
    }
  });

  it("a quant_state blob of 32,000 nested brackets is E_STATE (it overflowed JSON.parse's reviver)", () => {
    const [, s] = quantize4bit(tensor(randn(rng, 64)), { quantType: 'nf4' });
    const d = s.asDict({ packed: true });
    const text = `{"quant_type": "nf4", "x": ${'['.repeat(32_000)}${']'.repeat(32_000)}}`;
    const b = new TextEncoder().encode(text);
    const e = error(() => QuantState.fromDict({ ...d, 'quant_state.bitsandbytes__nf4': tensor(b, [b.length]) }));
    expect(e).toMatchObject({ code: 'E_STATE', message: expect.stringMatching(/nesting too deep/) });
    expect(e).toBeInstanceOf(BnbError);
  });
});
