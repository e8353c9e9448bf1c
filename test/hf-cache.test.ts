// A Hugging Face cache: hub/models--org--name/{blobs/<sha256>, refs/main,
// snapshots/<commit>/...}, every snapshot file a relative symbolic link into
// ../../blobs. Converting a snapshot (single file or shards + index, library and CLI)
// copies every companion as a regular file of the output with the blob's bytes, and
// leaves the cache (blobs, links, refs) exactly as it was.
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { inspectCheckpoint } from '../src/checkpoint/inspect.js';
import { MODELS, sha256, shardedFiles, snapshot } from './helpers/folders.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-hfcache-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hub = join(tmp, 'hub');
const repo = join(hub, 'models--org--tiny-llama');

/** The companions a Hugging Face model repository carries besides config.json and the weights. */
const COMPANIONS: Record<string, string> = {
  'generation_config.json': readFileSync(`${MODELS}/tiny-llama-bf16/generation_config.json`, 'utf8'),
  'tokenizer.json': '{"version": "1.0", "truncation": null, "padding": null, "model": {"type": "BPE", "vocab": {"<s>": 1}}}\n',
  'tokenizer_config.json': '{"add_bos_token": true, "bos_token": "<s>", "model_max_length": 2048}\n',
  'special_tokens_map.json': '{"bos_token": {"content": "<s>", "lstrip": false}}\n',
};

/**
 * A snapshot `commit` of `files` laid out as huggingface_hub does: each file's bytes
 * in blobs/<sha256>, the snapshot entry a relative link ../../blobs/<sha256>.
 */
function addSnapshot(commit: string, files: Map<string, Buffer>): string {
  const snap = join(repo, 'snapshots', commit);
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(snap, { recursive: true });
  for (const [name, data] of files) {
    const blob = sha256(data);
    writeFileSync(join(repo, 'blobs', blob), data);
    symlinkSync(join('..', '..', 'blobs', blob), join(snap, name));
  }
  mkdirSync(join(repo, 'refs'), { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), commit);
  return snap;
}

const companions = () => new Map(Object.entries(COMPANIONS).map(([n, t]) => [n, Buffer.from(t)] as [string, Buffer]));

const single = addSnapshot(
  '1f0c2ab5d6e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0',
  new Map([
    ['config.json', readFileSync(`${MODELS}/tiny-llama-bf16/config.json`)],
    ['model.safetensors', readFileSync(`${MODELS}/tiny-llama-bf16/model.safetensors`)],
    ...companions(),
  ]),
);
const { files: shardFiles, index } = shardedFiles('tiny-llama-bf16', 3);
const sharded = addSnapshot(
  '9e8d7c6b5a49382716051f2e3d4c5b6a79881726',
  new Map([...shardFiles, ['model.safetensors.index.json', Buffer.from(JSON.stringify(index, null, 2))], ...companions()]),
);

/** The output folder holds each companion as a regular file (not a link) with the blob's bytes. */
function expectCompanions(out: string, snap: string): void {
  for (const name of Object.keys(COMPANIONS)) {
    const st = lstatSync(join(out, name));
    expect(st.isFile(), `${name} is a regular file`).toBe(true);
    expect(st.nlink, `${name} is not a hard link to the blob`).toBe(1);
    const blob = readFileSync(join(snap, readlinkSync(join(snap, name))));
    expect(readFileSync(join(out, name)).equals(blob), name).toBe(true);
    expect(readFileSync(join(out, name), 'utf8')).toBe(COMPANIONS[name]);
  }
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  const original = JSON.parse(readFileSync(`${MODELS}/tiny-llama-bf16/config.json`, 'utf8'));
  expect(config).toEqual({
    ...original,
    quantization_config: expect.objectContaining({ quant_method: 'bitsandbytes', bnb_4bit_quant_type: 'nf4' }),
  });
}

describe('a Hugging Face cache snapshot (relative links into ../../blobs)', () => {
  it('is laid out as huggingface_hub lays it out', () => {
    for (const snap of [single, sharded]) {
      for (const name of readdirSync(snap)) {
        expect(lstatSync(join(snap, name)).isSymbolicLink(), name).toBe(true);
        expect(readlinkSync(join(snap, name))).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
      }
    }
    expect(readdirSync(sharded).sort()).toEqual(
      [
        ...Object.keys(COMPANIONS),
        'config.json',
        'model-00001-of-00003.safetensors',
        'model-00002-of-00003.safetensors',
        'model-00003-of-00003.safetensors',
        'model.safetensors.index.json',
      ].sort(),
    );
  });

  it("quantizeCheckpoint: single file and shards + index; every companion a regular file with the blob's bytes; the cache unchanged", async () => {
    const before = snapshot(hub);
    for (const [snap, out] of [
      [single, join(tmp, 'nf4-single')],
      [sharded, join(tmp, 'nf4-sharded')],
    ] as const) {
      const r = await quantizeCheckpoint(snap, out, { format: 'nf4' });
      expect(r.layers).toBe(14);
      expect(readdirSync(out).sort()).toEqual([...Object.keys(COMPANIONS), 'config.json', 'model.safetensors'].sort());
      expectCompanions(out, snap);
      const s = await inspectCheckpoint(out);
      expect(s.layers).toHaveLength(14);
      expect(s.format).toBe('bitsandbytes nf4');
      expect(snapshot(hub)).toEqual(before);
    }
    // both snapshots hold the same tensors: the outputs' weights are the same bytes
    expect(
      readFileSync(join(tmp, 'nf4-sharded', 'model.safetensors')).equals(readFileSync(join(tmp, 'nf4-single', 'model.safetensors'))),
    ).toBe(true);
  });

  it('the CLI, sharded output too: the same, and the cache unchanged', () => {
    const before = snapshot(hub);
    for (const [snap, out, extra] of [
      [single, join(tmp, 'cli-single'), []],
      [sharded, join(tmp, 'cli-sharded'), ['--max-shard-size', '1MB']],
    ] as const) {
      const r = spawnSync(process.execPath, [cli, 'quantize', snap, out, '--format', 'nf4', ...extra, '--json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).layers).toBe(14);
      expectCompanions(out, snap);
      expect(snapshot(hub)).toEqual(before);
    }
    expect(readdirSync(join(tmp, 'cli-sharded')).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(1);
    expect(lstatSync(join(tmp, 'cli-sharded', 'model.safetensors.index.json')).isFile()).toBe(true);
  });
});
