// Temporary outputs. Every file or folder bnbjs writes is built under a hidden name
// beside its final path and renamed into place when complete, so the final path only
// ever holds a finished output. A process killed with SIGKILL (or a power cut) can
// leave its temporary behind; the name carries the host and process id, so that the
// next run for the same output removes the leftovers of processes that are gone.
import { rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

const live = new Set<string>();

function host(): string {
  return hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32) || 'host';
}

function randomPart(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return c?.randomUUID?.().slice(0, 8) ?? Math.random().toString(36).slice(2, 10);
}

/** `.NAME.bnbjs-HOST-PID-RANDOM.tmp` in the folder of `path`. */
export function temporaryName(path: string): string {
  return join(dirname(path), `.${basename(path)}.bnbjs-${host()}-${process.pid}-${randomPart()}.tmp`);
}

function pattern(path: string): RegExp {
  const name = basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.${name}\\.bnbjs-([A-Za-z0-9_-]+)-(\\d+)-[0-9a-z]+\\.tmp$`);
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Removes temporaries of `path` left by processes of this host that no longer run. */
export async function removeStaleTemporaries(path: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return [];
  }
  const re = pattern(path), me = host(), removed: string[] = [];
  for (const n of names) {
    const m = re.exec(n);
    if (m === null || m[1] !== me || alive(Number(m[2]))) continue;
    const p = join(dirname(path), n);
    await rm(p, { recursive: true, force: true }).catch(() => {});
    removed.push(p);
  }
  return removed;
}

/** Marks a temporary as in use by this process (removed on SIGINT/SIGTERM by the CLI). */
export function trackTemporary(path: string): void {
  live.add(path);
}

export function untrackTemporary(path: string): void {
  live.delete(path);
}

/** Removes this process's temporaries now (synchronous: for signal handlers). */
export function removeTemporariesSync(): void {
  for (const p of live) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: the process is going away
    }
  }
  live.clear();
}
