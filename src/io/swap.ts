// Replacing an existing output folder so that its path holds a complete old or new
// output at every moment, crashes included. Node has no renameat2(RENAME_EXCHANGE), so
// the swap takes two renames: the old output to `.NAME.bnbjs-HOST-PID-ID.old`, then
// the new one (`...-ID.tmp`) into place. The aside name is the journal: it says whose
// old output it is (the output NAME in the same folder) and who moved it (owner lock
// ID). Both renames run synchronously, back to back, so no signal handler of this
// process runs between them; a crash between them is finished by recoverOutput, which
// every run writing or opening that output calls first.
import { existsSync, lstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BnbError, show } from '../errors.js';
import { host, ownerState } from './lock.js';
import { asideName, parseTemporary, removeDeadLocks, removeStaleTemporaries } from './temp.js';

const code = (e: unknown) => (e as { code?: string }).code;
/** What rename(2) says when the destination is taken. */
const occupied = (e: unknown) => code(e) === 'EEXIST' || code(e) === 'ENOTEMPTY' || code(e) === 'EISDIR' || code(e) === 'ENOTDIR';

function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (e) {
    if (code(e) === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Test only, never set in use: BNBJS_TEST_SWAP_PAUSE names a file that is created here,
 * between the two renames, and waited on (synchronously, as the renames are, for at
 * most a minute) until something removes it, so that tests can kill the process there.
 */
function testPause(): void {
  const marker = process.env.BNBJS_TEST_SWAP_PAUSE;
  if (!marker) return;
  writeFileSync(marker, String(process.pid));
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 6000 && existsSync(marker); i++) Atomics.wait(cell, 0, 0, 10);
}

/**
 * Moves the finished temporary `tmp` to `output`. An existing output is replaced only
 * with `force`: it is moved aside first, and its aside path is returned for the caller
 * to remove (null where nothing was replaced). Throws E_EXISTS where another writer's
 * output took the path meanwhile; other errors are the system's, `output` unchanged.
 */
export function swapIntoPlace(tmp: string, output: string, force: boolean): string | null {
  const taken = () =>
    new BnbError(
      'E_EXISTS',
      `output = ${show(output)} appeared while converting${force ? ' (another conversion wrote it at the same time)' : ': pass force (--force) to replace it'}`,
    );
  const place = () => {
    try {
      renameSync(tmp, output);
    } catch (e) {
      throw occupied(e) ? taken() : e;
    }
    return null;
  };
  if (!present(output)) return place();
  if (!force) throw taken();
  const old = asideName(tmp);
  try {
    renameSync(output, old);
  } catch (e) {
    if (code(e) === 'ENOENT') return place(); // another process moved it away meanwhile
    throw e;
  }
  testPause();
  try {
    renameSync(tmp, output);
  } catch (e) {
    try {
      renameSync(old, output);
    } catch (again) {
      // taken by another writer's complete output: the old one is no longer needed
      if (occupied(again) && present(output)) rmSync(old, { recursive: true, force: true });
      // else the file system failed twice: recoverOutput restores it once this process is gone
    }
    throw occupied(e) ? taken() : e;
  }
  return old;
}

/**
 * Finishes the swaps that runs died in: an old output moved aside comes back where the
 * output path is empty, and is removed where a complete output took the path and its
 * mover is provably dead. Swaps of live runs of this host are left to them. Then
 * removes the stale temporaries of `path`. Errors are the system's.
 */
export async function recoverOutput(path: string): Promise<void> {
  const dir = dirname(path);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const me = host(),
    dead = new Set<string>();
  for (const n of names) {
    const t = parseTemporary(path, n);
    if (t === null || t.kind !== 'old') continue;
    // another host's lock cannot be asked; one without a lock cannot be proven dead
    const state = t.host !== me || t.id.startsWith('x') ? 'unknown' : await ownerState(dir, t.id);
    if (state === 'alive') continue;
    if (state === 'dead') dead.add(t.id);
    const old = join(dir, n);
    if (!present(path)) {
      try {
        renameSync(old, path);
        continue;
      } catch (e) {
        if (code(e) === 'ENOENT') continue; // another run put it back meanwhile
        if (!occupied(e)) throw e;
      }
    }
    if (state === 'dead') rmSync(old, { recursive: true, force: true });
  }
  await removeDeadLocks(dir, dead);
  await removeStaleTemporaries(path);
}
