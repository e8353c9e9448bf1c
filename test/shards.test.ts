// Sharded outputs (--max-shard-size): transformers' names, a consistent index, a tensor
// never split, the limit respected, the same tensors as one file, and a failure half-way
// leaving nothing at the final names.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor, serializeSafetensors, tensor } from '../src/index.js';
import { numberToBf16 } from '../src/float16.js';
import { openCheckpoint } from '../src/io/open.js';
import { openSafetensors } from '../src/io/safetensors/file-source.js';
import type { PlannedTensor } from '../src/io/sink.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { DEFAULT_MAX_SHARD_SIZE, parseShardSize, planShards, plannedBytes } from '../src/io/safetensors/sharded-sink.js';
import { SHARED, bytes, loadSafetensors } from './helpers/golden.js';
import { Rng } from './helpers/random.js';
import { error, rejection } from './helpers/util.js';

const models = `${SHARED}/models`;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-shards-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every tensor of a folder (through its index if sharded), as bytes. */
async function folderBytes(dir: string): Promise<Map<string, Buffer>> {
  const r = await openCheckpoint(dir);
  try {
    const out = new Map<string, Buffer>();
    for (const n of r.names()) out.set(n, Buffer.from(await r.readBytes(n)));
    return out;
  } finally {
    await r.close();
  }
}

/** The same tensor names with the same bytes (Buffer.equals: deep equality of megabytes is slow). */
function expectSame(a: Map<string, Buffer>, b: Map<string, Buffer>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  expect([...a].filter(([k, v]) => !v.equals(b.get(k)!)).map(([k]) => k)).toEqual([]);
}

/** Checks a sharded folder against transformers' layout and returns its shards' tensor names and sizes. */
async function checkIndex(dir: string, limit: number): Promise<{ files: string[]; sizes: number[] }> {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
  const n = files.length;
  expect(n).toBeGreaterThan(1);
  expect(files).toEqual(
    Array.from({ length: n }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`),
  );
  expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
  expect(Object.keys(index)).toEqual(['metadata', 'weight_map']);
  const seen = new Map<string, string>();
  let total = 0;
  const sizes: number[] = [];
  for (const f of files) {
    const r = await openSafetensors(join(dir, f));
    let size = 0,
      count = 0;
    for (const name of r.names()) {
      const info = r.info(name);
      expect(seen.has(name), `${name} in two shards`).toBe(false);
      seen.set(name, f);
      size += info.end - info.start;
      count++;
    }
    // the limit holds unless a single tensor is larger than it
    if (count > 1) expect(size, f).toBeLessThanOrEqual(limit);
    sizes.push(size);
    total += size;
    await r.close();
  }
  expect(index.metadata).toEqual({ total_size: total });
  expect(Object.entries(index.weight_map).sort()).toEqual([...seen.entries()].sort());
  expect(Object.keys(index.weight_map)).toEqual(Object.keys(index.weight_map).sort()); // sort_keys, as transformers
  return { files, sizes };
}

describe('shard sizes and the plan', () => {
  it('sizes as transformers takes them: bytes, decimal and binary units', () => {
    expect(parseShardSize('5GB')).toBe(5e9);
    expect(parseShardSize('500MB')).toBe(5e8);
    expect(parseShardSize('1.5GB')).toBe(1.5e9);
    expect(parseShardSize('2GiB')).toBe(2 * 2 ** 30);
    expect(parseShardSize('100kb')).toBe(1e5);
    expect(parseShardSize('12345')).toBe(12345);
    expect(parseShardSize(4096)).toBe(4096);
    expect(DEFAULT_MAX_SHARD_SIZE).toBe(50e9);
    for (const bad of ['', '0', '-5GB', '5XB', 'GB', '1e3', 0, 1.5, NaN]) {
      expect(
        error(() => parseShardSize(bad as string)),
        String(bad),
      ).toMatchObject({
        code: 'E_ARGUMENT',
        message: expect.stringMatching(/maxShardSize = .* is not accepted: expected a positive number of bytes, or a size such as "5GB"/),
      });
    }
  });

  it('fills shards in order, never splits a tensor, gives an oversized tensor a shard of its own', () => {
    const p = (name: string, n: number): PlannedTensor => ({ name, dtype: 'U8', shape: [n] });
    const plan = [p('a', 40), p('b', 40), p('c', 30), p('d', 250), p('e', 10), p('f', 100), p('g', 1)];
    const shards = planShards(plan, 100);
    // huggingface_hub's rule: c would pass 100 after a and b (new shard); d is larger than the limit
    // and goes alone at once, while the open shard [c] takes e; f would pass 100 (new shard); g too
    expect(shards.map((s) => s.map((t) => t.name))).toEqual([['a', 'b'], ['d'], ['c', 'e'], ['f'], ['g']]);
    expect(planShards(plan, 1000).map((s) => s.length)).toEqual([7]);
    expect(plannedBytes({ name: 'q', dtype: 'U8', maxElements: 4096 })).toBe(4096);
    expect(planShards([], 100)).toEqual([[]]);
  });
});

describe('sharded checkpoints written and read back', () => {
  it("quantize with a 400 KB limit: transformers' names and index, the same tensors as one file, and back", async () => {
    const limit = 400_000;
    const one = join(tmp, 'one'),
      sharded = join(tmp, 'sharded');
    await quantizeCheckpoint(`${models}/tiny-llama-bf16`, one, { format: 'nf4', doubleQuant: true });
    const r = await quantizeCheckpoint(`${models}/tiny-llama-bf16`, sharded, { format: 'nf4', doubleQuant: true, maxShardSize: limit });
    const { files } = await checkIndex(sharded, limit);
    expect(r.files).toEqual(files.map((f) => join(sharded, f)));
    expect(r.file).toBe(join(sharded, 'model.safetensors.index.json'));
    expect(readdirSync(sharded).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors.index.json', ...files].sort());
    expectSame(await folderBytes(sharded), await folderBytes(one));
    // a module's items stay with their weight unless the limit falls between them; the reader does not care
    const back = join(tmp, 'back-sharded');
    const d = await dequantizeCheckpoint(sharded, back, { maxShardSize: '1MB' });
    expect(d.layers).toBe(14);
    await checkIndex(back, 1e6);
    const backOne = join(tmp, 'back-one');
    await dequantizeCheckpoint(one, backOne);
    expectSame(await folderBytes(back), await folderBytes(backOne));
  });

  it('one file when everything fits (the 50GB default), and a single-file output that would need shards is refused', async () => {
    const out = join(tmp, 'fits');
    const r = await quantizeCheckpoint(`${models}/tiny-llama-bf16`, out, { format: 'int8', maxShardSize: '5GB' });
    expect(r.files).toEqual([join(out, 'model.safetensors')]);
    expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(false);
    const file = join(tmp, 'file.safetensors');
    expect(
      await rejection(() =>
        quantizeCheckpoint(`${models}/tiny-llama-bf16/model.safetensors`, file, { format: 'nf4', maxShardSize: 100_000 }),
      ),
    ).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/would split the output into \d+ shards: a sharded output needs a model folder/),
    });
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.startsWith('.file.safetensors'))).toEqual([]);
  });

  it('a failure half-way (NaN in the last layer) leaves nothing at the final names, nor temporaries', async () => {
    const input = join(tmp, 'nan-in');
    mkdirSync(input);
    const rng = new Rng(3);
    const tensors: Record<string, Tensor> = {};
    for (let l = 0; l < 6; l++) {
      const data = Uint16Array.from({ length: 256 * 256 }, () => numberToBf16(rng.normal() * 0.02));
      if (l === 5) data[1000] = 0x7fc0;
      tensors[`model.layers.${l}.mlp.up_proj.weight`] = tensor(data, [256, 256], 'bfloat16');
    }
    writeFileSync(join(input, 'model.safetensors'), serializeSafetensors(tensors));
    writeFileSync(join(input, 'config.json'), '{"model_type": "llama"}');
    const out = join(tmp, 'nan-out');
    expect(await rejection(() => quantizeCheckpoint(input, out, { format: 'nf4', maxShardSize: 50_000 }))).toMatchObject({
      code: 'E_NON_FINITE',
    });
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.startsWith('.nan-out.'))).toEqual([]);
    // and the same input without the NaN gives one shard per layer
    tensors['model.layers.5.mlp.up_proj.weight']!.data[1000] = 0;
    writeFileSync(join(input, 'model.safetensors'), serializeSafetensors(tensors));
    const ok = await quantizeCheckpoint(input, out, { format: 'nf4', maxShardSize: 50_000 }); // 41,024 bytes a layer at most
    expect(ok.files).toHaveLength(6);
    const got = await folderBytes(out);
    const packed = loadSafetensors(ok.files[0]!)['model.layers.0.mlp.up_proj.weight']!;
    expect(Buffer.from(bytes(packed))).toEqual(got.get('model.layers.0.mlp.up_proj.weight'));
  });
});
