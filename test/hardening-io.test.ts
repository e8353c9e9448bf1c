// Outputs on disk: temporaries whose owner lock is gone are removed, those of live
// owners (or of another host sharing the folder, or without a lock) are not; an output
// that appears while a writer runs is never replaced without force; config.json is
// size-limited and must be an object. (Locks held by other processes: stale-lock.test.ts.)
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeSafetensors, tensor } from '../src/index.js';
import { createSafetensorsWriter } from '../src/io/safetensors/file-sink.js';
import { dropTemporary, newTemporary, removeStaleTemporaries } from '../src/io/temp.js';
import { MAX_CONFIG_BYTES } from '../src/checkpoint/config.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { rejection } from './helpers/util.js';

const dir = mkdtempSync(join(tmpdir(), 'bnbjs-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

describe('temporaries', () => {
  const host = hostname()
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 32);
  const id = () => randomBytes(8).toString('hex');

  it('are named .NAME.bnbjs-HOST-PID-ID.tmp beside the output; ID names the owner lock .bnbjs-HOST-ID.lock, a socket held until dropped', async () => {
    const t = await newTemporary(join(dir, 'out.safetensors'));
    expect(t.startsWith(join(dir, '.out.safetensors.bnbjs-'))).toBe(true);
    const m = /-(\d+)-([0-9a-f]{16})\.tmp$/.exec(t);
    expect(Number(m?.[1])).toBe(process.pid);
    const lock = join(dir, `.bnbjs-${host}-${m![2]}.lock`);
    expect(lstatSync(lock).isSocket()).toBe(true);
    dropTemporary(t);
    expect(existsSync(lock)).toBe(false);
  });

  it("whose owner lock is gone are removed (whatever PID the name says); live, lock-less, legacy, other hosts' and other outputs' are kept", async () => {
    const out = join(dir, 'model.safetensors');
    const dead = join(dir, `.model.safetensors.bnbjs-${host}-${process.pid}-${id()}.tmp`); // our own PID: the lock decides
    const deadFolder = join(dir, `.model.safetensors.bnbjs-${host}-${deadPid()}-${id()}.tmp`);
    const mine = await newTemporary(out);
    const noLock = join(dir, `.model.safetensors.bnbjs-${host}-${deadPid()}-x${id().slice(1)}.tmp`);
    const legacy = join(dir, `.model.safetensors.bnbjs-${host}-${deadPid()}-abc123.tmp`);
    const otherHost = join(dir, `.model.safetensors.bnbjs-elsewhere-${deadPid()}-${id()}.tmp`);
    const otherOutput = join(dir, `.other.safetensors.bnbjs-${host}-${deadPid()}-${id()}.tmp`);
    const lookalike = join(dir, '.model.safetensors.tmp');
    for (const f of [dead, mine, noLock, legacy, otherHost, otherOutput, lookalike]) writeFileSync(f, 'x');
    mkdirSync(deadFolder);
    writeFileSync(join(deadFolder, 'model.safetensors'), 'x');
    const removed = await removeStaleTemporaries(out);
    expect(removed.sort()).toEqual([dead, deadFolder].sort());
    for (const f of [mine, noLock, legacy, otherHost, otherOutput, lookalike]) expect(existsSync(f), f).toBe(true);
    dropTemporary(mine);
  });
});

describe('no overwrite without force', () => {
  it('an output that appears while the writer runs is kept, and the temporary removed', async () => {
    const out = join(dir, 'race.safetensors');
    const w = await createSafetensorsWriter(out, [{ name: 'x', dtype: 'F32', shape: [2] }]);
    await w.write('x', tensor(new Float32Array([1, 2])));
    writeFileSync(out, 'someone else');
    expect(await rejection(() => w.finish())).toMatchObject({
      code: 'E_EXISTS',
      message: expect.stringMatching(/race\.safetensors.*exists: pass force: true/),
    });
    expect(readFileSync(out, 'utf8')).toBe('someone else');
    expect(readdirSync(dir).filter((f) => f.startsWith('.race.safetensors.'))).toEqual([]);
  });
});

describe('config.json', () => {
  const model = join(dir, 'model');
  mkdirSync(model, { recursive: true });
  writeFileSync(
    join(model, 'model.safetensors'),
    serializeSafetensors({ 'model.layers.0.mlp.up_proj.weight': tensor(new Float32Array(64 * 64).fill(0.5), [64, 64]) }),
  );

  it('larger than 16 MiB, or not an object: E_CKPT_FORMAT, and nothing is written', async () => {
    writeFileSync(join(model, 'config.json'), `{"a": "${'x'.repeat(MAX_CONFIG_BYTES)}"}`);
    expect(await rejection(() => quantizeCheckpoint(model, join(dir, 'q1'), { format: 'nf4' }))).toMatchObject({
      code: 'E_CKPT_FORMAT',
      message: expect.stringMatching(/config\.json has more than 16777216 bytes: expected a config\.json of at most 16777216/),
    });
    writeFileSync(join(model, 'config.json'), '[1, 2]');
    expect(await rejection(() => quantizeCheckpoint(model, join(dir, 'q2'), { format: 'nf4' }))).toMatchObject({
      code: 'E_CKPT_FORMAT',
      message: expect.stringMatching(/holds \[1,2\]: expected a JSON object/),
    });
    expect(existsSync(join(dir, 'q1')) || existsSync(join(dir, 'q2'))).toBe(false);
  });
});
