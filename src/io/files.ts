// Files read whole (config.json, index files), opened for reading (safetensors files,
// companions) and written whole (config.json). Only a regular file is opened: a FIFO
// would block open() and read() forever in a libuv thread, which process.exit then
// waits for (the CLI would ignore SIGTERM), and a device (/dev/zero) never ends or acts
// when opened. What is read is limited by the bytes actually read, not by what stat
// claims (a link to /dev/zero says size 0).
import { Stats, constants } from 'node:fs';
import { lstat, open, realpath, stat, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { BnbError, BnbErrorCode, show } from '../errors.js';

/** Node's text for an OS error without the path it names: 'permission denied (EACCES)'. */
export function systemReason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const m = /^([A-Z][A-Z0-9_]+): ([^,]+)/.exec(message); // libuv's "CODE: description, syscall 'path'"
  return m ? `${m[2]} (${m[1]})` : message;
}

/** E_IO `cannot VERB PATH: the system's reason`, the OS error as its cause; BnbErrors pass unchanged. */
export function readError(e: unknown, path: string, verb = 'read'): BnbError {
  if (e instanceof BnbError) return e;
  const err = new BnbError('E_IO', `cannot ${verb} ${path}: ${systemReason(e)}`);
  err.cause = e;
  return err;
}

/**
 * `path` with its `..` segments resolved as the kernel resolves them, after following
 * the links before them. path.join and path.resolve drop `link/..` lexically, so for
 * `link/../m` they would name files of another folder than open() and readdir() reach
 * (config.json of one model beside the weights of another). Paths without `..` (and
 * those whose part up to the last `..` does not exist) are returned as given.
 */
export async function kernelPath(path: string): Promise<string> {
  if (typeof path !== 'string') return path;
  const parts = path.split(sep === '\\' ? /[\\/]/ : '/');
  const last = parts.lastIndexOf('..');
  if (last < 0) return path;
  let head: string;
  try {
    head = await realpath(parts.slice(0, last + 1).join(sep) || sep);
  } catch {
    return path;
  }
  return join(head, ...parts.slice(last + 1));
}

/** What a file that is not a regular one is, for messages. */
function kind(st: Stats): string {
  return st.isFIFO()
    ? 'a FIFO'
    : st.isCharacterDevice()
      ? 'a character device'
      : st.isBlockDevice()
        ? 'a block device'
        : st.isSocket()
          ? 'a socket'
          : st.isDirectory()
            ? 'a folder'
            : 'an unknown kind';
}

function notRegular(path: string, st: Stats): BnbError {
  return new BnbError('E_IO', `cannot read ${path}: not a regular file (${kind(st)})`);
}

/**
 * `path` opened for reading, if it is a regular file (symbolic links followed), and its
 * size. It is checked with stat before opening (a device is never opened), opened
 * non-blocking (a FIFO put there meanwhile cannot block open()), and checked again on
 * the handle. Anything else, and every OS error, is E_IO naming `path` and the reason
 * (the OS error is the cause: ENOENT tells a missing file).
 */
export async function openRegularFile(path: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw notRegular(path, st);
    fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw readError(e, path);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notRegular(path, st);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close().catch(() => {});
    throw readError(e, path);
  }
}

/**
 * The bytes of a regular file of at most `max` bytes, or null if there is nothing of
 * that name (a symbolic link to nothing is an error: a download left incomplete).
 * Larger files are `code` errors naming `what` the file should be; anything that is
 * not a regular file is E_IO.
 */
export async function readSmallFile(path: string, max: number, code: BnbErrorCode, what: string): Promise<Uint8Array | null> {
  let fh: FileHandle, size: number;
  try {
    ({ fh, size } = await openRegularFile(path));
  } catch (e) {
    if (
      (e as { cause?: { code?: string } }).cause?.code === 'ENOENT' &&
      !(await lstat(path).then(
        () => true,
        () => false,
      ))
    )
      return null;
    throw e;
  }
  try {
    // one byte more than allowed tells a file that is too large (or grew since stat)
    let buf = new Uint8Array(Math.min(max, size) + 1);
    let n = 0;
    for (;;) {
      if (n === buf.length) {
        if (n > max) throw new BnbError(code, `${path} has more than ${max} bytes: expected ${what} of at most ${max}`);
        const bigger = new Uint8Array(Math.min(max + 1, buf.length * 2));
        bigger.set(buf);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) return buf.subarray(0, n);
      n += bytesRead;
    }
  } catch (e) {
    throw readError(e, path);
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Copies the regular file `from` to the new file `to` (created exclusively), through
 * openRegularFile. Read errors are E_IO naming `from`; write errors are outputError's,
 * naming `output` (the path the user gave, not the temporary folder `to` lies in).
 */
export async function copyRegularFile(from: string, to: string, output: string): Promise<void> {
  const { fh } = await openRegularFile(from);
  try {
    let out: FileHandle;
    try {
      out = await open(to, 'wx');
    } catch (e) {
      throw outputError(e, output);
    }
    try {
      const buf = new Uint8Array(1 << 20);
      for (let position = 0; ;) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, 0, buf.length, position));
        } catch (e) {
          throw readError(e, from);
        }
        if (n === 0) break;
        try {
          for (let done = 0; done < n;) done += (await out.write(buf, done, n - done, position + done)).bytesWritten;
        } catch (e) {
          throw outputError(e, output);
        }
        position += n;
      }
    } finally {
      await out.close().catch(() => {});
    }
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Writes a new text file (the caller's folder is a temporary one); OS errors are thrown as they are. */
export async function writeTextFile(path: string, text: string): Promise<void> {
  await writeFile(path, text, { flag: 'wx' });
}

/**
 * An error met while writing `output`, as the user should see it: E_IO naming the path
 * they gave (never the hidden temporary) and the system's reason. Other BnbErrors
 * (E_EXISTS, E_ST_*) and errors that are not the system's pass unchanged.
 */
export function outputError(e: unknown, output: string): unknown {
  if (e instanceof BnbError && e.code !== 'E_IO') return e;
  const cause = e instanceof BnbError ? e.cause : e;
  if (typeof (cause as { code?: unknown } | null)?.code !== 'string') return e;
  const err = new BnbError('E_IO', `cannot write output = ${show(output)}: ${systemReason(cause)}`);
  err.cause = cause;
  return err;
}
