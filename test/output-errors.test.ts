// Output I/O errors as a user should see them: E_IO naming the path they gave and the
// system's reason, exit 1, no stack trace, no hidden temporary left behind, at once
// (an output under /proc used to spin forever). Permission, read-only and full file
// systems are made for real: a read-only and a tiny tmpfs (root only), and the CLI run as
// an unprivileged user where the test runs as root (root ignores file modes).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SHARED } from './helpers/golden.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const input = `${SHARED}/models/tiny-llama-bf16`;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-outerr-'));
chmodSync(tmp, 0o755);
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) spawnSync('umount', [m]);
  rmSync(tmp, { recursive: true, force: true });
});

const root = process.getuid?.() === 0;

function bnbjs(args: string[], uid?: number) {
  const started = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  return { status: r.status, stderr: r.stderr, seconds: (performance.now() - started) / 1000 };
}

/** The CLI's refusal: exit 1 at once, E_IO naming `output` and the reason, no stack trace, nothing left in `where`. */
function expectIoError(r: ReturnType<typeof bnbjs>, output: string, reason: RegExp, where: string | null, before: string[] = []): void {
  expect(r.status, r.stderr).toBe(1);
  expect(r.seconds).toBeLessThan(15);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at |E_INTERNAL|please report/);
  expect(r.stderr).toMatch(
    new RegExp(
      `^bnbjs: cannot write output = ${JSON.stringify(output).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ${reason.source} \\[E_IO\\]`,
    ),
  );
  expect(r.stderr).not.toMatch(/\.bnbjs-.*\.tmp/);
  if (where !== null) expect(readdirSync(where).sort()).toEqual(before.sort());
}

/** A tmpfs at `dir` with mount options, or the reason it cannot be had here. */
function tmpfs(dir: string, options: string): string | null {
  mkdirSync(dir, { recursive: true });
  if (!root) return 'mounting a tmpfs needs root';
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return `mount -t tmpfs failed: ${r.stderr.trim() || r.error}`;
  mounts.push(dir);
  return null;
}

describe('output errors', () => {
  it('ENOTDIR: a parent of the output is a file', () => {
    writeFileSync(join(tmp, 'a-file'), 'x');
    const out = join(tmp, 'a-file', 'nf4');
    expectIoError(bnbjs(['quantize', input, out, '--format', 'nf4']), out, /(a-file is )?not a directory \(ENOTDIR\)/, null);
    expectIoError(
      bnbjs(['quantize', `${input}/model.safetensors`, join(out, 'x.safetensors'), '--format', 'nf4']),
      join(out, 'x.safetensors'),
      /not a directory \(ENOTDIR\)/,
      null,
    );
  });

  it("a dangling symbolic link as the output's folder", () => {
    symlinkSync(join(tmp, 'gone'), join(tmp, 'dangling'));
    const out = join(tmp, 'dangling', 'nf4');
    expectIoError(bnbjs(['quantize', input, out, '--format', 'nf4']), out, /dangling is a symbolic link to nothing \(ENOENT\)/, null);
  });

  it('/proc: fails at once instead of spinning', () => {
    for (const out of ['/proc/bnbjs-out', '/proc/bnbjs-a/b']) {
      expectIoError(bnbjs(['quantize', input, out, '--format', 'nf4']), out, /[a-z ]+ \((ENOENT|EACCES|EPERM)\)/, null);
    }
    expectIoError(
      bnbjs(['quantize', `${input}/model.safetensors`, '/proc/x.safetensors', '--format', 'nf4']),
      '/proc/x.safetensors',
      /[a-z ]+ \((ENOENT|EACCES|EPERM)\)/,
      null,
    );
  });

  it('EACCES: a folder the user may not write', () => {
    const locked = join(tmp, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    const uid = root ? 65534 : undefined; // nobody: root would ignore the mode
    for (const out of [join(locked, 'nf4'), join(locked, 'nf4.safetensors')]) {
      const src = out.endsWith('.safetensors') ? `${input}/model.safetensors` : input;
      expectIoError(bnbjs(['quantize', src, out, '--format', 'nf4'], uid), out, /permission denied \(EACCES\)/, locked);
    }
  });

  const ro = join(tmp, 'ro');
  const roReason = tmpfs(ro, 'ro,size=1m');
  it.skipIf(roReason !== null)(`EROFS: a read-only file system${roReason ? ` (skipped: ${roReason})` : ''}`, () => {
    const out = join(ro, 'nf4');
    expectIoError(bnbjs(['quantize', input, out, '--format', 'nf4']), out, /read-only file system \(EROFS\)/, ro);
  });

  const full = join(tmp, 'full');
  const fullReason = tmpfs(full, 'size=256k');
  it.skipIf(fullReason !== null)(
    `ENOSPC: the disk fills up mid-write, and what was written is removed${fullReason ? ` (skipped: ${fullReason})` : ''}`,
    () => {
      writeFileSync(join(full, 'kept.txt'), 'already here');
      for (const [src, out] of [
        [input, join(full, 'nf4')],
        [`${input}/model.safetensors`, join(full, 'nf4.safetensors')],
      ] as const) {
        expectIoError(bnbjs(['quantize', src, out, '--format', 'nf4']), out, /no space left on device \(ENOSPC\)/, full, ['kept.txt']);
      }
    },
  );
});
