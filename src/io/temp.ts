// Temporary outputs. Every file or folder bnbjs writes is built under a hidden name
// beside its final path and renamed into place when complete, so the final path only
// ever holds a finished output. A process killed with SIGKILL (or a power cut) can
// leave its temporary behind; the next run for the same output removes the leftovers
// whose owner is provably dead: each temporary names an owner lock (src/io/lock.ts)
// that the kernel releases when its process dies. Process ids are in the name for
// people reading a listing, never for deciding.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LOCK_ID, OwnerLock, acquireLock, host, ownerState, releaseLocksSync, removeDeadLock } from './lock.js';

/** Paths this process removes if interrupted (see removeTemporariesSync). */
const live = new Set<string>();
/** The lock of each temporary this process writes. */
const locks = new Map<string, OwnerLock>();

/**
 * A new temporary `.NAME.bnbjs-HOST-PID-ID.tmp` in the folder of `path` (which must
 * exist), tracked, with the owner lock ID held until dropTemporary. Where no lock can
 * be made the id starts with 'x' and no other run ever removes the temporary.
 */
export async function newTemporary(path: string): Promise<string> {
  const lock = await acquireLock(dirname(path));
  const id = lock?.id ?? `x${randomBytes(8).toString('hex').slice(1)}`;
  const tmp = join(dirname(path), `.${basename(path)}.bnbjs-${host()}-${process.pid}-${id}.tmp`);
  if (lock !== null) locks.set(tmp, lock);
  live.add(tmp);
  return tmp;
}

/** Forgets a temporary that was renamed into place or removed, and releases its lock. */
export function dropTemporary(tmp: string): void {
  live.delete(tmp);
  locks.get(tmp)?.release();
  locks.delete(tmp);
}

/** Where an output replaced by the temporary `tmp` waits until it is removed: same name, `.old`. */
export const asideName = (tmp: string) => tmp.replace(/\.tmp$/, '.old');

export interface TemporaryName {
  host: string;
  pid: number;
  /** The owner lock's id; one starting with 'x' has no lock. */
  id: string;
  /** A temporary being written, or a replaced output moved aside (src/io/swap.ts). */
  kind: 'tmp' | 'old';
}

/** What the name `name` in the folder of `path` says about it, if it is one of `path`'s. */
export function parseTemporary(path: string, name: string): TemporaryName | null {
  const escaped = basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^\\.${escaped}\\.bnbjs-([A-Za-z0-9_-]+)-(\\d+)-(${LOCK_ID}|x[0-9a-f]{15})\\.(tmp|old)$`).exec(name);
  return m === null ? null : { host: m[1]!, pid: Number(m[2]), id: m[3]!, kind: m[4] as 'tmp' | 'old' };
}

/** Removes the socket files of dead locks that no entry of `dir` names any more. */
export async function removeDeadLocks(dir: string, ids: Iterable<string>): Promise<void> {
  const left = await readdir(dir).catch(() => null);
  if (left === null) return;
  for (const id of ids) {
    if (!left.some((n) => n.includes(`-${id}.`) && !n.endsWith('.lock'))) removeDeadLock(dir, id);
  }
}

/**
 * Removes temporaries of `path` whose owner is dead: of this host (a lock on a shared
 * file system cannot be asked from another host), with a lock that refuses connections
 * or is gone. Live owners, other hosts and temporaries without a lock are kept.
 */
export async function removeStaleTemporaries(path: string): Promise<string[]> {
  const dir = dirname(path);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const me = host(),
    removed: string[] = [],
    dead = new Set<string>();
  for (const n of names) {
    const t = parseTemporary(path, n);
    if (t === null || t.kind !== 'tmp' || t.host !== me || t.id.startsWith('x')) continue;
    if ((await ownerState(dir, t.id)) !== 'dead') continue;
    const p = join(dir, n);
    await rm(p, { recursive: true, force: true }).catch(() => {});
    removed.push(p);
    dead.add(t.id);
  }
  await removeDeadLocks(dir, dead);
  return removed;
}

/** Marks a path as this process's, to be removed if it is interrupted. */
export function trackTemporary(path: string): void {
  live.add(path);
}

export function untrackTemporary(path: string): void {
  live.delete(path);
}

/** Removes this process's temporaries and releases its locks now (synchronous: for signal handlers). */
export function removeTemporariesSync(): void {
  for (const p of live) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // best effort: the process is going away
    }
  }
  live.clear();
  locks.clear();
  releaseLocksSync();
}
