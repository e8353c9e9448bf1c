// Owner locks: how a run proves that the writer of a hidden temporary is still alive.
// A process id proves nothing (another PID namespace with the same host name can reuse
// it), so each writer holds a listening Unix domain socket `.bnbjs-HOST-ID.lock` in the
// folder of its temporary. The kernel stops accepting connections the moment the owner
// dies, however it dies: a connection means alive, ECONNREFUSED (or no socket) dead.
// Node has no flock(); on Windows a named pipe would play this part (not done: the
// target is Linux and macOS, and there a lock that cannot be made is simply absent,
// which makes its temporaries undeletable by others, never deletable by mistake).
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { connect, createServer, Server } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

/** The host name as it appears in temporary names: [A-Za-z0-9_-], at most 32 characters. */
export function host(): string {
  return (
    hostname()
      .replace(/[^A-Za-z0-9_-]/g, '_')
      .slice(0, 32) || 'host'
  );
}

/** Lock ids: 16 hexadecimal digits. An id of a temporary without a lock starts with 'x'. */
export const LOCK_ID = '[0-9a-f]{16}';

const randomId = () => randomBytes(8).toString('hex');

export const lockName = (id: string) => `.bnbjs-${host()}-${id}.lock`;

// sun_path holds 108 bytes on Linux and 104 on macOS, and libuv silently truncates a
// longer path (binding a different file). Keep well under both.
const MAX_SOCKET_PATH = 100;

/**
 * A path to the socket `name` in `dir` short enough for bind/connect: the path itself,
 * or on Linux the folder reached through an open descriptor (/proc/self/fd/N/name).
 * null where neither fits. `close` releases the descriptor.
 */
function socketPath(dir: string, name: string): { path: string; close: () => void } | null {
  const direct = join(dir, name);
  if (Buffer.byteLength(direct) <= MAX_SOCKET_PATH) return { path: direct, close: () => {} };
  if (process.platform !== 'linux') return null;
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return null;
  }
  const path = `/proc/self/fd/${fd}/${name}`;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    closeSync(fd);
    return null;
  }
  return { path, close: () => closeSync(fd) };
}

export type OwnerState = 'alive' | 'dead' | 'unknown';

/** Whether the owner of lock `id` in `dir` runs: 'unknown' where that cannot be told (keep). */
export function ownerState(dir: string, id: string): Promise<OwnerState> {
  const at = socketPath(dir, lockName(id));
  if (at === null) return Promise.resolve('unknown');
  return new Promise((resolve) => {
    const done = (state: OwnerState) => {
      clearTimeout(timer);
      socket.destroy();
      at.close();
      resolve(state);
    };
    const socket = connect(at.path);
    // a Unix socket answers at once; a full backlog or a stuck file system is not a death
    const timer = setTimeout(() => done('unknown'), 5000);
    socket.once('connect', () => done('alive'));
    socket.once('error', (e) => {
      const code = (e as { code?: string }).code;
      done(code === 'ECONNREFUSED' || code === 'ENOENT' ? 'dead' : 'unknown');
    });
  });
}

/** A lock this process holds; release() closes it and removes its socket file. */
export interface OwnerLock {
  readonly id: string;
  release(): void;
}

const held = new Map<string, { server: Server; file: string; close: () => void }>();

function releaseSync(id: string): void {
  const h = held.get(id);
  if (h === undefined) return;
  held.delete(id);
  try {
    unlinkSync(h.file);
  } catch {
    // already gone (its folder removed, or renamed away)
  }
  h.server.close();
  h.close();
}

/** Releases every lock of this process (signal handlers, exit). */
export function releaseLocksSync(): void {
  for (const id of [...held.keys()]) releaseSync(id);
}

let exitHook = false;

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Takes a new lock in `dir`, or null where none can be made there (a file system without
 * sockets, a path too long for one): the caller's temporary then carries an 'x' id, and
 * other runs never remove it.
 */
export async function acquireLock(dir: string): Promise<OwnerLock | null> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const id = randomId(),
      name = lockName(id);
    const at = socketPath(dir, name);
    if (at === null) return null;
    const server = createServer((c) => c.destroy());
    server.on('error', () => {}); // after listening, errors concern single connections
    try {
      await listen(server, at.path);
    } catch {
      at.close();
      return null;
    }
    server.unref(); // a lock never keeps the process alive
    held.set(id, { server, file: resolve(dir, name), close: at.close });
    if (!exitHook) {
      exitHook = true;
      process.once('exit', releaseLocksSync);
    }
    // used only once other runs, asking as ownerState does, find it alive
    if ((await ownerState(dir, id)) === 'alive') return { id, release: () => releaseSync(id) };
    releaseSync(id);
  }
  return null;
}

/** Removes the socket file of a lock whose owner is dead (see ownerState). */
export function removeDeadLock(dir: string, id: string): void {
  try {
    unlinkSync(join(dir, lockName(id)));
  } catch {
    // gone already
  }
}
