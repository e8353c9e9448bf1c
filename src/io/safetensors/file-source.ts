// One .safetensors file as a TensorSource: the header read and validated when opened,
// each tensor read through the file handle when asked for (never the whole file).
import type { FileHandle } from 'node:fs/promises';
import { BnbError } from '../../errors.js';
import { openRegularFile } from '../files.js';
import { TensorSource, missing } from '../source.js';
import { SafetensorsHeader, TensorInfo, copyInfo, headerLength, parseHeader } from './header.js';
import { StoredTensor, storedTensorOwning, wholeBytes } from './tensors.js';
import { allocateBytes, checkPath, inFile, readFully } from './file-io.js';

/** One file as a TensorSource, with its path and parsed header. */
export interface SafetensorsReader extends TensorSource {
  readonly path: string;
  readonly header: SafetensorsHeader;
  readonly metadata: Record<string, string> | null;
  /** in data order */
  names(): string[];
  /** BnbError E_ST_MISSING for an unknown name */
  info(name: string): TensorInfo;
  read(name: string): Promise<StoredTensor>;
  readBytes(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

class FileReader implements SafetensorsReader {
  readonly metadata: Record<string, string> | null;
  #fh: FileHandle | null;
  readonly #byName = new Map<string, TensorInfo>();

  constructor(
    readonly path: string,
    fh: FileHandle,
    readonly header: SafetensorsHeader,
  ) {
    this.#fh = fh;
    this.metadata = header.metadata;
    for (const t of header.tensors) this.#byName.set(t.name, t);
  }

  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  #info(name: string): TensorInfo {
    const t = this.#byName.get(name);
    if (t === undefined) missing(name, this.path, this.names());
    return t;
  }

  info(name: string): TensorInfo {
    return copyInfo(this.#info(name));
  }

  async #bytes(t: TensorInfo): Promise<ArrayBuffer> {
    const fh = this.#fh;
    if (fh === null) throw new BnbError('E_IO', `${this.path}: the reader is closed`);
    const bytes = allocateBytes(t.end - t.start, `${this.path}: tensor ${JSON.stringify(t.name)}`);
    try {
      await readFully(fh, new DataView(bytes), this.header.dataStart + t.start, this.path);
    } catch (e) {
      throw inFile(e, this.path);
    }
    return bytes;
  }

  async read(name: string): Promise<StoredTensor> {
    const t = this.#info(name);
    const bytes = await this.#bytes(t);
    try {
      return storedTensorOwning(t, bytes);
    } catch (e) {
      throw inFile(e, this.path);
    }
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.#info(name);
    return wholeBytes(await this.#bytes(t), `${this.path}: tensor ${JSON.stringify(name)}`);
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    if (fh !== null) await fh.close().catch(() => {});
  }
}

/** Opens a file and reads and validates its header; tensors are read on demand. */
export async function openSafetensors(path: string): Promise<SafetensorsReader> {
  checkPath('path', path);
  const { fh, size } = await openRegularFile(path); // a FIFO or a device is refused, never waited on
  try {
    const first8 = new Uint8Array(Math.min(8, size));
    await readFully(fh, first8, 0, path);
    const n = headerLength(first8, size);
    const headerBytes = new Uint8Array(n);
    await readFully(fh, headerBytes, 8, path);
    return new FileReader(path, fh, parseHeader(headerBytes, size));
  } catch (e) {
    await fh.close().catch(() => {});
    throw inFile(e, path);
  }
}

/** Reads every tensor of a file, one at a time. */
export async function readSafetensorsFile(
  path: string,
): Promise<{ tensors: Record<string, StoredTensor>; metadata: Record<string, string> | null }> {
  const reader = await openSafetensors(path);
  try {
    const tensors: [string, StoredTensor][] = [];
    for (const name of reader.names()) tensors.push([name, await reader.read(name)]);
    return { tensors: Object.fromEntries(tensors), metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}
