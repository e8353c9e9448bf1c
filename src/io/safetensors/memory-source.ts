// A whole safetensors file held in memory (a Uint8Array or an ArrayBuffer), read as a
// TensorSource: the header is parsed and validated at once, each tensor is copied
// out of the bytes when it is read. For browsers, Workers, or a file fetched whole.
import { BnbError, fail } from '../../errors.js';
import { isArrayBuffer, viewOf } from '../../views.js';
import { CheckpointReader, missing } from '../source.js';
import { SafetensorsHeader, TensorInfo, checkBytes, copyInfo, headerLength, parseHeader } from './header.js';
import { StoredTensor, toStoredTensor, wholeArrayBuffer } from './tensors.js';

/** The caller's bytes (a fresh view, not a copy) and their header, validated. */
export function fileInBytes(bytes: Uint8Array | ArrayBuffer): { b: Uint8Array; header: SafetensorsHeader } {
  const v = viewOf(bytes);
  if (!(isArrayBuffer(bytes) || v?.kind === 'Uint8Array')) fail('E_ARGUMENT', 'bytes', bytes, 'a Uint8Array or an ArrayBuffer');
  const b = v === null ? wholeArrayBuffer(bytes as ArrayBuffer) : checkBytes('bytes', bytes);
  const n = headerLength(b.subarray(0, 8), b.byteLength);
  return { b, header: parseHeader(b.subarray(8, 8 + n), b.byteLength) };
}

class BytesSource implements CheckpointReader {
  readonly files: string[] = [];
  readonly indexMetadata = null;
  readonly metadata: Record<string, string> | null;
  #b: Uint8Array | null;
  readonly #header: SafetensorsHeader;
  readonly #byName = new Map<string, TensorInfo>();

  constructor(b: Uint8Array, header: SafetensorsHeader) {
    this.#b = b;
    this.#header = header;
    this.metadata = header.metadata;
    for (const t of header.tensors) this.#byName.set(t.name, t);
  }

  names(): string[] {
    return this.#header.tensors.map((t) => t.name);
  }

  #info(name: string): TensorInfo {
    const t = this.#byName.get(name);
    if (t === undefined) missing(name, 'the bytes given', this.names());
    return t;
  }

  info(name: string): TensorInfo {
    return copyInfo(this.#info(name));
  }

  #bytes(t: TensorInfo): Uint8Array {
    const b = this.#b;
    if (b === null) throw new BnbError('E_IO', 'the bytes given: the reader is closed');
    const base = this.#header.dataStart;
    return b.subarray(base + t.start, base + t.end);
  }

  async read(name: string): Promise<StoredTensor> {
    const t = this.#info(name);
    return toStoredTensor(t, this.#bytes(t));
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const b = this.#bytes(this.#info(name));
    const copy = new Uint8Array(b.byteLength);
    copy.set(b);
    return copy;
  }

  async close(): Promise<void> {
    this.#b = null;
  }
}

/**
 * A whole safetensors file in memory as a TensorSource (names, info, read, metadata).
 * The bytes are not copied: each read copies its tensor out of them then, so change
 * them only once the source is closed.
 */
export function openSafetensorsBytes(bytes: Uint8Array | ArrayBuffer): CheckpointReader {
  const { b, header } = fileInBytes(bytes);
  return new BytesSource(b, header);
}
