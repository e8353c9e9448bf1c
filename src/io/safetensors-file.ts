// safetensors files through file handles (node:fs/promises, which Deno and Bun
// provide too): lazy per-tensor reads, sharded checkpoints, and writers that never
// leave a partial output (temporary name in the same folder, fsync, rename).
import { link, lstat, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dropTemporary, newTemporary } from './temp.js';
import { recoverOutput } from './swap.js';
import { kernelPath, openRegularFile, readSmallFile, systemReason } from './files.js';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { BnbError, fail, show } from '../errors.js';
import { guard, readShape } from '../args.js';
import {
  MAX_HEADER_BYTES, PreparedEntry, SafetensorsDType, SafetensorsHeader, StoredTensor, TensorInfo,
  checkMetadata, checkStoredTensor, checkTensorCount, checkTensorName, checkWriteOptions, compareNames, encodeHeader, headerJson, headerLength,
  isSafetensorsDType, littleEndianBytes, parseHeader, prepareSafetensors, referenceOrder, safetensorsItemsize, storedTensorOwning, wholeBytes,
} from './safetensors.js';

/** Largest single read/write call (the OS and Node cap one call below 2 GiB). */
const IO_CHUNK = 1 << 30;

function ioError(e: unknown, what: string): BnbError {
  if (e instanceof BnbError) return e;
  const err = new BnbError('E_IO', `${what}: ${systemReason(e)}`);
  err.cause = e;
  return err;
}

/** The same error with the file named in front. */
function inFile(e: unknown, path: string): unknown {
  if (!(e instanceof BnbError) || e.code === 'E_IO') return e;
  const err = new BnbError(e.code, `${path}: ${e.message}`);
  err.cause = e;
  return err;
}

function checkPath(argument: string, path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) fail('E_ARGUMENT', argument, path, 'a file path (a non-empty string)');
  return path;
}

function errno(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code;
}

// Views of at most IO_CHUNK bytes are made per call: a tensor may be larger than the
// largest Uint8Array (2^32 bytes in Node 20) while its Float32Array or buffer is not.
async function readFully(fh: FileHandle, target: ArrayBufferView, position: number, path: string): Promise<void> {
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
      throw new BnbError('E_ST_INCOMPLETE', `the file ended at byte ${position + done} while ${position + target.byteLength} were expected (did it shrink while open?)`);
    }
    done += got;
  }
}

async function writeFully(fh: FileHandle, bytes: ArrayBufferView, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const n = Math.min(bytes.byteLength - done, IO_CHUNK);
    const { bytesWritten } = await fh.write(new Uint8Array(bytes.buffer, bytes.byteOffset + done, n), 0, n, position + done);
    done += bytesWritten;
  }
}

/** A new buffer of `size` bytes, or a BnbError naming the tensor when the runtime cannot allocate it. */
function allocateBytes(size: number, what: string): ArrayBuffer {
  try {
    return new ArrayBuffer(size);
  } catch (e) {
    throw new BnbError('E_OUT_OF_MEMORY', `${what}: cannot allocate ${size} bytes (${(e as Error).message})`);
  }
}

// ---------------------------------------------------------------------------
// Reading

export interface SafetensorsReader {
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

function copyInfo(t: TensorInfo): TensorInfo {
  return { name: t.name, dtype: t.dtype, shape: [...t.shape], start: t.start, end: t.end };
}

function missing(name: unknown, where: string, names: readonly string[]): never {
  const some = names.slice(0, 5).map((n) => JSON.stringify(n)).join(', ');
  throw new BnbError('E_ST_MISSING', `tensor ${show(name)} is not in ${where}: expected one of its ${names.length} tensors (${some}${names.length > 5 ? ', ...' : ''})`);
}

class FileReader implements SafetensorsReader {
  readonly metadata: Record<string, string> | null;
  #fh: FileHandle | null;
  readonly #byName = new Map<string, TensorInfo>();

  constructor(readonly path: string, fh: FileHandle, readonly header: SafetensorsHeader) {
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
export async function readSafetensorsFile(path: string): Promise<{ tensors: Record<string, StoredTensor>; metadata: Record<string, string> | null }> {
  const reader = await openSafetensors(path);
  try {
    const tensors: [string, StoredTensor][] = [];
    for (const name of reader.names()) tensors.push([name, await reader.read(name)]);
    return { tensors: Object.fromEntries(tensors), metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}

// ---------------------------------------------------------------------------
// Sharded checkpoints

/** Sharded checkpoints: a folder or model.safetensors.index.json ({ metadata, weight_map: { name: shard file } }) or a single .safetensors file. */
export interface CheckpointReader {
  /** the .safetensors files, in order (shards sorted by name) */
  readonly files: string[];
  /** shard by shard, each in data order */
  names(): string[];
  info(name: string): TensorInfo;
  read(name: string): Promise<StoredTensor>;
  readBytes(name: string): Promise<Uint8Array>;
  /** the first file's __metadata__ (safetensors string map) */
  metadata: Record<string, string> | null;
  /** the index's own "metadata" object (e.g. { total_size }), or null without an index */
  readonly indexMetadata: Record<string, unknown> | null;
  close(): Promise<void>;
}

const INDEX_SUFFIX = '.safetensors.index.json';
const MAX_INDEX_BYTES = 100_000_000;

function badIndex(path: string, what: string): never {
  throw new BnbError('E_ST_INDEX', `${path}: ${what}`);
}

/** Resolves a folder to the index or single file it holds. */
async function resolveFolder(dir: string): Promise<string> {
  let entries: string[];
  try {
    // not only regular files: a FIFO or device named model.safetensors is refused by name, not passed over
    entries = (await readdir(dir, { withFileTypes: true })).filter((d) => !d.isDirectory()).map((d) => d.name);
  } catch (e) {
    throw ioError(e, `cannot list ${dir}`);
  }
  entries.sort(compareNames);
  if (entries.includes('model' + INDEX_SUFFIX)) return join(dir, 'model' + INDEX_SUFFIX);
  const indexes = entries.filter((n) => n.endsWith(INDEX_SUFFIX));
  if (indexes.length === 1) return join(dir, indexes[0]!);
  if (indexes.length > 1) fail('E_ARGUMENT', 'path', dir, `a folder with one *${INDEX_SUFFIX} (it holds ${indexes.join(', ')}): pass the index to open`);
  if (entries.includes('model.safetensors')) return join(dir, 'model.safetensors');
  const files = entries.filter((n) => n.endsWith('.safetensors'));
  if (files.length === 1) return join(dir, files[0]!);
  if (files.length > 1) fail('E_ARGUMENT', 'path', dir, `a folder with an index or one .safetensors file (it holds ${files.length} and no index: ${files.slice(0, 4).join(', ')}${files.length > 4 ? ', ...' : ''})`);
  throw new BnbError('E_IO', `cannot open ${dir}: the folder holds no .safetensors file and no *${INDEX_SUFFIX}`);
}

class ShardedReader implements CheckpointReader {
  readonly files: string[];
  metadata: Record<string, string> | null;
  readonly #readers: SafetensorsReader[];
  readonly #where = new Map<string, SafetensorsReader>();
  readonly #names: string[] = [];

  constructor(readers: SafetensorsReader[], readonly indexMetadata: Record<string, unknown> | null, wanted: Map<string, string> | null) {
    this.#readers = readers;
    this.files = readers.map((r) => r.path);
    this.metadata = readers[0]?.metadata ?? null;
    for (const r of readers) {
      for (const n of r.names()) {
        if (wanted !== null && wanted.get(n) !== r.path) continue;
        this.#where.set(n, r);
        this.#names.push(n);
      }
    }
  }

  names(): string[] {
    return [...this.#names];
  }

  #reader(name: string): SafetensorsReader {
    const r = this.#where.get(name);
    if (r === undefined) missing(name, this.files.length === 1 ? this.files[0]! : `the checkpoint (${this.files.length} files)`, this.#names);
    return r;
  }

  info(name: string): TensorInfo {
    return this.#reader(name).info(name);
  }

  read(name: string): Promise<StoredTensor> {
    return this.#reader(name).read(name);
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.#reader(name).readBytes(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.#readers.map((r) => r.close()));
  }
}

/** Every tensor of shard `r` is in the weight_map, and mapped to `r`. */
function checkListed(indexPath: string, r: SafetensorsReader, wanted: Map<string, string>): void {
  for (const name of r.names()) {
    const listed = wanted.get(name);
    if (listed === r.path) continue;
    badIndex(indexPath, listed === undefined
      ? `weight_map omits ${JSON.stringify(name)}, which ${basename(r.path)} holds: list every tensor of every shard (or pass trustIndex, --trust-index, to read only what the index lists)`
      : `${basename(r.path)} also holds ${JSON.stringify(name)}, which weight_map maps to ${basename(listed)}: a tensor must be in one shard (or pass trustIndex, --trust-index, to read the copy the index names)`);
  }
}

async function openIndex(indexPath: string, trustIndex: boolean): Promise<CheckpointReader> {
  const bytes = await readSmallFile(indexPath, MAX_INDEX_BYTES, 'E_ST_INDEX', `a *${INDEX_SUFFIX} (${MAX_INDEX_BYTES} bytes at most)`);
  if (bytes === null) throw new BnbError('E_IO', `cannot open ${indexPath}: no such file`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    badIndex(indexPath, 'not valid UTF-8');
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    badIndex(indexPath, `not valid JSON (${(e as Error).message}): expected { "metadata": {...}, "weight_map": { tensor: shard file } }`);
  }
  if (typeof index !== 'object' || index === null || Array.isArray(index)) badIndex(indexPath, 'expected a JSON object with a weight_map');
  const { weight_map: map, metadata } = index as { weight_map?: unknown; metadata?: unknown };
  if (!('weight_map' in (index as object))) {
    // config.json, tokenizer.json...: given where a checkpoint was expected
    throw new BnbError('E_CKPT_FORMAT', `${indexPath} is not a checkpoint (a JSON file without a weight_map): ${CHECKPOINT}`);
  }
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    badIndex(indexPath, `weight_map = ${show(map)} is not accepted: expected an object { tensor name: shard file }`);
  }
  if (metadata !== undefined && metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    badIndex(indexPath, `metadata = ${show(metadata)} is not accepted: expected an object or null`);
  }
  const dir = dirname(resolve(indexPath));
  const wanted = new Map<string, string>();
  const shardPaths = new Set<string>();
  for (const [name, file] of Object.entries(map as object)) {
    if (typeof file !== 'string' || file.length === 0 || isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
      badIndex(indexPath, `weight_map[${JSON.stringify(name)}] = ${show(file)} is not accepted: expected a shard file name inside ${dir}`);
    }
    const full = join(dir, file);
    if (!full.startsWith(dir + sep)) badIndex(indexPath, `weight_map[${JSON.stringify(name)}] = ${show(file)} is outside ${dir}`);
    shardPaths.add(full);
    wanted.set(name, full);
  }
  if (wanted.size === 0 && !trustIndex) {
    badIndex(indexPath, `weight_map is empty: it names no tensor and no shard (pass trustIndex, --trust-index, to open it as an empty checkpoint)`);
  }
  const shards = [...shardPaths].sort(compareNames);
  const readers: SafetensorsReader[] = [];
  try {
    for (const shard of shards) readers.push(await openSafetensors(shard));
    const byPath = new Map(readers.map((r) => [r.path, r]));
    for (const [name, shard] of wanted) {
      try {
        byPath.get(shard)!.info(name);
      } catch {
        badIndex(indexPath, `weight_map maps ${JSON.stringify(name)} to ${basename(shard)}, which does not hold it`);
      }
    }
    // what a shard holds beyond the weight_map would be dropped without a word
    if (!trustIndex) for (const r of readers) checkListed(indexPath, r, wanted);
  } catch (e) {
    await Promise.all(readers.map((r) => r.close()));
    throw e;
  }
  return new ShardedReader(readers, (metadata as Record<string, unknown> | null | undefined) ?? null, wanted);
}

export interface OpenCheckpointOptions {
  /**
   * Read only the tensors the index's weight_map lists (an empty one opens as an empty
   * checkpoint). By default a shard tensor the weight_map omits, or that two shards
   * hold, is an E_ST_INDEX error, as is an empty weight_map: nothing is dropped unseen.
   */
  trustIndex?: boolean;
}

/** The options, checked (undefined: the defaults). */
export function checkOpenOptions(opts: unknown): Required<OpenCheckpointOptions> {
  if (opts === undefined) return { trustIndex: false };
  if (typeof opts !== 'object' || opts === null) fail('E_ARGUMENT', 'opts', opts, '{ trustIndex?: boolean } or undefined');
  const t = (opts as OpenCheckpointOptions).trustIndex;
  if (t !== undefined && typeof t !== 'boolean') fail('E_ARGUMENT', 'trustIndex', t, 'true, false or undefined');
  return { trustIndex: t ?? false };
}

/**
 * Opens a checkpoint: a .safetensors file, an index.json ({ metadata, weight_map })
 * or a folder holding either (model.safetensors.index.json first). Headers are read
 * and validated up front; tensors are read on demand, shard by shard. Every file is
 * opened only if it is a regular file (a FIFO or a device is E_IO, never waited on).
 */
export async function openCheckpoint(path: string, opts?: OpenCheckpointOptions): Promise<CheckpointReader> {
  checkPath('path', path);
  const { trustIndex } = checkOpenOptions(opts);
  path = await kernelPath(path); // link/.. as open() resolves it: the index's shards and the folder's files are joined to it
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw ioError(e, `cannot open ${path}`);
    // missing: perhaps a run died while replacing it, its old output moved aside
    await recoverOutput(path).catch(() => {});
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (e) {
      throw ioError(e, `cannot open ${path}`);
    }
  }
  const target = isDir ? await resolveFolder(path) : path;
  if (target.endsWith('.json')) return openIndex(target, trustIndex);
  try {
    return new ShardedReader([await openSafetensors(target)], null, null);
  } catch (e) {
    // a file given by a name that is not a checkpoint's (README.md, config.json): say what one is
    if (isDir || target.endsWith('.safetensors') || !(e instanceof BnbError) || !e.code.startsWith('E_ST_')) throw e;
    throw new BnbError('E_CKPT_FORMAT', `${path} is not a checkpoint (not in the safetensors format): ${CHECKPOINT}`);
  }
}

/** What the functions taking a checkpoint accept. */
export const CHECKPOINT = `a checkpoint is a .safetensors file, a *${INDEX_SUFFIX} naming its shards, or a model folder holding either`;

// ---------------------------------------------------------------------------
// Writing

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw ioError(e, `cannot check ${path}`);
  }
}

function existsError(path: string): BnbError {
  return new BnbError('E_EXISTS', `path = ${show(path)} exists: pass force: true to replace it`);
}

/** A temporary file in the same folder as `path`, created exclusively. */
async function createTemp(path: string, force: boolean): Promise<{ tmp: string; fh: FileHandle }> {
  try {
    await recoverOutput(path); // a run killed while replacing it: its old output comes back first
  } catch (e) {
    throw ioError(e, `cannot check ${path}`);
  }
  if (!force && (await exists(path))) throw existsError(path);
  const tmp = await newTemporary(path);
  try {
    const fh = await open(tmp, 'wx+'); // read too: finish() may move data within the file
    return { tmp, fh };
  } catch (e) {
    dropTemporary(tmp);
    throw ioError(e, `cannot create ${tmp}`);
  }
}

async function removeQuietly(tmp: string): Promise<void> {
  await unlink(tmp).catch(() => {});
  dropTemporary(tmp);
}

/** Moves the finished temporary file to `path`: rename, or without force a link that fails if `path` exists. */
async function commit(tmp: string, path: string, force: boolean): Promise<void> {
  try {
    if (force) {
      await rename(tmp, path); // atomic: `path` holds the old file or the new one, never neither
      dropTemporary(tmp);
    } else {
      try {
        await link(tmp, path); // atomic: fails with EEXIST rather than replacing
        await removeQuietly(tmp);
      } catch (e) {
        if (errno(e) === 'EEXIST') throw existsError(path);
        // file systems without hard links: check, then rename
        if (await exists(path)) throw existsError(path);
        await rename(tmp, path);
        dropTemporary(tmp);
      }
    }
  } catch (e) {
    await removeQuietly(tmp);
    throw ioError(e, `cannot write ${path}`);
  }
  // make the rename durable; folders cannot be opened for this everywhere (Windows)
  try {
    const d = await open(dirname(path), 'r');
    await d.sync().catch(() => {});
    await d.close();
  } catch {
    // best effort
  }
}

/** Writes what prepareSafetensors laid out: byte for byte serializeSafetensors' output. */
export async function writePreparedFile(path: string, prepared: { header: Uint8Array; entries: PreparedEntry[]; dataLength: number }, force: boolean): Promise<void> {
  const { tmp, fh } = await createTemp(path, force);
  try {
    try {
      await writeFully(fh, prepared.header, 0);
      let p = prepared.header.byteLength;
      for (const e of prepared.entries) {
        await writeFully(fh, e.bytes, p);
        p += e.bytes.byteLength;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    await removeQuietly(tmp);
    throw ioError(e, `cannot write ${tmp}`);
  }
  await commit(tmp, path, force);
}

/** Writes tensors to a path (see writeSafetensors). */
export async function writeSafetensorsFile(path: string, tensors: Record<string, StoredTensor>, opts?: { metadata?: Record<string, string> | null; force?: boolean }): Promise<void> {
  checkPath('path', path);
  const o = checkWriteOptions(opts);
  await writePreparedFile(path, prepareSafetensors(tensors, o.metadata), o.force);
}

/** A tensor the streaming writer will receive: a fixed shape, or maxElements for a 1-D tensor whose length is known later. */
export interface PlannedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape?: number[];
  maxElements?: number;
}

export interface SafetensorsFileWriter {
  write(name: string, t: StoredTensor): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

interface Slot {
  name: string;
  dtype: SafetensorsDType;
  /** fixed: the declared shape; variable: set when written */
  shape: number[];
  /** variable-length (declared with maxElements) */
  maxElements: number | null;
  start: number;
  end: number;
  written: boolean;
}

function checkPlan(plan: unknown): Slot[] {
  // each entry's fields read once, into plain objects
  const items = guard('plan', () => {
    if (!Array.isArray(plan)) return null;
    const n: unknown = plan.length;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) return null;
    checkTensorCount(n);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) {
      const p: unknown = plan[i];
      out.push(typeof p === 'object' && p !== null
        ? { name: (p as PlannedTensor).name, dtype: (p as PlannedTensor).dtype, shape: (p as PlannedTensor).shape, maxElements: (p as PlannedTensor).maxElements, given: p }
        : p);
    }
    return out;
  });
  if (items === null) fail('E_ARGUMENT', 'plan', plan, 'an array of { name, dtype, shape } or { name, dtype, maxElements }');
  const seen = new Set<string>();
  return items.map((p: unknown, i): Slot => {
    if (typeof p !== 'object' || p === null) fail('E_ARGUMENT', `plan[${i}]`, p, '{ name, dtype, shape } or { name, dtype, maxElements }');
    const q = p as { name: unknown; dtype: unknown; shape: unknown; maxElements: unknown; given: unknown };
    const name = checkTensorName(q.name);
    if (seen.has(name)) fail('E_ARGUMENT', `plan[${i}].name`, name, 'a name not declared before');
    seen.add(name);
    if (!isSafetensorsDType(q.dtype)) fail('E_ST_DTYPE', `plan[${i}].dtype (${JSON.stringify(name)})`, q.dtype, 'one of F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2');
    const dtype = q.dtype;
    const hasShape = q.shape !== undefined;
    const hasMax = q.maxElements !== undefined;
    if (hasShape === hasMax) {
      fail('E_ARGUMENT', `plan[${i}] (${JSON.stringify(name)})`, q.given, 'exactly one of shape and maxElements');
    }
    if (hasShape) {
      const shape = readShape(`plan[${i}].shape (${JSON.stringify(name)})`, q.shape, 'E_ST_SHAPE');
      const bytes = shape.reduce((a, d) => a * d, safetensorsItemsize(dtype));
      if (!Number.isSafeInteger(bytes)) fail('E_ST_SIZE', `plan[${i}].shape (${JSON.stringify(name)})`, shape, `a tensor of at most 2^53 - 1 bytes`);
      return { name, dtype, shape, maxElements: null, start: 0, end: 0, written: false };
    }
    const m = q.maxElements;
    if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 0 || !Number.isSafeInteger(m * safetensorsItemsize(dtype))) {
      fail('E_ARGUMENT', `plan[${i}].maxElements (${JSON.stringify(name)})`, m, 'a non-negative integer');
    }
    return { name, dtype, shape: [], maxElements: m, start: 0, end: 0, written: false };
  });
}

class StreamingWriter implements SafetensorsFileWriter {
  #state: 'open' | 'finishing' | 'done' | 'aborted' = 'open';
  #failure: unknown = null;
  readonly #slots = new Map<string, Slot>();
  readonly #fixed: Slot[];
  readonly #variable: Slot[];
  /** variable-length tensors in the order written (they are appended after the fixed ones) */
  readonly #varWritten: Slot[] = [];
  readonly #fixedEnd: number;
  #varEnd: number;
  readonly #pending = new Set<Promise<void>>();

  constructor(
    readonly path: string,
    readonly tmp: string,
    private fh: FileHandle | null,
    slots: Slot[],
    readonly metadata: [string, string][] | null,
    readonly force: boolean,
    readonly headerSize: number,
  ) {
    for (const s of slots) this.#slots.set(s.name, s);
    this.#fixed = slots.filter((s) => s.maxElements === null).sort(referenceOrder);
    this.#variable = slots.filter((s) => s.maxElements !== null).sort(referenceOrder);
    let offset = 0;
    for (const s of this.#fixed) {
      s.start = offset;
      offset += s.shape.reduce((a, d) => a * d, safetensorsItemsize(s.dtype));
      s.end = offset;
    }
    this.#fixedEnd = offset;
    this.#varEnd = offset;
  }

  get #dataStart(): number {
    return 8 + this.headerSize;
  }

  #checkOpen(what: string): void {
    if (this.#state !== 'open') {
      throw new BnbError('E_ARGUMENT', `${what}: the writer for ${this.path} is ${this.#state === 'finishing' ? 'finishing' : this.#state === 'done' ? 'finished' : 'aborted'}`);
    }
  }

  async write(name: string, given: StoredTensor): Promise<void> {
    this.#checkOpen(`write(${show(name)})`);
    const slot = typeof name === 'string' ? this.#slots.get(name) : undefined;
    if (slot === undefined) {
      throw new BnbError('E_ST_MISSING', `write(${show(name)}): the tensor is not in the writer's plan for ${this.path} (declare every tensor in createSafetensorsWriter's plan)`);
    }
    if (slot.written) throw new BnbError('E_ARGUMENT', `write(${show(name)}): the tensor has already been written`);
    const what = `write(${JSON.stringify(name)})`;
    const { dtype, t } = checkStoredTensor(`${what} t`, given);
    if (dtype !== slot.dtype) {
      throw new BnbError('E_DTYPE', `${what}: t.dtype = ${show(t.dtype)} (${dtype}) is not accepted: the plan declares ${slot.dtype}`);
    }
    const bytes = littleEndianBytes(t);
    let position: number;
    if (slot.maxElements === null) {
      if (t.shape.length !== slot.shape.length || t.shape.some((d, i) => d !== slot.shape[i])) {
        throw new BnbError('E_SHAPE', `${what}: t.shape = ${show(t.shape)} is not accepted: the plan declares ${show(slot.shape)}`);
      }
      if (bytes.byteLength !== slot.end - slot.start) {
        throw new BnbError('E_ST_SIZE', `${what}: ${bytes.byteLength} bytes given but the plan's ${slot.dtype} ${show(slot.shape)} needs ${slot.end - slot.start}`);
      }
      position = slot.start;
    } else {
      if (t.shape.length !== 1 || t.shape[0]! > slot.maxElements) {
        throw new BnbError('E_SHAPE', `${what}: t.shape = ${show(t.shape)} is not accepted: the plan declares a 1-D tensor of at most ${slot.maxElements} elements`);
      }
      slot.shape = [...t.shape];
      slot.start = this.#varEnd;
      slot.end = slot.start + bytes.byteLength;
      this.#varEnd = slot.end;
      this.#varWritten.push(slot);
      position = slot.start;
    }
    slot.written = true;
    const fh = this.fh!;
    const p = writeFully(fh, bytes, this.#dataStart + position);
    this.#pending.add(p);
    try {
      await p;
    } catch (e) {
      const err = ioError(e, `cannot write ${this.tmp}`);
      this.#failure ??= err;
      await this.#discard();
      throw err;
    } finally {
      this.#pending.delete(p);
    }
  }

  /** Puts the variable-length tensors in the reference order (dtype, name) whatever the order they came in. */
  async #orderVariable(fh: FileHandle): Promise<void> {
    const inOrder = this.#variable;
    if (inOrder.every((s, i) => this.#varWritten[i] === s)) return;
    const base = this.#dataStart + this.#fixedEnd;
    const total = this.#varEnd - this.#fixedEnd;
    const buf = new Uint8Array(Math.max(1, Math.min(total, 8 << 20)));
    const copy = async (from: number, to: number, length: number): Promise<void> => {
      for (let done = 0; done < length; done += buf.length) {
        const n = Math.min(buf.length, length - done);
        await readFully(fh, buf.subarray(0, n), from + done, this.tmp);
        await writeFully(fh, buf.subarray(0, n), to + done);
      }
    };
    // copy each tensor, in order, past the current end; then move that block back
    let offset = this.#fixedEnd;
    const placed = inOrder.map((s) => {
      const start = offset;
      offset += s.end - s.start;
      return start;
    });
    for (let i = 0; i < inOrder.length; i++) {
      const s = inOrder[i]!;
      await copy(this.#dataStart + s.start, base + total + (placed[i]! - this.#fixedEnd), s.end - s.start);
    }
    await copy(base + total, base, total);
    await fh.truncate(base + total);
    inOrder.forEach((s, i) => {
      const len = s.end - s.start;
      s.start = placed[i]!;
      s.end = s.start + len;
    });
  }

  async finish(): Promise<void> {
    this.#checkOpen('finish()');
    this.#state = 'finishing';
    await Promise.allSettled([...this.#pending]);
    if (this.#failure !== null) throw this.#failure;
    const fh = this.fh!;
    try {
      const missingNames = [...this.#slots.values()].filter((s) => !s.written).map((s) => JSON.stringify(s.name));
      if (missingNames.length > 0) {
        throw new BnbError('E_ST_INCOMPLETE', `finish(): ${missingNames.length} planned tensor(s) of ${this.path} were not written: ${missingNames.slice(0, 5).join(', ')}${missingNames.length > 5 ? ', ...' : ''}`);
      }
      try {
        await this.#orderVariable(fh);
        const header = encodeHeader(headerJson(this.metadata, [...this.#fixed, ...this.#variable]), this.headerSize);
        await writeFully(fh, header, 0);
        await fh.truncate(this.#dataStart + this.#varEnd);
        await fh.sync();
        this.fh = null;
        await fh.close();
      } catch (e) {
        throw ioError(e, `cannot write ${this.tmp}`);
      }
      await commit(this.tmp, this.path, this.force);
      this.#state = 'done';
    } catch (e) {
      this.#failure = e;
      await this.#discard();
      throw e;
    }
  }

  async #discard(): Promise<void> {
    if (this.#state === 'done') return;
    this.#state = 'aborted';
    const fh = this.fh;
    this.fh = null;
    if (fh !== null) await fh.close().catch(() => {});
    await removeQuietly(this.tmp);
  }

  async abort(): Promise<void> {
    if (this.#state === 'done') return;
    this.#state = 'aborted';
    await Promise.allSettled([...this.#pending]);
    await this.#discard();
  }
}

/**
 * Streaming writer with memory bounded by one tensor. Every output tensor is declared
 * up front (name, dtype, and shape, or maxElements for a 1-D tensor whose length is
 * known only later); tensors are then written in any order, and finish() writes the
 * header into the space reserved for it (numbers at their widest, padded with spaces),
 * fsyncs and renames the temporary file to `path`. abort() removes the temporary file.
 *
 * Layout: the fixed-shape tensors in the reference writer's order (descending dtype,
 * then name), then the maxElements tensors in that order. With no maxElements tensor
 * the file is byte for byte serializeSafetensors' output.
 */
export async function createSafetensorsWriter(path: string, plan: PlannedTensor[], opts?: { metadata?: Record<string, string> | null; force?: boolean }): Promise<SafetensorsFileWriter> {
  checkPath('path', path);
  const o = checkWriteOptions(opts);
  const metadata = checkMetadata(o.metadata);
  const slots = checkPlan(plan);
  // Reserve the header at its widest: fixed tensors exactly, variable ones with their
  // maximum length and offsets as wide as the largest possible end.
  let maxEnd = 0;
  for (const s of slots) {
    maxEnd += s.maxElements === null ? s.shape.reduce((a, d) => a * d, safetensorsItemsize(s.dtype)) : s.maxElements * safetensorsItemsize(s.dtype);
  }
  if (!Number.isSafeInteger(maxEnd)) fail('E_ST_SIZE', 'plan', `${slots.length} tensors`, 'at most 2^53 - 1 bytes in all');
  const fixedOrder = slots.filter((s) => s.maxElements === null).sort(referenceOrder);
  let offset = 0;
  const widest = fixedOrder.map((s) => {
    const start = offset;
    offset += s.shape.reduce((a, d) => a * d, safetensorsItemsize(s.dtype));
    return { name: s.name, dtype: s.dtype, shape: s.shape, start, end: offset };
  });
  for (const s of slots) {
    if (s.maxElements !== null) widest.push({ name: s.name, dtype: s.dtype, shape: [s.maxElements], start: maxEnd, end: maxEnd });
  }
  const reserve = encodeHeader(headerJson(metadata, widest)).byteLength - 8; // validates the size too
  if (reserve > MAX_HEADER_BYTES) fail('E_ST_HEADER_TOO_LARGE', 'plan', `${slots.length} tensors`, 'a header of at most 100000000 bytes');
  const { tmp, fh } = await createTemp(path, o.force);
  return new StreamingWriter(path, tmp, fh, slots, metadata, o.force, reserve);
}
