// Small files read whole (config.json, index files) and written whole (config.json).
// What is read is limited by the bytes actually read, not by what stat claims (a link
// to /dev/zero says size 0), and only a regular file is read: a FIFO would block open()
// and read() forever, so the file is opened non-blocking and checked on the handle.
import { constants } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { BnbError, BnbErrorCode, show } from '../errors.js';

/** Node's text for an OS error without the path it names: 'permission denied (EACCES)'. */
export function systemReason(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const m = /^([A-Z][A-Z0-9_]+): ([^,]+)/.exec(message); // libuv's "CODE: description, syscall 'path'"
  return m ? `${m[2]} (${m[1]})` : message;
}

/**
 * The bytes of a regular file of at most `max` bytes, or null if it does not exist.
 * Larger files are `code` errors naming `what` the file should be.
 */
export async function readSmallFile(path: string, max: number, code: BnbErrorCode, what: string): Promise<Uint8Array | null> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw new BnbError('E_IO', `cannot open ${path}: ${systemReason(e)}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BnbError(code, `${path} is not a regular file: expected ${what}`);
    // one byte more than allowed tells a file that is too large (or grew since stat)
    let buf = new Uint8Array(Math.min(max, st.size) + 1);
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
    if (e instanceof BnbError) throw e;
    throw new BnbError('E_IO', `cannot read ${path}: ${systemReason(e)}`);
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
