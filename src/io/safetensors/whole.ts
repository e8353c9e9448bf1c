// Whole safetensors files in one call: bytes <-> tensors in any runtime, and paths
// through the file support that the Node entry registers (setPathSupport).
import { BnbError, fail, show } from '../../errors.js';
import { StoredTensor, toStoredTensor } from './tensors.js';
import { PreparedEntry, checkWriteOptions, prepareSafetensors, serializeSafetensors } from './encode.js';
import { fileInBytes } from './memory-source.js';

/** Whole file in memory -> tensors (for browsers and Workers); validates everything. */
export function parseSafetensors(bytes: Uint8Array | ArrayBuffer): {
  tensors: Record<string, StoredTensor>;
  metadata: Record<string, string> | null;
} {
  const { b, header } = fileInBytes(bytes);
  const base = header.dataStart;
  const tensors: [string, StoredTensor][] = header.tensors.map((t) => [
    t.name,
    toStoredTensor(t, b.subarray(base + t.start, base + t.end)),
  ]);
  return { tensors: Object.fromEntries(tensors), metadata: header.metadata };
}

/** How paths are read and written: registered by the Node entry (src/io/safetensors/file-support.ts). */
export interface PathSupport {
  read(path: string): Promise<{ tensors: Record<string, StoredTensor>; metadata: Record<string, string> | null }>;
  write(path: string, prepared: { header: Uint8Array; entries: PreparedEntry[]; dataLength: number }, force: boolean): Promise<void>;
}

// Set by the entries that have a file system (bnbjs in Node and Bun, bnbjs/node): this
// module never imports the file module, so browser and Worker bundles hold no node:fs.
let pathSupport: PathSupport | null = null;

export function setPathSupport(support: PathSupport): void {
  pathSupport = support;
}

function withPaths(path: string): PathSupport {
  if (pathSupport === null) {
    throw new BnbError(
      'E_IO',
      `path = ${show(path)} is not accepted by this entry: paths need the file support of bnbjs/node (Node, Deno, Bun; ` +
        "bnbjs's own entry in Node and Bun has it too): import from there, or here pass the file's bytes",
    );
  }
  return pathSupport;
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) fail('E_ARGUMENT', 'path', path, 'a file path (a non-empty string)');
  return path;
}

/**
 * A path (Node/Deno/Bun: read tensor by tensor through a file handle, never the
 * whole file at once) or the file's bytes.
 */
export async function readSafetensors(
  source: string | Uint8Array | ArrayBuffer,
): Promise<{ tensors: Record<string, StoredTensor>; metadata: Record<string, string> | null }> {
  if (typeof source === 'string') {
    checkPath(source);
    return withPaths(source).read(source);
  }
  return parseSafetensors(source as Uint8Array);
}

/**
 * Writes tensors: `writeSafetensors(tensors, { metadata })` returns the file's bytes (any runtime);
 * `writeSafetensors(path, tensors, { metadata, force })` writes a file under a temporary name and
 * renames it, refusing to overwrite unless `force`.
 */
export function writeSafetensors(tensors: Record<string, StoredTensor>, opts?: { metadata?: Record<string, string> | null }): Uint8Array;
export function writeSafetensors(
  path: string,
  tensors: Record<string, StoredTensor>,
  opts?: { metadata?: Record<string, string> | null; force?: boolean },
): Promise<void>;
export function writeSafetensors(
  pathOrTensors: string | Record<string, StoredTensor>,
  tensorsOrOpts?: Record<string, StoredTensor> | { metadata?: Record<string, string> | null },
  opts?: { metadata?: Record<string, string> | null; force?: boolean },
): Uint8Array | Promise<void> {
  if (typeof pathOrTensors !== 'string') {
    return serializeSafetensors(pathOrTensors, tensorsOrOpts as { metadata?: Record<string, string> | null });
  }
  return writeFile(pathOrTensors, tensorsOrOpts as Record<string, StoredTensor>, opts);
}

async function writeFile(
  path: string,
  tensors: Record<string, StoredTensor>,
  opts?: { metadata?: Record<string, string> | null; force?: boolean },
): Promise<void> {
  checkPath(path);
  const o = checkWriteOptions(opts);
  const prepared = prepareSafetensors(tensors, o.metadata); // validate before touching the file system
  return withPaths(path).write(path, prepared, o.force);
}
