// Reads and writes of whole ranges through a file handle (node:fs/promises, which Deno
// and Bun provide too), in calls the OS accepts, and the errors they raise.
import type { FileHandle } from 'node:fs/promises';
import { BnbError, fail } from '../../errors.js';
import { systemReason } from '../files.js';

/** Largest single read/write call (the OS and Node cap one call below 2 GiB). */
const IO_CHUNK = 1 << 30;

export function ioError(e: unknown, what: string): BnbError {
  if (e instanceof BnbError) return e;
  const err = new BnbError('E_IO', `${what}: ${systemReason(e)}`);
  err.cause = e;
  return err;
}

/** The same error with the file named in front. */
export function inFile(e: unknown, path: string): unknown {
  if (!(e instanceof BnbError) || e.code === 'E_IO') return e;
  const err = new BnbError(e.code, `${path}: ${e.message}`);
  err.cause = e;
  return err;
}

export function checkPath(argument: string, path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) fail('E_ARGUMENT', argument, path, 'a file path (a non-empty string)');
  return path;
}

export function errno(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

// Views of at most IO_CHUNK bytes are made per call: a tensor may be larger than the
// largest Uint8Array (2^32 bytes in Node 20) while its Float32Array or buffer is not.
export async function readFully(fh: FileHandle, target: ArrayBufferView, position: number, path: string): Promise<void> {
  // errors name `path` only for E_IO; callers put the path in front of the others (inFile)
  let done = 0;
  while (done < target.byteLength) {
    const want = Math.min(target.byteLength - done, IO_CHUNK);
    let got: number;
    try {
      ({ bytesRead: got } = await fh.read(new Uint8Array(target.buffer, target.byteOffset + done, want), 0, want, position + done));
    } catch (e) {
      throw ioError(e, `cannot read ${path}`);
    }
    if (got === 0) {
      throw new BnbError(
        'E_ST_INCOMPLETE',
        `the file ended at byte ${position + done} while ${position + target.byteLength} were expected (did it shrink while open?)`,
      );
    }
    done += got;
  }
}

export async function writeFully(fh: FileHandle, bytes: ArrayBufferView, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const n = Math.min(bytes.byteLength - done, IO_CHUNK);
    const { bytesWritten } = await fh.write(new Uint8Array(bytes.buffer, bytes.byteOffset + done, n), 0, n, position + done);
    done += bytesWritten;
  }
}

/** A new buffer of `size` bytes, or a BnbError naming the tensor when the runtime cannot allocate it. */
export function allocateBytes(size: number, what: string): ArrayBuffer {
  try {
    return new ArrayBuffer(size);
  } catch (e) {
    throw new BnbError('E_OUT_OF_MEMORY', `${what}: cannot allocate ${size} bytes (${(e as Error).message})`);
  }
}
