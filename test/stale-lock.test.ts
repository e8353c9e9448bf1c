// Which hidden temporaries a run may remove is decided by the owner's lock (a listening
// Unix socket the kernel closes when its process dies), never by the PID in the name:
// a PID means nothing across PID namespaces sharing a host name. A live writer in
// another process keeps its temporary even where its name carries the PID of no
// running process; once that writer is SIGKILLed the next cleanup removes it. Where
// this machine allows a new PID namespace (root, unshare), the writer runs in one.
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeStaleTemporaries } from '../src/io/temp.js';
import { recoverOutput } from '../src/io/swap.js';

const dir = mkdtempSync(join(tmpdir(), 'bnbjs-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const host = hostname()
  .replace(/[^A-Za-z0-9_-]/g, '_')
  .slice(0, 32);

// A writer in its own process (the built package, as the CLI runs it): takes a temporary
// of argv[2] with its lock, renames it to carry the PID argv[3] if given, writes it,
// prints its path and lives until its stdin closes.
const writer = join(dir, 'writer.mjs');
writeFileSync(
  writer,
  `
import { renameSync, writeFileSync } from 'node:fs';
import { newTemporary } from ${JSON.stringify(new URL('../dist/io/temp.js', import.meta.url).href)};
const [out, pid] = process.argv.slice(2);
const tmp = await newTemporary(out);
const named = pid ? tmp.replace(/-\\d+-([0-9a-f]{16})\\.tmp$/, \`-\${pid}-$1.tmp\`) : tmp;
writeFileSync(named, 'being written by ' + process.pid);
process.stdout.write(named + '\\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`,
);

/** The pid of a process that has exited. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
}

/** Starts `command` (which runs writer.mjs) and resolves with the temporary it printed. */
async function start(command: string[]): Promise<{ child: ChildProcess; tmp: string; exited: Promise<unknown> }> {
  const child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', r));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the writer exited (${code}) before printing its temporary`)));
  });
  return { child, tmp: out.trim(), exited };
}

const lockOf = (tmp: string) => join(dir, `.bnbjs-${host}-${/-([0-9a-f]{16})\.tmp$/.exec(tmp)![1]}.lock`);

/** Kept while its owner lives (whatever its name says), removed with its lock once the owner is SIGKILLed at `kill`. */
async function expectLockDecides(
  out: string,
  w: { child: ChildProcess; tmp: string; exited: Promise<unknown> },
  kill: () => void,
): Promise<void> {
  expect(readFileSync(w.tmp, 'utf8')).toMatch(/^being written by \d+$/);
  expect(lstatSync(lockOf(w.tmp)).isSocket()).toBe(true);
  expect(await removeStaleTemporaries(out)).toEqual([]);
  await recoverOutput(out);
  expect(existsSync(w.tmp)).toBe(true);
  kill();
  await w.exited;
  expect(existsSync(lockOf(w.tmp)), 'a SIGKILLed owner cannot remove its socket').toBe(true);
  expect(await removeStaleTemporaries(out)).toEqual([w.tmp]);
  expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]); // temporary and lock gone
}

describe('stale temporaries are told by their owner lock, not their PID', () => {
  it("a live writer's temporary named with the PID of no running process is kept; SIGKILLed, it is removed", async () => {
    const out = join(dir, 'faked.safetensors');
    const pid = deadPid();
    const w = await start([process.execPath, writer, out, String(pid)]);
    expect(w.tmp).toMatch(new RegExp(`^${dir}/\\.faked\\.safetensors\\.bnbjs-${host}-${pid}-[0-9a-f]{16}\\.tmp$`));
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' })); // the old PID test said: dead
    await expectLockDecides(out, w, () => w.child.kill('SIGKILL'));
  });

  it('a writer that exits without removing its temporary leaves no lock: the temporary is removed', async () => {
    const out = join(dir, 'exited.safetensors');
    const w = await start([process.execPath, writer, out]);
    w.child.stdin!.end();
    await w.exited;
    expect(existsSync(lockOf(w.tmp))).toBe(false);
    expect(await removeStaleTemporaries(out)).toEqual([w.tmp]);
  });

  const linux = process.platform === 'linux';
  if (!linux) console.log('skipped: locks in folders too long for a socket address use /proc/self/fd (Linux)');
  it.skipIf(!linux)(
    'in a folder whose path is too long for a socket address (108 bytes) the lock is reached through /proc/self/fd, and decides the same',
    async () => {
      const deep = join(dir, 'd'.repeat(60), 'e'.repeat(60));
      mkdirSync(deep, { recursive: true });
      const out = join(deep, 'deep.safetensors');
      const w = await start([process.execPath, writer, out, String(deadPid())]);
      const lock = join(deep, `.bnbjs-${host}-${/-([0-9a-f]{16})\.tmp$/.exec(w.tmp)![1]}.lock`);
      expect(Buffer.byteLength(lock)).toBeGreaterThan(108);
      expect(lstatSync(lock).isSocket()).toBe(true);
      expect(await removeStaleTemporaries(out)).toEqual([]);
      w.child.kill('SIGKILL');
      await w.exited;
      expect(await removeStaleTemporaries(out)).toEqual([w.tmp]);
      expect(readdirSync(deep)).toEqual([]);
    },
  );

  const ns = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { encoding: 'utf8' });
  const noNamespace =
    ns.status !== 0 ? `unshare --pid --fork --mount-proc is not allowed here (${ns.error?.message ?? ns.stderr.trim()})` : null;
  if (noNamespace) console.log(`skipped: the writer in another PID namespace: ${noNamespace}`);
  it.skipIf(noNamespace !== null)('a writer in another PID namespace (same host name) keeps its temporary while it lives', async () => {
    const out = join(dir, 'namespace.safetensors');
    const w = await start(['unshare', '--pid', '--fork', '--mount-proc', process.execPath, writer, out]);
    const inner = Number(/-(\d+)-[0-9a-f]{16}\.tmp$/.exec(w.tmp)![1]);
    // unshare's forked child is the writer: its PID here, not the one in its name
    const outer = Number(readFileSync(`/proc/${w.child.pid}/task/${w.child.pid}/children`, 'utf8').trim());
    expect(inner).not.toBe(outer);
    expect(readFileSync(w.tmp, 'utf8')).toBe(`being written by ${inner}`);
    await expectLockDecides(out, w, () => process.kill(outer, 'SIGKILL'));
  });
});
