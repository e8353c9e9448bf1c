// Hugging Face bitsandbytes checkpoints: the tiny real models in ../shared/models,
// through the checkpoint conversion pipeline (streaming safetensors in and out).
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor, toFloat32 } from '../src/index.js';
import { numberToBf16 } from '../src/float16.js';
import { compressAbsmax } from '../src/backend/wasm/blockwise.js';
import { quantize4bit } from '../src/ops/quantize4bit.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { inspectCheckpoint } from '../src/checkpoint/inspect.js';
import { SHARED, bytes, diffElements, loadSafetensors } from './helpers/golden.js';
import { ulpDistance } from './helpers/reference.js';

const models = `${SHARED}/models`;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const eqBytes = (a: Tensor, b: Tensor) => Buffer.from(bytes(a)).equals(Buffer.from(bytes(b)));

describe('dequantizing the tiny real checkpoints', () => {
  it('tiny-llama-nf4-dq: every layer equals bitsandbytes dequantize_4bit bit for bit', async () => {
    const out = join(tmp, 'nf4-deq');
    const r = await dequantizeCheckpoint(`${models}/tiny-llama-nf4-dq`, out);
    expect(r.layers).toBe(14);
    const got = loadSafetensors(join(out, 'model.safetensors'));
    const ref = loadSafetensors(`${models}/tiny-llama-nf4-dq/reference.safetensors`);
    const orig = loadSafetensors(`${models}/tiny-llama-nf4-dq/model.safetensors`);
    for (const key of Object.keys(ref).filter((k) => k.endsWith('.dequantized'))) {
      const name = key.replace(/\.dequantized$/, '.weight');
      expect(got[name]!.dtype, name).toBe('bfloat16');
      expect(diffElements(got[name]!, ref[key]!), name).toEqual([]);
    }
    // pass-through tensors unchanged, quantization items gone
    for (const name of Object.keys(orig).filter((k) => !k.includes('.weight.') && !/_proj\.weight$/.test(k)))
      expect(eqBytes(got[name]!, orig[name]!), name).toBe(true);
    expect(Object.keys(got).some((k) => k.includes('absmax') || k.includes('quant_state'))).toBe(false);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toBeUndefined();
    expect(config.hidden_size).toBe(256);
    expect(config.dtype).toBe('bfloat16'); // no dtype asked: the model's stays
  });

  it('an explicit dtype becomes config.json dtype (transformers loads with it)', async () => {
    const out = join(tmp, 'nf4-deq-f16');
    await dequantizeCheckpoint(`${models}/tiny-llama-nf4-dq`, out, { dtype: 'float16' });
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect([config.dtype, config.torch_dtype, config.quantization_config]).toEqual(['float16', undefined, undefined]);
    expect(loadSafetensors(join(out, 'model.safetensors'))['model.layers.0.mlp.up_proj.weight']!.dtype).toBe('float16');
  });

  it('tiny-llama-int8: weights dequantize to CB * SCB / 127 as bitsandbytes does', async () => {
    const out = join(tmp, 'int8-deq');
    const r = await dequantizeCheckpoint(`${models}/tiny-llama-int8`, out);
    expect(r.layers).toBe(14);
    const got = loadSafetensors(join(out, 'model.safetensors'));
    const src = loadSafetensors(`${models}/tiny-llama-int8/model.safetensors`);
    const k = Math.fround(1 / 127);
    for (const name of Object.keys(src).filter((n) => n.endsWith('.SCB'))) {
      const w = name.replace(/\.SCB$/, '.weight');
      const CB = src[w]!,
        SCB = src[name]!.data;
      const cols = CB.shape[1]!;
      const out16 = got[w]!;
      expect(out16.dtype).toBe('bfloat16'); // the model's dtype (config.json)
      const bad: number[] = [];
      for (let i = 0; i < CB.data.length; i++) {
        const want = numberToBf16(Math.fround(Math.fround(CB.data[i]! * SCB[Math.floor(i / cols)]!) * k));
        if (out16.data[i] !== want) bad.push(i);
      }
      expect(bad, w).toEqual([]);
      expect(got[name]).toBeUndefined();
    }
  });
});

describe('quantizing tiny-llama-bf16 reproduces the transformers + bitsandbytes checkpoints', () => {
  it('nf4 + double quant: tensor for tensor, differences only where the nested offset differs', async () => {
    const out = join(tmp, 'nf4');
    const r = await quantizeCheckpoint(`${models}/tiny-llama-bf16`, out, { format: 'nf4', doubleQuant: true, blocksize: 64 });
    expect(r.layers).toBe(14);
    const got = loadSafetensors(join(out, 'model.safetensors'));
    const want = loadSafetensors(`${models}/tiny-llama-nf4-dq/model.safetensors`);
    const original = loadSafetensors(`${models}/tiny-llama-bf16/model.safetensors`);
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    let offsetLayers = 0;
    for (const name of Object.keys(want)) {
      const a = got[name]!,
        b = want[name]!;
      expect([a.dtype, a.shape], name).toEqual([b.dtype, b.shape]);
      if (eqBytes(a, b)) continue;
      // Only the nested statistics of a layer whose offset (torch's CUDA mean) differs from the exact mean.
      const m = /^(.*\.weight)\.(absmax|nested_absmax|quant_state\.bitsandbytes__nf4)$/.exec(name);
      expect(m, `${name} differs`).not.toBeNull();
      const weight = m![1]!;
      const blob = JSON.parse(new TextDecoder().decode(bytes(want[`${weight}.quant_state.bitsandbytes__nf4`]!)));
      const ours = JSON.parse(new TextDecoder().decode(bytes(got[`${weight}.quant_state.bitsandbytes__nf4`]!)));
      const ulps = ulpDistance(Math.fround(ours.nested_offset), Math.fround(blob.nested_offset));
      expect(ulps, `${name}: differs without an offset difference`).toBeGreaterThan(0);
      if (name.endsWith('bitsandbytes__nf4')) {
        offsetLayers++;
        const codes = diffElements(got[`${weight}.absmax`]!, want[`${weight}.absmax`]!).length;
        console.log(
          `${weight}: nested_offset ${ours.nested_offset} vs bitsandbytes ${blob.nested_offset} (${ulps} ulp: torch's CUDA mean); ${codes} of ${want[`${weight}.absmax`]!.data.length} nested absmax codes move with it`,
        );
        // replaying bitsandbytes' offset gives its bytes exactly
        const plain = quantize4bit(original[weight]!, { quantType: 'nf4', blocksize: 64 })[1].absmax.data as Float32Array;
        const replay = compressAbsmax(plain, 256, Math.fround(blob.nested_offset));
        expect(eqBytes(replay.absmax, want[`${weight}.absmax`]!)).toBe(true);
        expect(eqBytes(replay.state2.absmax, want[`${weight}.nested_absmax`]!)).toBe(true);
      }
    }
    expect(offsetLayers).toBeLessThanOrEqual(2);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toEqual(
      JSON.parse(readFileSync(`${models}/tiny-llama-nf4-dq/config.json`, 'utf8')).quantization_config,
    );
  });

  it('int8: CB, SCB and weight_format as bitsandbytes writes them', async () => {
    const out = join(tmp, 'int8');
    await quantizeCheckpoint(`${models}/tiny-llama-bf16`, out, { format: 'int8' });
    const got = loadSafetensors(join(out, 'model.safetensors'));
    const want = loadSafetensors(`${models}/tiny-llama-int8/model.safetensors`);
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    const diffs = Object.keys(want).filter((n) => !eqBytes(got[n]!, want[n]!) || got[n]!.dtype !== want[n]!.dtype);
    for (const n of diffs) console.log(`${n}: ${diffElements(got[n]!, want[n]!).length} elements differ`);
    expect(diffs).toEqual([]);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.quantization_config).toEqual(
      JSON.parse(readFileSync(`${models}/tiny-llama-int8/config.json`, 'utf8')).quantization_config,
    );
  });

  it('bf16 -> nf4 -> bf16 round trip stays within bitsandbytes test_4bit_quant bars', async () => {
    const back = join(tmp, 'nf4-back');
    await dequantizeCheckpoint(join(tmp, 'nf4'), back);
    const a = loadSafetensors(`${models}/tiny-llama-bf16/model.safetensors`);
    const b = loadSafetensors(join(back, 'model.safetensors'));
    for (const name of Object.keys(a).filter((n) => /_proj\.weight$/.test(n))) {
      const x = toFloat32(a[name]!),
        y = toFloat32(b[name]!);
      let err = 0,
        rel = 0,
        sq = 0;
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i]! - y[i]!);
        err += d;
        rel += d / (Math.abs(x[i]!) + 1e-8);
        sq += x[i]! * x[i]!;
      }
      const std = Math.sqrt(sq / x.length);
      // nf4 bs64 bar (mean + 7 sigma): err < 0.073316 for unit variance, relerr < 0.205719
      expect(err / x.length / std, name).toBeLessThan(0.073316);
      expect(rel / x.length, name).toBeLessThan(0.205719);
    }
  });

  it('inspect reports layers, formats and what would be dequantized', async () => {
    const s = await inspectCheckpoint(`${models}/tiny-llama-nf4-dq`);
    expect(s.layers.length).toBe(14);
    expect(s.layers[0]).toMatchObject({ format: 'nf4', blocksize: 64, nested: true, storage: 'U8', dtype: 'bfloat16' });
    expect(s.other.map((t) => t.name)).toContain('lm_head.weight');
    const i8 = await inspectCheckpoint(`${models}/tiny-llama-int8/model.safetensors`);
    expect(i8.layers.every((l) => l.format === 'int8')).toBe(true);
  });
});

describe('malformed checkpoints are rejected with their code and nothing is written', () => {
  const nf4 = loadSafetensors(`${models}/tiny-llama-nf4-dq/model.safetensors`);
  async function without(dropOrEdit: (t: Record<string, Tensor>) => void, code: string) {
    const { serializeSafetensors } = await import('../src/io/safetensors/encode.js');
    const t = { ...nf4 };
    dropOrEdit(t);
    const dir = join(tmp, `bad-${code}-${Math.random().toString(36).slice(2)}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(t, { metadata: { format: 'pt' } }));
    const out = join(tmp, `out-${code}`);
    await expect(dequantizeCheckpoint(dir, out)).rejects.toMatchObject({ code });
    expect(existsSync(out)).toBe(false);
  }
  it('a 4-bit layer without its quant_state blob', () =>
    without((t) => {
      delete t['model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4'];
    }, 'E_CKPT_QUANT_STATE'));
  it('a quant_state blob of an unknown quant type', () =>
    without((t) => {
      const k = 'model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4';
      t[k.replace('nf4', 'int4')] = t[k]!;
      delete t[k];
    }, 'E_CKPT_QUANT_TYPE'));
  it('a blob that is not JSON', () =>
    without((t) => {
      const k = 'model.layers.0.mlp.down_proj.weight.quant_state.bitsandbytes__nf4';
      t[k] = { ...t[k]!, data: new TextEncoder().encode('{"quant_type": "nf4", "blocks') };
      t[k].shape = [t[k].data.length];
    }, 'E_CKPT_QUANT_STATE'));
  it('refuses to overwrite an existing output without force', async () => {
    const out = join(tmp, 'exists');
    mkdirSync(out);
    await expect(dequantizeCheckpoint(`${models}/tiny-llama-nf4-dq`, out)).rejects.toMatchObject({ code: 'E_EXISTS' });
  });
});
