// Where a conversion reads tensors from: the TensorSource interface. A safetensors
// file, a sharded folder and a file's bytes in memory implement it (src/io/safetensors/);
// another source (a URL, a browser Blob) or format is one more module implementing it.
import { BnbError, show } from '../errors.js';
import type { TensorInfo } from './safetensors/header.js';
import { StoredTensor, littleEndianBytes } from './safetensors/tensors.js';

export type { TensorInfo, StoredTensor };

/** Tensors by name, read one at a time (memory bounded by the largest tensor). */
export interface TensorSource {
  /** every tensor, in the order a conversion visits them (a file's data order, shard by shard) */
  names(): string[];
  /**
   * dtype, shape and byte range (end - start is the tensor's size in bytes; a source
   * without a file lays its tensors end to end); E_ST_MISSING for an unknown name
   */
  info(name: string): TensorInfo;
  read(name: string): Promise<StoredTensor>;
  /** the stored bytes as they are; without it, read()'s data in little-endian order (see sourceBytes) */
  readBytes?(name: string): Promise<Uint8Array>;
  /** string metadata (safetensors' __metadata__), or null */
  readonly metadata: Record<string, string> | null;
  /** the files read, for reports; none for a source that is not files */
  readonly files?: readonly string[];
  close(): Promise<void>;
}

/** What openSource returns: a .safetensors file, a sharded checkpoint, or bytes in memory. */
export interface CheckpointReader extends TensorSource {
  /** the .safetensors files, in order (shards sorted by name); none for bytes */
  readonly files: string[];
  readBytes(name: string): Promise<Uint8Array>;
  /** the first file's __metadata__ (safetensors string map) */
  metadata: Record<string, string> | null;
  /** the index's own "metadata" object (e.g. { total_size }), or null without an index */
  readonly indexMetadata: Record<string, unknown> | null;
}

/** A tensor's stored bytes: readBytes() where the source has it, else its data as read. */
export async function sourceBytes(source: TensorSource, name: string): Promise<Uint8Array> {
  if (source.readBytes !== undefined) return source.readBytes(name);
  const b = littleEndianBytes(await source.read(name));
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** E_ST_MISSING for a name `where` does not hold, naming a few it does. */
export function missing(name: unknown, where: string, names: readonly string[]): never {
  const some = names
    .slice(0, 5)
    .map((n) => JSON.stringify(n))
    .join(', ');
  throw new BnbError(
    'E_ST_MISSING',
    `tensor ${show(name)} is not in ${where}: expected one of its ${names.length} tensors (${some}${names.length > 5 ? ', ...' : ''})`,
  );
}
