// --force replacing an output folder: the path holds a complete old or new output at
// every moment, whatever signal arrives between the two renames of the swap (the CLI is
// paused there by the test-only BNBJS_TEST_SWAP_PAUSE), and after SIGKILL the next run
// puts the old output back, never deletes it. Conversions racing to one output, and
// outputs that cannot be renamed ('.', a mount point), end in E_EXISTS or E_IO naming
// the output, never E_INTERNAL. The input stays byte for byte what it was throughout.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { recoverOutput } from '../src/io/swap.js';
import { SHARED } from './helpers/golden.js';
import { rejection } from './helpers/util.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'bnbjs-swap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const input = join(dir, 'in');
mkdirSync(input);
for (const f of ['config.json', 'generation_config.json', 'model.safetensors'])
  copyFileSync(join(SHARED, 'models/tiny-llama-bf16', f), join(input, f));

/** Every file under `path` (or the file itself) with the SHA-256 of its bytes. */
function tree(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    if (lstatSync(p).isDirectory()) for (const f of readdirSync(p)) walk(join(p, f));
    else out[relative(path, p) || '.'] = createHash('sha256').update(readFileSync(p)).digest('hex');
  };
  walk(path);
  return out;
}
const inputTree = tree(input);

/** The hidden entries bnbjs leaves beside outputs: temporaries, old outputs, locks. */
const hidden = (where = dir) => readdirSync(where).filter((f) => /^\..*\.bnbjs-.*\.(tmp|old)$/.test(f) || /^\.bnbjs-.*\.lock$/.test(f));

function bnbjs(args: string[], cwd?: string) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd });
}

/** The layers' formats of a checkpoint the CLI can open (fails the test if it cannot). */
function formats(path: string): string[] {
  const r = bnbjs(['inspect', path, '--json']);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout).layers.map((l: { format: string }) => l.format);
}

/** A fresh old output: the input quantized to nf4, written without force. */
function oldOutput(name: string): { out: string; before: Record<string, string> } {
  const out = join(dir, name);
  rmSync(out, { recursive: true, force: true });
  const r = bnbjs(['quantize', input, out, '--format', 'nf4']);
  expect(r.status, r.stderr).toBe(0);
  return { out, before: tree(out) };
}

/**
 * Starts `quantize --format int8 --force` over `out` and resolves once it is paused
 * between the two renames of its swap (its marker file exists); removing the marker
 * lets it go on.
 */
async function pausedSwap(out: string): Promise<{
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  marker: string;
  stderr: () => string;
}> {
  const marker = join(dir, `pause-${Math.random().toString(36).slice(2)}`);
  const child = spawn(process.execPath, [cli, 'quantize', input, out, '--format', 'int8', '--force'], {
    env: { ...process.env, BNBJS_TEST_SWAP_PAUSE: marker },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  while (!existsSync(marker) && child.exitCode === null && child.signalCode === null) await new Promise((r) => setTimeout(r, 10));
  expect(existsSync(marker), `the conversion reached the swap: ${err}`).toBe(true);
  return { child, exited, marker, stderr: () => err };
}

/** Between the renames: no output, the old one aside under `.NAME.bnbjs-HOST-PID-ID.old`, byte for byte. */
function expectMidSwap(out: string, name: string, before: Record<string, string>): string {
  expect(existsSync(out)).toBe(false);
  const aside = readdirSync(dir).filter((f) => f.startsWith(`.${name}.bnbjs-`) && f.endsWith('.old'));
  expect(aside).toHaveLength(1);
  expect(aside[0]).toMatch(new RegExp(`^\\.${name}\\.bnbjs-[A-Za-z0-9_-]+-\\d+-[0-9a-f]{16}\\.old$`));
  expect(tree(join(dir, aside[0]!))).toEqual(before);
  return join(dir, aside[0]!);
}

describe('--force over an output folder, interrupted between the two renames of the swap', () => {
  for (const [signal, number] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    it(`${signal}: the swap completes before the exit (status ${128 + number}), the new output complete, nothing left`, async () => {
      const name = `caught-${signal}`;
      const { out, before } = oldOutput(name);
      const run = await pausedSwap(out);
      expectMidSwap(out, name, before);
      run.child.kill(signal);
      rmSync(run.marker);
      const r = await run.exited;
      expect(r.code, run.stderr()).toBe(128 + number);
      const f = formats(out);
      expect(f.length).toBeGreaterThan(0);
      expect(f.every((x) => x === 'int8')).toBe(true);
      expect(hidden()).toEqual([]);
      expect(tree(input)).toEqual(inputTree);
    });
  }

  it("a live swap is left alone by another run's recovery (its owner lock answers)", async () => {
    const name = 'live';
    const { out, before } = oldOutput(name);
    const run = await pausedSwap(out);
    const aside = expectMidSwap(out, name, before);
    await recoverOutput(out);
    expect(existsSync(out)).toBe(false);
    expect(tree(aside)).toEqual(before);
    rmSync(run.marker);
    expect((await run.exited).code, run.stderr()).toBe(0);
    expect(formats(out).every((f) => f === 'int8')).toBe(true);
    expect(hidden()).toEqual([]);
  });

  it('SIGKILL: the old output waits aside; the next conversion puts it back (so without --force it refuses, E_EXISTS), byte for byte', async () => {
    const name = 'killed';
    const { out, before } = oldOutput(name);
    const run = await pausedSwap(out);
    expectMidSwap(out, name, before);
    run.child.kill('SIGKILL');
    expect((await run.exited).signal).toBe('SIGKILL');
    rmSync(run.marker);
    expectMidSwap(out, name, before); // a dead process decides nothing: the old output is still there
    const again = bnbjs(['quantize', input, out, '--format', 'fp4', '--json']);
    expect(again.status, again.stderr).toBe(3);
    expect(JSON.parse(again.stdout).error).toMatchObject({
      code: 'E_EXISTS',
      message: expect.stringContaining(`output = ${JSON.stringify(out)} exists`),
    });
    expect(tree(out)).toEqual(before);
    expect(hidden()).toEqual([]); // the dead run's new folder and lock are gone too
    const forced = bnbjs(['quantize', input, out, '--format', 'fp4', '--force']);
    expect(forced.status, forced.stderr).toBe(0);
    expect(formats(out).every((f) => f === 'fp4')).toBe(true);
    expect(hidden()).toEqual([]);
    expect(tree(input)).toEqual(inputTree);
  });

  it('SIGKILL: opening the output (inspect) puts the old output back too', async () => {
    const name = 'killed-inspect';
    const { out, before } = oldOutput(name);
    const run = await pausedSwap(out);
    run.child.kill('SIGKILL');
    await run.exited;
    rmSync(run.marker);
    expectMidSwap(out, name, before);
    expect(formats(out).every((f) => f === 'nf4')).toBe(true);
    expect(tree(out)).toEqual(before);
    expect(hidden()).toEqual([]);
  });

  it('SIGKILL after the second rename: the recovery removes the old output and keeps the new one', async () => {
    const name = 'killed-late';
    const { out, before } = oldOutput(name);
    const run = await pausedSwap(out);
    run.child.kill('SIGKILL');
    await run.exited;
    rmSync(run.marker);
    const aside = expectMidSwap(out, name, before);
    // the state one rename later: the dead run's finished folder in place
    const [fresh] = readdirSync(dir).filter((f) => f.startsWith(`.${name}.bnbjs-`) && f.endsWith('.tmp'));
    renameSync(join(dir, fresh!), out);
    const placed = tree(out);
    await recoverOutput(out);
    expect(existsSync(aside)).toBe(false);
    expect(tree(out)).toEqual(placed);
    expect(formats(out).every((f) => f === 'int8')).toBe(true);
    expect(hidden()).toEqual([]);
  });
});

describe('outputs that cannot be replaced, and conversions racing to one output', () => {
  it('two conversions in one process to a new output: one writes it, the other is E_EXISTS naming it', async () => {
    const out = join(dir, 'race');
    const r = await Promise.allSettled([
      quantizeCheckpoint(input, out, { format: 'nf4' }),
      quantizeCheckpoint(input, out, { format: 'fp4' }),
    ]);
    const failed = r.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toMatchObject({
      code: 'E_EXISTS',
      message: `output = ${JSON.stringify(out)} appeared while converting: pass force (--force) to replace it`,
    });
    const f = formats(out); // the winner's, complete
    expect(f.length).toBeGreaterThan(0);
    expect(f.every((x) => x === (r[0]!.status === 'fulfilled' ? 'nf4' : 'fp4'))).toBe(true);
    expect(hidden()).toEqual([]);
  });

  it("another process writes the output while a swap is paused between its renames: the paused one ends E_EXISTS, the other's output stays, nothing left", async () => {
    const name = 'race-processes';
    const { out, before } = oldOutput(name);
    const run = await pausedSwap(out);
    expectMidSwap(out, name, before);
    const other = bnbjs(['quantize', input, out, '--format', 'fp4', '--force']);
    expect(other.status, other.stderr).toBe(0);
    const placed = tree(out);
    rmSync(run.marker);
    expect((await run.exited).code).toBe(3);
    expect(run.stderr()).toBe(
      `bnbjs: output = ${JSON.stringify(out)} appeared while converting (another conversion wrote it at the same time) [E_EXISTS]\n`,
    );
    expect(tree(out)).toEqual(placed);
    expect(formats(out).every((f) => f === 'fp4')).toBe(true);
    expect(hidden()).toEqual([]);
    expect(tree(input)).toEqual(inputTree);
  });

  it('three conversions in one process with force over one output: each replaces it in turn, nothing left', async () => {
    const { out } = oldOutput('race-force');
    const r = await Promise.allSettled(
      ['nf4', 'fp4', 'int8'].map((format) => quantizeCheckpoint(input, out, { format: format as 'nf4', force: true })),
    );
    expect(r.map((x) => x.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(new Set(formats(out)).size).toBe(1);
    expect(hidden()).toEqual([]);
    expect(tree(input)).toEqual(inputTree);
  });

  it("output '.' (EBUSY to rename): E_IO naming it and why, the folder unchanged; without --force E_EXISTS", async () => {
    const work = join(dir, 'work');
    mkdirSync(work);
    writeFileSync(join(work, 'keep.txt'), 'mine');
    const forced = bnbjs(['quantize', input, '.', '--format', 'nf4', '--force'], work);
    expect(forced.status).toBe(1);
    expect(forced.stderr).toBe(
      `bnbjs: cannot write output = ".": a path ending in "." cannot be renamed or replaced (the system answers EBUSY): name the folder itself, as ${JSON.stringify(work)} [E_IO]\n`,
    );
    const plain = bnbjs(['quantize', input, '.', '--format', 'nf4'], work);
    expect(plain.status).toBe(3);
    expect(plain.stderr).toMatch(/^bnbjs: output = "\." exists: pass force \(--force\) to replace it \[E_EXISTS\]/);
    expect(await rejection(() => quantizeCheckpoint(input, `${work}/.`, { format: 'nf4', force: true }))).toMatchObject({
      code: 'E_IO',
      message: expect.stringContaining(`output = ${JSON.stringify(`${work}/.`)}: a path ending in "."`),
    });
    expect(readdirSync(work)).toEqual(['keep.txt']);
    expect(readFileSync(join(work, 'keep.txt'), 'utf8')).toBe('mine');
    expect(hidden(work)).toEqual([]);
    expect(tree(input)).toEqual(inputTree);
  });

  const root = process.getuid?.() === 0;
  if (!root) console.log('skipped: replacing a mount point needs root to mount a tmpfs');
  it.skipIf(!root)('an output that is a mount point (EBUSY to rename): E_IO naming it and the reason, its files unchanged', async () => {
    const mnt = join(dir, 'mounted');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt]);
    if (m.status !== 0) {
      console.log(`skipped: mount -t tmpfs failed: ${m.stderr}`);
      return;
    }
    try {
      writeFileSync(join(mnt, 'keep.txt'), 'mine');
      const r = bnbjs(['quantize', input, mnt, '--format', 'nf4', '--force', '--json']);
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout).error).toEqual({
        code: 'E_IO',
        message: `cannot write output = ${JSON.stringify(mnt)}: resource busy or locked (EBUSY)`,
      });
      expect(readdirSync(mnt)).toEqual(['keep.txt']);
      expect(hidden()).toEqual([]);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});
