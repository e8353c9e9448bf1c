// What is not a regular file where a file is expected: a FIFO (whose open() and read()
// would block forever, and the CLI then ignored SIGTERM) or a character device such as
// /dev/zero (which never ends, and says size 0), as model.safetensors, config.json, a
// shard an index names, the index itself, a companion file, or a symbolic link to one.
// Each is E_IO naming the path and what it is, and the input stays as it was. The
// library calls run in a child process (the built dist/) so that a regression that
// blocks fails here as a child killed by the guard, rather than hanging the test run.
// Also: E_IO messages of reads name the path and the system's reason.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyModel, fifoSupport, mkfifo, shardedModel, snapshot } from './helpers/folders.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const lib = new URL('../dist/node.js', import.meta.url).href;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-special-'));
chmodSync(tmp, 0o755); // the EACCES cases run as another user
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A guard, not a timing: a call that blocks is killed after this long and fails its test. */
const GUARD_MS = 60_000;

type Outcome = { code: string | null; message: string };

/**
 * Runs `call`, an expression over bnbjs/node's exports as `b` (awaited; a reader it
 * returns is closed), in a child Node process: its BnbError's code and message, or
 * code null. A child that blocks is killed by the guard and fails the test.
 */
function inChild(call: string, uid?: number): Outcome {
  const script = `import * as b from ${JSON.stringify(lib)};
try {
  const r = await (${call});
  if (typeof r?.close === 'function') await r.close();
  console.log(JSON.stringify({ code: null, message: 'ok' }));
} catch (e) {
  console.log(JSON.stringify({ code: e?.name === 'BnbError' ? e.code : 'not a BnbError: ' + e?.name, message: String(e?.message) }));
}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: GUARD_MS,
    killSignal: 'SIGKILL',
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  expect(r.signal, `${call} was still running after ${GUARD_MS / 1000} s: it blocked`).toBeNull();
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Outcome;
}

const q = (s: string) => JSON.stringify(s);

function bnbjs(args: string[], uid?: number) {
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: GUARD_MS,
    killSignal: 'SIGKILL',
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  expect(r.signal, `bnbjs ${args.join(' ')} was still running after ${GUARD_MS / 1000} s: it blocked`).toBeNull();
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** E_IO `cannot read PATH: not a regular file (WHAT)`. */
function expectRefused(o: Outcome, path: string, what: string): void {
  expect(o).toEqual({ code: 'E_IO', message: `cannot read ${path}: not a regular file (${what})` });
}

/** Hidden temporaries left in `where`. */
const temporaries = (where: string) => readdirSync(where).filter((f) => f.includes('.bnbjs-') && f.endsWith('.tmp'));

const noFifo = fifoSupport(join(tmp, 'probe.fifo'));
if (noFifo) console.log(`special-files: FIFO tests skipped (${noFifo})`);

describe.skipIf(noFifo !== null)('a FIFO where a file is expected', () => {
  const base = join(tmp, 'fifo');
  mkdirSync(base, { recursive: true });

  it('as model.safetensors: every reader refuses it (E_IO), nothing is written, the folder is unchanged', () => {
    const m = copyModel('tiny-llama-bf16', join(base, 'weights'));
    rmSync(join(m, 'model.safetensors'));
    expect(mkfifo(join(m, 'model.safetensors'))).toBeNull();
    const before = snapshot(m);
    const file = join(m, 'model.safetensors');
    for (const call of [
      `b.openCheckpoint(${q(m)})`,
      `b.openSafetensors(${q(file)})`,
      `b.openCheckpoint(${q(file)})`,
      `b.readSafetensors(${q(file)})`,
      `b.inspectCheckpoint(${q(m)})`,
      `b.quantizeCheckpoint(${q(m)}, ${q(join(base, 'out1'))}, { format: 'nf4' })`,
      `b.dequantizeCheckpoint(${q(m)}, ${q(join(base, 'out2'))}, { allowEmpty: true })`,
    ]) {
      expectRefused(inChild(call), file, 'a FIFO');
    }
    expect(existsSync(join(base, 'out1')) || existsSync(join(base, 'out2'))).toBe(false);
    expect(temporaries(base)).toEqual([]);
    expect(snapshot(m)).toEqual(before);
  });

  it('as config.json: inspect and the conversions refuse it before reading weights', () => {
    const m = copyModel('tiny-llama-bf16', join(base, 'config'));
    rmSync(join(m, 'config.json'));
    expect(mkfifo(join(m, 'config.json'))).toBeNull();
    const before = snapshot(m);
    for (const call of [
      `b.inspectCheckpoint(${q(m)})`,
      `b.quantizeCheckpoint(${q(m)}, ${q(join(base, 'out3'))}, { format: 'nf4' })`,
      `b.dequantizeCheckpoint(${q(m)}, ${q(join(base, 'out4'))}, { allowEmpty: true })`,
    ]) {
      expectRefused(inChild(call), join(m, 'config.json'), 'a FIFO');
    }
    expect(inChild(`b.openCheckpoint(${q(m)})`).code).toBeNull(); // the weights alone do not need config.json
    expect(existsSync(join(base, 'out3')) || existsSync(join(base, 'out4'))).toBe(false);
    expect(snapshot(m)).toEqual(before);
  });

  it('as a shard the index names, and as the index itself', () => {
    const m = shardedModel('tiny-llama-bf16', join(base, 'sharded'), 2);
    const shard = join(m, 'model-00002-of-00002.safetensors');
    rmSync(shard);
    expect(mkfifo(shard)).toBeNull();
    const before = snapshot(m);
    for (const call of [
      `b.openCheckpoint(${q(m)})`,
      `b.openCheckpoint(${q(join(m, 'model.safetensors.index.json'))})`,
      `b.inspectCheckpoint(${q(m)})`,
      `b.quantizeCheckpoint(${q(m)}, ${q(join(base, 'out5'))}, { format: 'nf4' })`,
    ]) {
      expectRefused(inChild(call), shard, 'a FIFO');
    }
    expect(snapshot(m)).toEqual(before);

    const n = shardedModel('tiny-llama-bf16', join(base, 'index'), 2);
    const index = join(n, 'model.safetensors.index.json');
    rmSync(index);
    expect(mkfifo(index)).toBeNull();
    for (const call of [
      `b.openCheckpoint(${q(n)})`,
      `b.openCheckpoint(${q(index)})`,
      `b.quantizeCheckpoint(${q(n)}, ${q(join(base, 'out6'))}, { format: 'nf4' })`,
    ]) {
      expectRefused(inChild(call), index, 'a FIFO');
    }
    expect(existsSync(join(base, 'out5')) || existsSync(join(base, 'out6'))).toBe(false);
  });

  it('through a symbolic link: named by the link', () => {
    const m = copyModel('tiny-llama-bf16', join(base, 'linked'));
    expect(mkfifo(join(base, 'elsewhere.fifo'))).toBeNull();
    rmSync(join(m, 'model.safetensors'));
    symlinkSync(join('..', 'elsewhere.fifo'), join(m, 'model.safetensors'));
    const before = snapshot(m);
    for (const call of [
      `b.openCheckpoint(${q(m)})`,
      `b.openSafetensors(${q(join(m, 'model.safetensors'))})`,
      `b.quantizeCheckpoint(${q(m)}, ${q(join(base, 'out7'))}, { format: 'nf4' })`,
    ]) {
      expectRefused(inChild(call), join(m, 'model.safetensors'), 'a FIFO');
    }
    expect(existsSync(join(base, 'out7'))).toBe(false);
    expect(snapshot(m)).toEqual(before);
  });

  it('as a companion file (tokenizer.json): the conversion fails naming it and leaves nothing', () => {
    const m = copyModel('tiny-llama-bf16', join(base, 'companion'));
    expect(mkfifo(join(m, 'tokenizer.json'))).toBeNull();
    const before = snapshot(m);
    expectRefused(
      inChild(`b.quantizeCheckpoint(${q(m)}, ${q(join(base, 'out8'))}, { format: 'nf4' })`),
      join(m, 'tokenizer.json'),
      'a FIFO',
    );
    expect(existsSync(join(base, 'out8'))).toBe(false);
    expect(temporaries(base)).toEqual([]);
    expect(snapshot(m)).toEqual(before);
  });

  it('the CLI exits 1 with E_IO at once (inspect, quantize, --json)', () => {
    const m = join(base, 'weights');
    const file = join(m, 'model.safetensors');
    const r = bnbjs(['inspect', m]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`bnbjs: cannot read ${file}: not a regular file (a FIFO) [E_IO]\n`);
    const j = bnbjs(['quantize', m, join(base, 'cli-out'), '--format', 'nf4', '--json']);
    expect(j.status).toBe(1);
    expect(JSON.parse(j.stdout)).toEqual({ error: { code: 'E_IO', message: `cannot read ${file}: not a regular file (a FIFO)` } });
    expect(existsSync(join(base, 'cli-out'))).toBe(false);
    const c = bnbjs(['inspect', join(base, 'config')]);
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(
      new RegExp(`cannot read ${escape(join(base, 'config', 'config.json'))}: not a regular file \\(a FIFO\\) \\[E_IO\\]`),
    );
  });

  it('a FIFO as the output is never opened: exists without --force (exit 3), replaced with it', () => {
    const out = join(base, 'out.safetensors');
    expect(mkfifo(out)).toBeNull();
    const input = join(base, 'config', 'model.safetensors');
    const r = bnbjs(['quantize', input, out, '--format', 'nf4']);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/exists: pass force \(--force\) to replace it \[E_EXISTS\]/);
    expect(lstatSync(out).isFIFO()).toBe(true);
    const f = bnbjs(['quantize', input, out, '--format', 'nf4', '--force', '--json']);
    expect(f.status, f.stderr).toBe(0);
    expect(lstatSync(out).isFile()).toBe(true);
    expect(JSON.parse(bnbjs(['inspect', out, '--json']).stdout).layers).toHaveLength(14);
  });
});

const noZero = existsSync('/dev/zero') ? null : 'no /dev/zero on this platform';
if (noZero) console.log(`special-files: /dev/zero tests skipped (${noZero})`);

describe.skipIf(noZero !== null)('/dev/zero (a character device whose stat says size 0)', () => {
  const base = join(tmp, 'zero');
  mkdirSync(base, { recursive: true });

  it('linked as config.json, as the index, as model.safetensors, or given directly: E_IO, never read', () => {
    const c = copyModel('tiny-llama-bf16', join(base, 'config'));
    rmSync(join(c, 'config.json'));
    symlinkSync('/dev/zero', join(c, 'config.json'));
    for (const call of [`b.inspectCheckpoint(${q(c)})`, `b.quantizeCheckpoint(${q(c)}, ${q(join(base, 'out1'))}, { format: 'nf4' })`]) {
      expectRefused(inChild(call), join(c, 'config.json'), 'a character device');
    }

    const s = shardedModel('tiny-llama-bf16', join(base, 'index'), 2);
    const index = join(s, 'model.safetensors.index.json');
    rmSync(index);
    symlinkSync('/dev/zero', index);
    for (const call of [`b.openCheckpoint(${q(s)})`, `b.openCheckpoint(${q(index)})`, `b.inspectCheckpoint(${q(s)})`]) {
      expectRefused(inChild(call), index, 'a character device');
    }

    const w = copyModel('tiny-llama-bf16', join(base, 'weights'));
    rmSync(join(w, 'model.safetensors'));
    symlinkSync('/dev/zero', join(w, 'model.safetensors'));
    for (const call of [
      `b.openCheckpoint(${q(w)})`,
      `b.openSafetensors(${q(join(w, 'model.safetensors'))})`,
      `b.quantizeCheckpoint(${q(w)}, ${q(join(base, 'out2'))}, { format: 'nf4' })`,
    ]) {
      expectRefused(inChild(call), join(w, 'model.safetensors'), 'a character device');
    }

    for (const call of [`b.openSafetensors('/dev/zero')`, `b.openCheckpoint('/dev/zero')`, `b.readSafetensors('/dev/zero')`]) {
      expectRefused(inChild(call), '/dev/zero', 'a character device');
    }
    expect(existsSync(join(base, 'out1')) || existsSync(join(base, 'out2'))).toBe(false);
    const r = bnbjs(['inspect', c]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`bnbjs: cannot read ${join(c, 'config.json')}: not a regular file (a character device) [E_IO]\n`);
  });
});

describe("read errors are E_IO naming the path and the system's reason", () => {
  const base = join(tmp, 'reasons');
  mkdirSync(base, { recursive: true });

  it('a missing file, a folder where a file is expected, a link to nothing', () => {
    const missing = join(base, 'nope.safetensors');
    expect(inChild(`b.openSafetensors(${q(missing)})`)).toEqual({
      code: 'E_IO',
      message: `cannot read ${missing}: no such file or directory (ENOENT)`,
    });
    expect(inChild(`b.openCheckpoint(${q(missing)})`)).toEqual({
      code: 'E_IO',
      message: `cannot open ${missing}: no such file or directory (ENOENT)`,
    });
    expect(inChild(`b.quantizeCheckpoint(${q(missing)}, ${q(join(base, 'o'))}, { format: 'nf4' })`)).toEqual({
      code: 'E_IO',
      message: `input = ${q(missing)} does not exist: expected a .safetensors file or a model folder`,
    });
    expectRefused(inChild(`b.openSafetensors(${q(base)})`), base, 'a folder');

    // a config.json or a companion linked to nothing (an incomplete download) is an error, not "no config"
    const m = copyModel('tiny-llama-bf16', join(base, 'dangling'));
    rmSync(join(m, 'config.json'));
    symlinkSync(join('..', 'gone.json'), join(m, 'config.json'));
    const before = snapshot(m);
    for (const call of [`b.inspectCheckpoint(${q(m)})`, `b.quantizeCheckpoint(${q(m)}, ${q(join(base, 'o1'))}, { format: 'nf4' })`]) {
      expect(inChild(call)).toEqual({ code: 'E_IO', message: `cannot read ${join(m, 'config.json')}: no such file or directory (ENOENT)` });
    }
    const n = copyModel('tiny-llama-bf16', join(base, 'dangling-companion'));
    symlinkSync(join('..', 'gone.json'), join(n, 'tokenizer.json'));
    expect(inChild(`b.quantizeCheckpoint(${q(n)}, ${q(join(base, 'o2'))}, { format: 'nf4' })`)).toEqual({
      code: 'E_IO',
      message: `cannot read ${join(n, 'tokenizer.json')}: no such file or directory (ENOENT)`,
    });
    expect(existsSync(join(base, 'o1')) || existsSync(join(base, 'o2'))).toBe(false);
    expect(snapshot(m)).toEqual(before);
  });

  const root = process.getuid?.() === 0;
  const nobody = root ? 65534 : undefined; // root ignores file modes: run as nobody
  const noEacces = process.platform === 'win32' ? 'no POSIX file modes on Windows' : null;
  it.skipIf(noEacces !== null)(
    `EACCES: weights, config.json or a companion the user may not read${noEacces ? ` (skipped: ${noEacces})` : ''}`,
    () => {
      const outs = join(base, 'outs');
      mkdirSync(outs);
      chmodSync(outs, 0o777);
      for (const [name, command] of [
        ['model.safetensors', 'inspect'],
        ['config.json', 'inspect'],
        ['tokenizer.json', 'quantize'],
      ] as const) {
        const m = copyModel('tiny-llama-bf16', join(base, `locked-${name}`));
        chmodSync(m, 0o755);
        writeFileSync(join(m, 'tokenizer.json'), '{}');
        for (const f of readdirSync(m)) chmodSync(join(m, f), 0o644);
        chmodSync(join(m, name), 0o000);
        const out = join(outs, name);
        const args = command === 'inspect' ? ['inspect', m] : ['quantize', m, out, '--format', 'nf4'];
        const r = bnbjs(args, nobody);
        expect(r.status, r.stderr).toBe(1);
        // the input's file and the reason: never "cannot write output" for a file that could not be read
        expect(r.stderr).toBe(`bnbjs: cannot read ${join(m, name)}: permission denied (EACCES) [E_IO]\n`);
        expect(existsSync(out)).toBe(false);
        expect(temporaries(outs)).toEqual([]);
        chmodSync(join(m, name), 0o644);
        expect(readFileSync(join(m, name)).length).toBeGreaterThan(0);
      }
    },
  );
});
