// FP8 checkpoints (DeepSeek-V3 / Qwen FP8 layout: float8_e4m3fn Linear weights with a
// weight_scale_inv per 128x128 tile, quantization_config.quant_method "fp8") through
// `dequantize`: bf16 weights computed independently here, scales and quantization_config
// removed, sharded like any output; `inspect` names the format.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor, serializeSafetensors, tensor } from '../src/index.js';
import { bf16ToNumber, numberToBf16 } from '../src/float16.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { inspectCheckpoint } from '../src/checkpoint/inspect.js';
import { loadSafetensors } from './helpers/golden.js';
import { Rng } from './helpers/random.js';
import { rejection } from './helpers/util.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-fp8-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = new URL('../dist/cli.js', import.meta.url).pathname;

/** float8_e4m3fn -> number (no infinities; S.1111.111 is NaN). */
function e4m3(b: number): number {
  const sign = b & 0x80 ? -1 : 1,
    e = (b >> 3) & 15,
    m = b & 7;
  if (e === 15 && m === 7) return NaN;
  return sign * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
}

// two layers with partial edge tiles, one whole-tile layer, and what passes through
const SHAPES: [string, number, number][] = [
  ['model.layers.0.self_attn.q_proj', 300, 200],
  ['model.layers.0.mlp.down_proj', 128, 384],
  ['model.layers.1.mlp.up_proj', 257, 129],
];
const rng = new Rng(81);
const weights = new Map<string, { W: Uint8Array; S: Float32Array; rows: number; cols: number }>();
const tensors: Record<string, Tensor> = {};
for (const [module, rows, cols] of SHAPES) {
  const W = Uint8Array.from({ length: rows * cols }, () => {
    const b = rng.int(0, 255);
    return (b & 0x7f) === 0x7f ? b - 1 : b; // no NaN
  });
  const S = Float32Array.from({ length: Math.ceil(rows / 128) * Math.ceil(cols / 128) }, () => 2 ** -12 * (1 + rng.next()));
  weights.set(module, { W, S, rows, cols });
  tensors[`${module}.weight`] = tensor(W, [rows, cols], 'float8_e4m3fn');
  tensors[`${module}.weight_scale_inv`] = tensor(S, [Math.ceil(rows / 128), Math.ceil(cols / 128)]);
}
tensors['model.embed_tokens.weight'] = tensor(
  Uint16Array.from({ length: 64 * 200 }, (_, i) => numberToBf16(Math.sin(i))),
  [64, 200],
  'bfloat16',
);
tensors['model.norm.weight'] = tensor(
  Uint16Array.from({ length: 200 }, () => numberToBf16(1)),
  [200],
  'bfloat16',
);
const CONFIG =
  '{"architectures": ["DeepseekV3ForCausalLM"], "dtype": "bfloat16", "rms_norm_eps": 1e-06, "rope_theta": 10000.0, ' +
  '"quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}}';
const input = join(tmp, 'fp8');
mkdirSync(input);
writeFileSync(join(input, 'model.safetensors'), serializeSafetensors(tensors, { metadata: { format: 'pt' } }));
writeFileSync(join(input, 'config.json'), CONFIG);
writeFileSync(join(input, 'tokenizer.json'), '{}');

/** bf16 bits of W * bf16(scale_inv) per 128x128 tile, as torch computes `W.to(bf16) * s.to(bf16)`. */
function reference(module: string): Uint16Array {
  const { W, S, rows, cols } = weights.get(module)!;
  const tc = Math.ceil(cols / 128);
  return Uint16Array.from({ length: rows * cols }, (_, i) => {
    const r = Math.floor(i / cols),
      c = i % cols;
    return numberToBf16(e4m3(W[i]!) * bf16ToNumber(numberToBf16(S[Math.floor(r / 128) * tc + Math.floor(c / 128)]!)));
  });
}

describe('FP8 checkpoints', () => {
  it('dequantize: every FP8 weight to bf16, scales and quantization_config gone, the rest unchanged', async () => {
    const out = join(tmp, 'bf16');
    const r = await dequantizeCheckpoint(input, out);
    expect(r.layers).toBe(3);
    const got = loadSafetensors(join(out, 'model.safetensors'));
    expect(Object.keys(got).sort()).toEqual(
      ['model.embed_tokens.weight', 'model.norm.weight', ...SHAPES.map(([m]) => `${m}.weight`)].sort(),
    );
    for (const [module, rows, cols] of SHAPES) {
      const w = got[`${module}.weight`]!;
      expect([w.dtype, w.shape], module).toEqual(['bfloat16', [rows, cols]]);
      const want = reference(module);
      expect(Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength).equals(Buffer.from(want.buffer)), module).toBe(true);
    }
    expect(
      Buffer.from(got['model.embed_tokens.weight']!.data.buffer).equals(Buffer.from(tensors['model.embed_tokens.weight']!.data.buffer)),
    ).toBe(true);
    const config = readFileSync(join(out, 'config.json'), 'utf8');
    expect(config).not.toContain('quantization_config');
    expect(config).toContain('"rope_theta": 10000.0');
    expect(config).toContain('"rms_norm_eps": 1e-06');
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
  });

  it('--dtype fp16 and sharded output', async () => {
    const out = join(tmp, 'f16-sharded');
    const r = await dequantizeCheckpoint(input, out, { dtype: 'float16', maxShardSize: 100_000 });
    expect(r.files.length).toBeGreaterThan(1);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map).sort()).toEqual(
      ['model.embed_tokens.weight', 'model.norm.weight', ...SHAPES.map(([m]) => `${m}.weight`)].sort(),
    );
    const f = loadSafetensors(join(out, index.weight_map['model.layers.1.mlp.up_proj.weight']))['model.layers.1.mlp.up_proj.weight']!;
    expect(f.dtype).toBe('float16');
  });

  it('inspect names the format and the tiles; the CLI prints it', async () => {
    const s = await inspectCheckpoint(input);
    expect(s.format).toBe('fp8');
    expect(s.layers.map((l) => [l.name, l.format, l.shape, l.blocksize, l.storage])).toEqual(
      SHAPES.map(([m, rows, cols]) => [`${m}.weight`, 'fp8', [rows, cols], 128, 'F8_E4M3']).sort((a, b) =>
        (a[0] as string).localeCompare(b[0] as string),
      ),
    );
    expect(s.other.map((t) => t.name).sort()).toEqual(['model.embed_tokens.weight', 'model.norm.weight']);
    const text = spawnSync(process.execPath, [cli, 'inspect', input], { encoding: 'utf8' }).stdout;
    expect(text).toMatch(/: fp8, 8 tensors/);
    expect(text).toMatch(/model\.layers\.0\.self_attn\.q_proj\.weight {2}fp8 {2}\[300, 200\] {2}float8_e4m3fn, 128x128 scale tiles/);
  });

  it('bad FP8 layouts are coded errors and write nothing', async () => {
    const bad = join(tmp, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'model.safetensors'), serializeSafetensors(tensors));
    writeFileSync(join(bad, 'config.json'), CONFIG.replace('[128, 128]', '[128, 64]'));
    expect(await rejection(() => dequantizeCheckpoint(bad, join(tmp, 'never1')))).toMatchObject({
      code: 'E_CKPT_FORMAT',
      message: expect.stringMatching(/weight_block_size = \[128, 64\] is not accepted: expected square tiles/),
    });
    writeFileSync(join(bad, 'config.json'), CONFIG);
    const wrongScale = { ...tensors, 'model.layers.1.mlp.up_proj.weight_scale_inv': tensor(new Float32Array(3), [3]) };
    writeFileSync(join(bad, 'model.safetensors'), serializeSafetensors(wrongScale));
    expect(await rejection(() => dequantizeCheckpoint(bad, join(tmp, 'never2')))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/^model\.layers\.1\.mlp\.up_proj: scaleInv\.shape = \[3\] does not fit W\.shape = \[257, 129\]/),
    });
    const notFp8 = { ...tensors, 'model.layers.1.mlp.up_proj.weight': tensor(new Uint16Array(257 * 129), [257, 129], 'bfloat16') };
    writeFileSync(join(bad, 'model.safetensors'), serializeSafetensors(notFp8));
    expect(await rejection(() => dequantizeCheckpoint(bad, join(tmp, 'never3')))).toMatchObject({
      code: 'E_CKPT_FORMAT',
      message: expect.stringMatching(/up_proj\.weight is BF16: an FP8 weight .* must be F8_E4M3/),
    });
    for (const n of ['never1', 'never2', 'never3']) expect(existsSync(join(tmp, n))).toBe(false);
  });
});
