// A sharded checkpoint's index must account for every tensor of the shards it names:
// a tensor a shard holds that the weight_map omits, one that two shards hold, and an
// empty weight_map are E_ST_INDEX naming the tensor and the shard, so that nothing is
// dropped unseen, unless trustIndex (--trust-index) says to read only what it lists.
// The input's bytes stay as they were; nothing is written on a refusal.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSafetensors, serializeSafetensors } from '../src/index.js';
import { openCheckpoint } from '../src/io/open.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { inspectCheckpoint } from '../src/checkpoint/inspect.js';
import { shardedModel, snapshot } from './helpers/folders.js';
import { rejection } from './helpers/util.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-index-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const OMITTED = 'model.layers.1.mlp.up_proj.weight';
const SHARD2 = 'model-00002-of-00002.safetensors';

// the tiny float model in two shards; the index leaves out one Linear weight of shard 2
let omittedShard = '';
const omits = shardedModel('tiny-llama-bf16', join(tmp, 'omits'), 2, (map) => {
  omittedShard = map[OMITTED]!;
  delete map[OMITTED];
});
const empty = shardedModel('tiny-llama-bf16', join(tmp, 'empty'), 2, (map) => {
  for (const k of Object.keys(map)) delete map[k];
});
// shard 2 also holds a copy of a tensor the index maps to shard 1
const twice = shardedModel('tiny-llama-bf16', join(tmp, 'twice'), 2);
const twiceMap = JSON.parse(readFileSync(join(twice, 'model.safetensors.index.json'), 'utf8')).weight_map as Record<string, string>;
const DUPLICATE = Object.keys(twiceMap).find((n) => twiceMap[n] !== SHARD2 && n.endsWith('_proj.weight'))!;
{
  const s1 = parseSafetensors(readFileSync(join(twice, twiceMap[DUPLICATE]!)));
  const s2 = parseSafetensors(readFileSync(join(twice, SHARD2)));
  writeFileSync(
    join(twice, SHARD2),
    serializeSafetensors({ ...s2.tensors, [DUPLICATE]: s1.tensors[DUPLICATE]! }, { metadata: s2.metadata }),
  );
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const OMITS = new RegExp(
  `^${escape(join(omits, 'model.safetensors.index.json'))}: weight_map omits "${escape(OMITTED)}", which ${escape(omittedShard)} holds: .*trustIndex, --trust-index`,
);
const EMPTY =
  /model\.safetensors\.index\.json: weight_map is empty: it names no tensor and no shard \(pass trustIndex, --trust-index, to open it as an empty checkpoint\)$/;
const TWICE = new RegExp(
  `: ${escape(SHARD2)} also holds "${escape(DUPLICATE)}", which weight_map maps to model-00001-of-00002\\.safetensors: a tensor must be in one shard`,
);

describe('an index that leaves out a tensor of its shards', () => {
  it('the test model: the shard the index left out a weight of holds it', () => {
    expect(omittedShard).toMatch(/^model-0000[12]-of-00002\.safetensors$/);
    expect(Object.keys(parseSafetensors(readFileSync(join(omits, omittedShard))).tensors)).toContain(OMITTED);
  });

  it('openCheckpoint, inspect, quantize, dequantize: E_ST_INDEX naming the tensor and the shard; nothing written, the input intact', async () => {
    const before = snapshot(tmp);
    for (const path of [omits, join(omits, 'model.safetensors.index.json')]) {
      expect(await rejection(() => openCheckpoint(path))).toMatchObject({ code: 'E_ST_INDEX', message: expect.stringMatching(OMITS) });
      expect(await rejection(() => openCheckpoint(path, { trustIndex: false }))).toMatchObject({ code: 'E_ST_INDEX' });
    }
    expect(await rejection(() => inspectCheckpoint(omits))).toMatchObject({ code: 'E_ST_INDEX', message: expect.stringMatching(OMITS) });
    expect(await rejection(() => quantizeCheckpoint(omits, join(tmp, 'q'), { format: 'nf4' }))).toMatchObject({
      code: 'E_ST_INDEX',
      message: expect.stringMatching(OMITS),
    });
    expect(await rejection(() => dequantizeCheckpoint(omits, join(tmp, 'd'), { allowEmpty: true }))).toMatchObject({
      code: 'E_ST_INDEX',
      message: expect.stringMatching(OMITS),
    });
    expect(existsSync(join(tmp, 'q')) || existsSync(join(tmp, 'd'))).toBe(false);
    expect(snapshot(tmp)).toEqual(before);
  });

  it('with trustIndex: only what the index lists, the omitted tensor left out', async () => {
    const c = await openCheckpoint(omits, { trustIndex: true });
    try {
      expect(c.names()).toHaveLength(20);
      expect(c.names()).not.toContain(OMITTED);
      expect(c.files).toEqual([join(omits, 'model-00001-of-00002.safetensors'), join(omits, SHARD2)]); // both still named by the index
    } finally {
      await c.close();
    }
    const s = await inspectCheckpoint(omits, { trustIndex: true });
    expect(s.tensors).toBe(20);
    const out = join(tmp, 'trusted');
    const r = await quantizeCheckpoint(omits, out, { format: 'nf4', trustIndex: true });
    expect(r.layers).toBe(13);
    const written = parseSafetensors(readFileSync(join(out, 'model.safetensors'))).tensors;
    expect(Object.keys(written).some((n) => n.startsWith(OMITTED))).toBe(false);
    rmSync(out, { recursive: true });
  });

  it('a tensor that two shards hold: E_ST_INDEX; with trustIndex the copy the index names', async () => {
    expect(await rejection(() => openCheckpoint(twice))).toMatchObject({ code: 'E_ST_INDEX', message: expect.stringMatching(TWICE) });
    const c = await openCheckpoint(twice, { trustIndex: true });
    try {
      expect(c.names().filter((n) => n === DUPLICATE)).toHaveLength(1);
      expect(c.names()).toHaveLength(21);
    } finally {
      await c.close();
    }
  });

  it('trustIndex must be a boolean', async () => {
    for (const bad of ['yes', 1, null]) {
      expect(await rejection(() => openCheckpoint(omits, { trustIndex: bad as unknown as boolean }))).toMatchObject({
        code: 'E_ARGUMENT',
        message: expect.stringMatching(/^trustIndex = .* is not accepted: expected true, false or undefined$/),
      });
    }
    expect(
      (await rejection(() => quantizeCheckpoint(omits, join(tmp, 'q2'), { format: 'nf4', trustIndex: 'yes' as unknown as boolean }))).code,
    ).toBe('E_ARGUMENT');
    expect(existsSync(join(tmp, 'q2'))).toBe(false);
  });
});

describe('an empty weight_map', () => {
  it('is E_ST_INDEX saying so; with trustIndex an empty checkpoint', async () => {
    const before = snapshot(empty);
    expect(await rejection(() => openCheckpoint(empty))).toMatchObject({ code: 'E_ST_INDEX', message: expect.stringMatching(EMPTY) });
    expect(await rejection(() => dequantizeCheckpoint(empty, join(tmp, 'e'), { allowEmpty: true }))).toMatchObject({
      code: 'E_ST_INDEX',
      message: expect.stringMatching(EMPTY),
    });
    expect(existsSync(join(tmp, 'e'))).toBe(false);
    const c = await openCheckpoint(empty, { trustIndex: true });
    try {
      expect(c.names()).toEqual([]);
      expect(c.files).toEqual([]);
    } finally {
      await c.close();
    }
    expect(snapshot(empty)).toEqual(before);
  });
});

describe('the CLI', () => {
  const bnbjs = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

  it('exit 1 with E_ST_INDEX; --trust-index reads what the index lists', () => {
    const before = snapshot(omits);
    const r = bnbjs('inspect', omits);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^bnbjs: ${OMITS.source.slice(1)}.* \\[E_ST_INDEX\\]\\n$`));
    const q = bnbjs('quantize', omits, join(tmp, 'cli-q'), '--format', 'nf4');
    expect(q.status).toBe(1);
    expect(q.stderr).toMatch(/\[E_ST_INDEX\]\n$/);
    expect(existsSync(join(tmp, 'cli-q'))).toBe(false);
    expect(bnbjs('inspect', empty).stderr).toMatch(/weight_map is empty.*\[E_ST_INDEX\]/);

    const t = bnbjs('inspect', omits, '--trust-index', '--json');
    expect(t.status, t.stderr).toBe(0);
    expect(JSON.parse(t.stdout).tensors).toBe(20);
    const tq = bnbjs('quantize', omits, join(tmp, 'cli-t'), '--format', 'nf4', '--trust-index', '--json');
    expect(tq.status, tq.stderr).toBe(0);
    expect(JSON.parse(tq.stdout).layers).toBe(13);
    const td = bnbjs('dequantize', join(tmp, 'cli-t'), join(tmp, 'cli-d'), '--trust-index', '--json');
    expect(td.status, td.stderr).toBe(0);
    expect(JSON.parse(td.stdout).layers).toBe(13);
    expect(bnbjs('inspect', empty, '--trust-index', '--json').status).toBe(0);
    expect(bnbjs('help').stdout).toMatch(/--trust-index reads only the tensors a sharded\ncheckpoint's index lists/);
    expect(snapshot(omits)).toEqual(before);
  });
});
