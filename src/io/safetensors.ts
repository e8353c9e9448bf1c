// The safetensors format, on bytes only (no file system): header parsing with the
// reference implementation's validation, tensors from and to bytes, and the
// reference writer's layout (data sorted by descending dtype, then by name; header
// padded with spaces to a multiple of 8). Paths are handled by ./safetensors-file.ts,
// loaded by a dynamic import() so that browser bundles never pull node:fs.
//
// Format: 8 bytes little-endian u64 N, N bytes of UTF-8 JSON
//   {"__metadata__": {str: str}?, NAME: {"dtype": D, "shape": [..], "data_offsets": [s, e]}, ...}
// then the data section; offsets are relative to its start (8 + N).
import { BnbError, fail, show } from '../errors.js';
import { guard, isPlainObject, readShape } from '../args.js';
import { freshView, isArrayBuffer, viewOf } from '../views.js';
import { DType, arrayTypeOf, isDType } from '../dtypes.js';
import { Tensor, checkNotDetached, checkShape, checkTensor, numel, tensor } from '../tensor.js';
import { JsonNumber, JsonValue, parseJson, showJson } from '../json/parse.js';

export type SafetensorsDType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';
export type RawDType = 'float64' | 'int64' | 'int16' | 'uint64' | 'uint32' | 'uint16' | 'bool' | 'float8_e5m2';

/** A tensor whose dtype bnbjs does not compute with: its raw little-endian bytes. */
export interface RawTensor {
  dtype: RawDType;
  shape: number[];
  data: Uint8Array;
  device: 'cpu';
}

/** Tensor for F32 F16 BF16 U8 I8 I32 F8_E4M3 (float32 float16 bfloat16 uint8 int8 int32 float8_e4m3fn), RawTensor for the others. */
export type StoredTensor = Tensor | RawTensor;

/** One tensor of a header; start and end are byte offsets relative to the data section. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  start: number;
  end: number;
}

export interface SafetensorsHeader {
  /** in data order */
  tensors: TensorInfo[];
  metadata: Record<string, string> | null;
  /** 8 + header length */
  dataStart: number;
}

export const MAX_HEADER_BYTES = 100_000_000;
/**
 * Most tensors in one file (2^20). The header limit alone would allow about 1.7
 * million, whose parse takes seconds and over a GB; the largest real single-file
 * checkpoints hold a few hundred thousand (a 4-bit layer is 5 to 7 tensors).
 */
export const MAX_TENSORS = 1 << 20;
/** Most dimensions of one tensor's shape (torch allows 64); a longer shape array is refused as it is read. */
export const MAX_SHAPE_DIMS = 64;
/** Most dimensions in all the shapes of one header: 8 per tensor at MAX_TENSORS (real checkpoints: 1 to 4). */
export const MAX_SHAPE_ENTRIES = 8 * MAX_TENSORS;
/** Most entries of __metadata__ (writers store a few: "format": "pt"). */
export const MAX_METADATA_ENTRIES = 1 << 16;
/** Most JSON values in one header: the shape entries and 8 more per tensor at the limits. */
export const MAX_HEADER_VALUES = 1 << 24;

/** The reference implementation's Dtype enum, in its order (the writer sorts by it, descending). */
const ST_DTYPES: readonly SafetensorsDType[] = [
  'BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64',
];
const RANK = new Map<string, number>(ST_DTYPES.map((d, i) => [d, i]));
const ITEMSIZE = new Map<SafetensorsDType, number>([
  ['BOOL', 1], ['U8', 1], ['I8', 1], ['F8_E5M2', 1], ['F8_E4M3', 1], ['I16', 2], ['U16', 2], ['F16', 2], ['BF16', 2],
  ['I32', 4], ['U32', 4], ['F32', 4], ['F64', 8], ['I64', 8], ['U64', 8],
]);
const TO_BNB = new Map<SafetensorsDType, DType>([
  ['F32', 'float32'], ['F16', 'float16'], ['BF16', 'bfloat16'], ['U8', 'uint8'], ['I8', 'int8'], ['I32', 'int32'], ['F8_E4M3', 'float8_e4m3fn'],
]);
const TO_RAW = new Map<SafetensorsDType, RawDType>([
  ['F64', 'float64'], ['I64', 'int64'], ['I16', 'int16'], ['U64', 'uint64'], ['U32', 'uint32'], ['U16', 'uint16'], ['BOOL', 'bool'], ['F8_E5M2', 'float8_e5m2'],
]);
const FROM_STORED = new Map<string, SafetensorsDType>([
  ...[...TO_BNB].map(([st, d]) => [d, st] as [string, SafetensorsDType]),
  ...[...TO_RAW].map(([st, d]) => [d, st] as [string, SafetensorsDType]),
]);
const RAW_DTYPES: readonly RawDType[] = [...TO_RAW.values()];

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const UTF8_DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();

export function isSafetensorsDType(x: unknown): x is SafetensorsDType {
  return typeof x === 'string' && RANK.has(x);
}

/** Bytes per element of a safetensors dtype. */
export function safetensorsItemsize(dtype: SafetensorsDType): number {
  const size = ITEMSIZE.get(dtype);
  if (size === undefined) fail('E_ST_DTYPE', 'dtype', dtype, `one of ${ST_DTYPES.join(', ')}`);
  return size;
}

/** The bnbjs dtype (or raw dtype) that a safetensors dtype is read as. */
export function storedDTypeOf(dtype: SafetensorsDType): DType | RawDType {
  const d = TO_BNB.get(dtype) ?? TO_RAW.get(dtype);
  if (d === undefined) fail('E_ST_DTYPE', 'dtype', dtype, `one of ${ST_DTYPES.join(', ')}`);
  return d;
}

// ---------------------------------------------------------------------------
// Header

function checkFileSize(fileSize: unknown): number {
  if (typeof fileSize !== 'number' || !Number.isSafeInteger(fileSize) || fileSize < 0) {
    fail('E_ARGUMENT', 'fileSize', fileSize, 'a non-negative integer (bytes)');
  }
  return fileSize;
}

/** A Uint8Array argument as a fresh view of its bytes (its own length or buffer never consulted). */
function checkBytes(argument: string, bytes: unknown): Uint8Array {
  const v = viewOf(bytes);
  if (v === null || v.kind !== 'Uint8Array') fail('E_ARGUMENT', argument, bytes, 'a Uint8Array');
  checkNotDetached(argument, bytes as Uint8Array);
  return freshView(v) as Uint8Array;
}

/** Reads the header length from the first 8 bytes and checks it against the file size. */
export function headerLength(first8: Uint8Array, fileSize: number): number {
  first8 = checkBytes('first8', first8);
  checkFileSize(fileSize);
  if (fileSize < 8) {
    throw new BnbError('E_ST_HEADER_TOO_SMALL', `the file has ${fileSize} bytes: a safetensors file starts with an 8-byte header length`);
  }
  if (first8.byteLength < 8) fail('E_ARGUMENT', 'first8', first8, "the file's first 8 bytes");
  const dv = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  if (hi !== 0 || lo > MAX_HEADER_BYTES) {
    const n = (BigInt(hi) << 32n) | BigInt(lo);
    throw new BnbError('E_ST_HEADER_TOO_LARGE', `header length = ${n} is not accepted: expected at most ${MAX_HEADER_BYTES} bytes`);
  }
  if (8 + lo > fileSize) {
    throw new BnbError('E_ST_HEADER_LENGTH', `header length = ${lo} is not accepted: 8 + ${lo} bytes run past the end of the file (${fileSize} bytes)`);
  }
  return lo;
}

/** A JSON number token that is a non-negative integer within 2^53 - 1, else null. */
function safeUint(v: JsonValue | undefined): number | null {
  if (typeof v === 'number') return v; // parsed with `integers`: a non-negative integer of at most 15 digits
  if (!(v instanceof JsonNumber) || !/^(?:0|[1-9][0-9]*)$/.test(v.text)) return null;
  const x = Number(v.text);
  return Number.isSafeInteger(x) ? x : null;
}

const U64_MAX = (1n << 64n) - 1n;

/** dtype size x product(shape) as the reference computes it (checked u64 arithmetic), or null on overflow. */
function expectedBytes(dtype: SafetensorsDType, shape: readonly number[]): bigint | null {
  let count = 1n;
  for (const d of shape) {
    count *= BigInt(d);
    if (count > U64_MAX) return null;
  }
  const bytes = count * BigInt(ITEMSIZE.get(dtype)!);
  return bytes > U64_MAX ? null : bytes;
}

/** A header's __metadata__ (null stays null). */
function readMetadata(entry: JsonValue): Record<string, string> | null {
  if (entry === null) return null;
  if (!(entry instanceof Map)) fail('E_ST_METADATA', '__metadata__', showJson(entry), 'an object of string values');
  for (const [k, v] of entry) {
    if (typeof v !== 'string') {
      throw new BnbError('E_ST_METADATA', `__metadata__[${JSON.stringify(k)}] = ${showJson(v)} is not accepted: expected a string`);
    }
  }
  return Object.fromEntries(entry as Map<string, string>);
}

/** One tensor entry of a header: dtype, shape, data_offsets (not yet checked against the others). */
function readEntry(name: string, entry: JsonValue): TensorInfo {
  const what = `tensor ${JSON.stringify(name)}`;
  if (!(entry instanceof Map)) {
    throw new BnbError('E_ST_HEADER_JSON', `${what} = ${showJson(entry)} is not accepted: expected an object with dtype, shape and data_offsets`);
  }
  const dtype = entry.get('dtype');
  if (!isSafetensorsDType(dtype)) {
    throw new BnbError('E_ST_DTYPE', `${what}: dtype = ${showJson(dtype)} is not accepted: expected one of ${ST_DTYPES.join(', ')}`);
  }
  const shapeJ = entry.get('shape');
  const shape = Array.isArray(shapeJ) ? shapeJ.map(safeUint) : null;
  if (shape === null || shape.some((d) => d === null)) {
    throw new BnbError('E_ST_SHAPE', `${what}: shape = ${showJson(shapeJ)} is not accepted: expected an array of non-negative integers (at most 2^53 - 1)`);
  }
  const offJ = entry.get('data_offsets');
  const off = Array.isArray(offJ) && offJ.length === 2 ? offJ.map(safeUint) : null;
  if (off === null || off[0] === null || off[1] === null) {
    throw new BnbError('E_ST_OFFSETS', `${what}: data_offsets = ${showJson(offJ)} is not accepted: expected [start, end], two non-negative integers within the file`);
  }
  return { name, dtype, shape: shape as number[], start: off[0]!, end: off[1]! };
}

/**
 * end - start is exactly dtype size x product(shape), every partial product a safe
 * integer (else expectedBytes decides, with the reference's checked u64 arithmetic:
 * [2^32, 2^32, 0] overflows before its 0).
 */
function exactBytes(t: TensorInfo): boolean {
  let count = 1;
  for (const d of t.shape) {
    count *= d;
    if (!(count <= Number.MAX_SAFE_INTEGER)) return false;
  }
  const bytes = count * ITEMSIZE.get(t.dtype)!;
  return bytes <= Number.MAX_SAFE_INTEGER && bytes === t.end - t.start;
}

function byteOrder(a: { start: number; end: number }, b: { start: number; end: number }): number {
  return a.start - b.start || a.end - b.end;
}

/**
 * Parses and fully validates a header (the bytes after the first 8) for a file of
 * fileSize bytes: the reference implementation's rules (tensors sorted by offsets,
 * each starting where the previous ends, the first at 0, sizes = dtype size x
 * product(shape), the last ending at the end of the file), each violation its own code.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  headerBytes = checkBytes('headerBytes', headerBytes);
  checkFileSize(fileSize);
  const n = headerBytes.byteLength;
  if (n > MAX_HEADER_BYTES) {
    throw new BnbError('E_ST_HEADER_TOO_LARGE', `header length = ${n} is not accepted: expected at most ${MAX_HEADER_BYTES} bytes`);
  }
  if (8 + n > fileSize) {
    throw new BnbError('E_ST_HEADER_LENGTH', `header length = ${n} is not accepted: 8 + ${n} bytes run past the end of the file (${fileSize} bytes)`);
  }
  let text: string;
  try {
    text = UTF8_DECODER.decode(headerBytes);
  } catch {
    throw new BnbError('E_ST_HEADER_UTF8', `the header (${n} bytes) is not valid UTF-8`);
  }
  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  let dims = 0;
  // The first invalid entry's error, thrown once the whole header has parsed (a JSON
  // syntax error anywhere comes first, as in the reference implementation, which
  // parses before it validates). Entries are checked as they are read and never kept
  // as JSON: the parse holds one entry at a time, not the whole tree.
  let invalid: BnbError | null = null;
  const member = (name: string, entry: JsonValue): boolean => {
    if (invalid !== null) return true;
    let t: TensorInfo | null = null;
    try {
      if (name === '__metadata__') metadata = readMetadata(entry);
      else t = readEntry(name, entry);
    } catch (e) {
      if (!(e instanceof BnbError)) throw e;
      invalid = e;
      return true;
    }
    if (t !== null) {
      dims += t.shape.length;
      if (dims > MAX_SHAPE_ENTRIES) { // a limit: refused now
        throw new BnbError('E_ST_SHAPE', `the header's shapes hold more than ${MAX_SHAPE_ENTRIES} dimensions in all (at tensor ${JSON.stringify(name)}): ` +
          `expected at most ${MAX_SHAPE_ENTRIES} (${MAX_SHAPE_ENTRIES / MAX_TENSORS} per tensor at the tensor limit)`);
      }
      tensors.push(t);
    }
    return true;
  };
  const root = parseJson(text, {
    code: 'E_ST_HEADER_JSON', what: 'the header', expected: 'one JSON object', integers: true,
    maxRootKeys: MAX_TENSORS + 1, // + __metadata__
    onTooManyKeys: () => {
      throw new BnbError('E_ST_TENSOR_COUNT', `the header lists more than ${MAX_TENSORS} tensors: expected at most ${MAX_TENSORS} in one file (shard larger checkpoints)`);
    },
    limits: { arrayLength: MAX_SHAPE_DIMS, objectKeys: MAX_METADATA_ENTRIES, values: MAX_HEADER_VALUES },
    onLimit: (what, path) => {
      const where = path.length > 0 ? `tensor ${JSON.stringify(path[0])}` : 'the header';
      if (what === 'arrayLength' && path[0] !== '__metadata__' && path[1] === 'shape' && path.length === 2) {
        throw new BnbError('E_ST_SHAPE', `${where}: shape has more than ${MAX_SHAPE_DIMS} dimensions: expected at most ${MAX_SHAPE_DIMS}`);
      }
      if (what === 'objectKeys' && path.length === 1 && path[0] === '__metadata__') {
        throw new BnbError('E_ST_METADATA', `__metadata__ has more than ${MAX_METADATA_ENTRIES} entries: expected at most ${MAX_METADATA_ENTRIES}`);
      }
      if (what === 'values') {
        throw new BnbError('E_ST_HEADER_JSON', `the header holds more than ${MAX_HEADER_VALUES} JSON values: expected at most ${MAX_HEADER_VALUES}`);
      }
      throw new BnbError('E_ST_HEADER_JSON', `${where}: ${path.slice(1).join('.') || 'the entry'} holds more than ` +
        `${what === 'arrayLength' ? `${MAX_SHAPE_DIMS} items` : `${MAX_METADATA_ENTRIES} keys`}: expected { dtype, shape, data_offsets }`);
    },
    rootMember: (k, v) => member(k, v),
  });
  if (!(root instanceof Map)) {
    throw new BnbError('E_ST_HEADER_JSON', `the header = ${showJson(root)} is not accepted: expected a JSON object`);
  }
  if (invalid !== null) throw invalid;
  if (tensors.length > MAX_TENSORS) {
    throw new BnbError('E_ST_TENSOR_COUNT', `the header lists ${tensors.length} tensors: expected at most ${MAX_TENSORS} in one file (shard larger checkpoints)`);
  }
  const dataStart = 8 + n;
  validateLayout(tensors, fileSize - dataStart);
  return { tensors, metadata, dataStart };
}

/** Sorts `tensors` into data order (in place) and checks that they tile the data section exactly. */
function validateLayout(tensors: TensorInfo[], dataLength: number): void {
  tensors.sort(byteOrder); // stable: equal offsets (empty tensors) keep header order
  let pos = 0;
  let prev: TensorInfo | null = null;
  for (const t of tensors) {
    if (t.start === pos && t.end >= t.start && exactBytes(t)) { // the common case, without building messages
      pos = t.end;
      prev = t;
      continue;
    }
    const what = `tensor ${JSON.stringify(t.name)}`;
    const offsets = `data_offsets = [${t.start}, ${t.end}]`;
    if (t.start > t.end) {
      throw new BnbError('E_ST_OFFSETS', `${what}: ${offsets} is not accepted: start is after end`);
    }
    if (t.start < pos) {
      throw new BnbError('E_ST_OFFSETS', `${what}: ${offsets} is not accepted: it overlaps tensor ${JSON.stringify(prev!.name)} (bytes ${prev!.start} to ${prev!.end})`);
    }
    if (t.start > pos) {
      const where = t.start > dataLength ? `, past the end of the data section (${dataLength} bytes)` : '';
      throw new BnbError('E_ST_OFFSETS', prev === null
        ? `${what}: ${offsets} is not accepted: the first tensor must start at 0${where}`
        : `${what}: ${offsets} is not accepted: expected start ${pos}, where tensor ${JSON.stringify(prev.name)} ends (bytes ${pos} to ${t.start} belong to no tensor${where})`);
    }
    const want = expectedBytes(t.dtype, t.shape);
    const got = t.end - t.start;
    if (want === null) {
      throw new BnbError('E_ST_SIZE', `${what}: shape ${show(t.shape)} x ${t.dtype} overflows 64 bits: expected dtype size x product(shape) = end - start`);
    }
    if (BigInt(got) !== want && t.end > dataLength) {
      throw new BnbError('E_ST_OFFSETS', `${what}: ${offsets} is not accepted: end is past the end of the data section (${dataLength} bytes) and ${t.dtype} ${show(t.shape)} needs ${want} bytes`);
    }
    if (BigInt(got) !== want) {
      throw new BnbError('E_ST_SIZE', `${what}: ${offsets} holds ${got} bytes but ${t.dtype} ${show(t.shape)} needs ${want}`);
    }
    pos = t.end;
    prev = t;
  }
  if (pos > dataLength) {
    throw new BnbError('E_ST_INCOMPLETE', `the file is truncated: its tensors need ${pos} bytes of data but the data section has ${dataLength}`);
  }
  if (pos < dataLength) {
    throw new BnbError('E_ST_INCOMPLETE', `the data section has ${dataLength} bytes but the tensors cover ${pos}: ${dataLength - pos} trailing bytes`);
  }
}

// ---------------------------------------------------------------------------
// Tensors

function byteSwap(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/** A caller's ArrayBuffer as a Uint8Array (E_DETACHED for a transferred one). */
function wholeArrayBuffer(b: ArrayBuffer): Uint8Array {
  try {
    return new Uint8Array(b);
  } catch (e) {
    throw new BnbError('E_DETACHED', `bytes is a detached ArrayBuffer (${(e as Error).message}): expected bytes that are still readable`);
  }
}

/** `bytes` as one Uint8Array, or E_ST_SIZE where the runtime's typed arrays cannot be that long. */
export function wholeBytes(bytes: ArrayBuffer, what: string): Uint8Array {
  try {
    return new Uint8Array(bytes);
  } catch (e) {
    throw new BnbError('E_ST_SIZE', `${what} has ${bytes.byteLength} bytes: more than one Uint8Array holds in this runtime (${(e as Error).message})`);
  }
}

/**
 * A StoredTensor over `bytes` without copying: the caller gives up `bytes`, an
 * ArrayBuffer or a Uint8Array at offset 0 of a buffer it owns (so typed views are aligned).
 */
export function storedTensorOwning(info: TensorInfo, bytes: Uint8Array | ArrayBuffer): StoredTensor {
  const buffer = bytes instanceof ArrayBuffer ? bytes : bytes.buffer;
  const byteOffset = bytes instanceof ArrayBuffer ? 0 : bytes.byteOffset;
  const what = `tensor ${JSON.stringify(info.name)}`;
  const bnb = TO_BNB.get(info.dtype);
  if (bnb === undefined) {
    const raw = TO_RAW.get(info.dtype);
    if (raw === undefined) fail('E_ST_DTYPE', `${what} dtype`, info.dtype, `one of ${ST_DTYPES.join(', ')}`);
    const data = bytes instanceof ArrayBuffer ? wholeBytes(bytes, what) : bytes;
    return { dtype: raw, shape: [...info.shape], data, device: 'cpu' };
  }
  const size = ITEMSIZE.get(info.dtype)!;
  const Data = arrayTypeOf(bnb);
  let data;
  try {
    data = new Data(buffer as ArrayBuffer, byteOffset, bytes.byteLength / size);
  } catch (e) {
    throw new BnbError('E_ST_SIZE', `${what} has ${bytes.byteLength / size} elements: more than one ${Data.name} holds in this runtime (${(e as Error).message})`);
  }
  if (!LITTLE_ENDIAN) byteSwap(new Uint8Array(buffer as ArrayBuffer, byteOffset, bytes.byteLength), size);
  return tensor(data, [...info.shape], bnb);
}

/** A TensorInfo, checked and copied (each field read once). */
function checkInfo(info: unknown): TensorInfo {
  if (!isPlainObject('info', info)) fail('E_ARGUMENT', 'info', info, 'a TensorInfo { name, dtype, shape, start, end }');
  const t = guard('info', () => ({ name: info.name, dtype: info.dtype, shape: info.shape, start: info.start, end: info.end }));
  if (typeof t.name !== 'string') fail('E_ARGUMENT', 'info', info, 'a TensorInfo { name, dtype, shape, start, end }');
  if (!isSafetensorsDType(t.dtype)) fail('E_ST_DTYPE', `tensor ${JSON.stringify(t.name)} dtype`, t.dtype, `one of ${ST_DTYPES.join(', ')}`);
  const shape = readShape(`tensor ${JSON.stringify(t.name)} shape`, t.shape, 'E_ST_SHAPE');
  if (!Number.isSafeInteger(t.start) || !Number.isSafeInteger(t.end) || (t.start as number) < 0 || (t.end as number) < (t.start as number)) {
    fail('E_ST_OFFSETS', `tensor ${JSON.stringify(t.name)} offsets`, [t.start, t.end], '0 <= start <= end');
  }
  return { name: t.name, dtype: t.dtype, shape, start: t.start as number, end: t.end as number };
}

/** A StoredTensor over (a copy of, aligned) the tensor's bytes. */
export function toStoredTensor(info: TensorInfo, bytes: Uint8Array): StoredTensor {
  info = checkInfo(info);
  bytes = checkBytes('bytes', bytes);
  const want = expectedBytes(info.dtype, info.shape);
  if (want === null || BigInt(bytes.byteLength) !== want || bytes.byteLength !== info.end - info.start) {
    throw new BnbError('E_ST_SIZE', `tensor ${JSON.stringify(info.name)}: ${bytes.byteLength} bytes given but ${info.dtype} ${show(info.shape)} with offsets [${info.start}, ${info.end}] needs ${want ?? 'more than 2^64'}`);
  }
  const copy = new Uint8Array(bytes.byteLength); // not bytes.slice(): a Node Buffer's slice is a view
  copy.set(bytes);
  return storedTensorOwning(info, copy);
}

/** The safetensors dtype of a StoredTensor (bnbjs dtype or raw dtype). */
export function safetensorsDTypeOf(t: StoredTensor): SafetensorsDType {
  if (typeof t !== 'object' || t === null) fail('E_ARGUMENT', 't', t, 'a Tensor or RawTensor');
  const dtype = guard('t.dtype', () => t.dtype);
  const st = typeof dtype === 'string' ? FROM_STORED.get(dtype) : undefined;
  if (st === undefined) fail('E_DTYPE', 't.dtype', dtype, `one of ${[...FROM_STORED.keys()].join(', ')}`);
  return st;
}

/**
 * Checks a StoredTensor for writing: its safetensors dtype, and the snapshot to
 * write (each field read once; the data a fresh view, see checkTensor).
 */
export function checkStoredTensor(argument: string, t: unknown): { dtype: SafetensorsDType; t: StoredTensor } {
  if (typeof t !== 'object' || t === null) fail('E_ARGUMENT', argument, t, 'a Tensor or RawTensor');
  const dtype = guard(`${argument}.dtype`, () => (t as StoredTensor).dtype as unknown);
  if (isDType(dtype)) {
    const c = checkTensor(argument, t);
    return { dtype: FROM_STORED.get(c.dtype)!, t: c };
  }
  if (!(RAW_DTYPES as readonly unknown[]).includes(dtype)) {
    fail('E_DTYPE', `${argument}.dtype`, dtype, `one of ${[...FROM_STORED.keys()].join(', ')}`);
  }
  const r = guard(argument, () => ({ shape: (t as RawTensor).shape as unknown, data: (t as RawTensor).data as unknown, device: (t as RawTensor).device as unknown }));
  const v = viewOf(r.data);
  if (v === null || v.kind !== 'Uint8Array') {
    throw new BnbError('E_DTYPE', `${argument}.data is a ${show(r.data)} but a raw ${show(dtype)} tensor holds its bytes in a Uint8Array`);
  }
  checkNotDetached(`${argument}.data`, r.data as Uint8Array);
  const shape = checkShape(`${argument}.shape`, r.shape);
  if (r.device !== undefined && r.device !== 'cpu') fail('E_ARGUMENT', `${argument}.device`, r.device, "'cpu'");
  const st = FROM_STORED.get(dtype as string)!;
  const want = numel(shape) * ITEMSIZE.get(st)!;
  if (v.byteLength !== want) {
    throw new BnbError('E_ST_SIZE', `${argument}.data has ${v.byteLength} bytes but ${show(dtype)} ${show(shape)} needs ${want}`);
  }
  return { dtype: st, t: { dtype: dtype as RawDType, shape, data: freshView(v) as Uint8Array, device: 'cpu' } };
}

/**
 * The tensor's little-endian bytes: the data itself where the platform is
 * little-endian (any typed array, to be addressed in bytes: a Uint8Array view of a
 * tensor over 4 GiB cannot be made in Node 20), else a byte-swapped copy.
 */
export function littleEndianBytes(t: StoredTensor): ArrayBufferView {
  if (LITTLE_ENDIAN || !isDType(t.dtype)) return t.data;
  const copy = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
  byteSwap(copy, t.data.BYTES_PER_ELEMENT);
  return copy;
}

// ---------------------------------------------------------------------------
// Writing

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** What a reader accepts: at most MAX_TENSORS tensors per file. */
export function checkTensorCount(count: number): void {
  if (count > MAX_TENSORS) {
    throw new BnbError('E_ST_TENSOR_COUNT', `tensors: ${count} is not accepted: expected at most ${MAX_TENSORS} tensors in one file (readers refuse more; shard the checkpoint)`);
  }
}

/** Checks a tensor name for writing. */
export function checkTensorName(name: unknown): string {
  if (typeof name !== 'string' || LONE_SURROGATE.test(name)) fail('E_ARGUMENT', 'tensor name', name, 'a string (well-formed Unicode)');
  if (name === '__metadata__') fail('E_ARGUMENT', 'tensor name', name, 'a name other than "__metadata__" (reserved for the metadata)');
  return name;
}

/** Checks metadata for writing: null or an object of strings; returns its entries in order. */
export function checkMetadata(metadata: unknown): [string, string][] | null {
  if (metadata === null || metadata === undefined) return null;
  if (!isPlainObject('metadata', metadata) || ArrayBuffer.isView(metadata)) {
    fail('E_ST_METADATA', 'metadata', metadata, 'null or an object of string values');
  }
  const entries = guard('metadata', () => Object.entries(metadata), 'E_ST_METADATA');
  for (const [k, v] of entries) {
    if (LONE_SURROGATE.test(k)) fail('E_ST_METADATA', 'metadata key', k, 'well-formed Unicode');
    if (typeof v !== 'string' || LONE_SURROGATE.test(v)) fail('E_ST_METADATA', `metadata[${JSON.stringify(k)}]`, v, 'a string (well-formed Unicode)');
  }
  return entries as [string, string][];
}

/** Compares by Unicode code points, i.e. the UTF-8 byte order that Rust's String ordering uses. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate (U+D800..DFFF) stands for a code point above U+FFFF: it sorts after U+E000..FFFF.
    const xs = x >= 0xd800 && x <= 0xdfff ? x + 0x2000 : x >= 0xe000 ? x - 0x800 : x;
    const ys = y >= 0xd800 && y <= 0xdfff ? y + 0x2000 : y >= 0xe000 ? y - 0x800 : y;
    return xs - ys;
  }
  return a.length - b.length;
}

/** The reference writer's data order: descending dtype (its enum order), then name. */
export function referenceOrder(a: { name: string; dtype: SafetensorsDType }, b: { name: string; dtype: SafetensorsDType }): number {
  return RANK.get(b.dtype)! - RANK.get(a.dtype)! || compareNames(a.name, b.name);
}

/** The header JSON as the reference writer prints it (serde_json, compact), tensors in the order given. */
export function headerJson(metadata: [string, string][] | null, tensors: readonly { name: string; dtype: string; shape: readonly number[]; start: number; end: number }[]): string {
  const parts: string[] = [];
  if (metadata !== null) {
    parts.push(`"__metadata__":{${metadata.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  for (const t of tensors) {
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${t.start},${t.end}]}`);
  }
  return `{${parts.join(',')}}`;
}

/**
 * The first 8 + N bytes of a file: the length and the header JSON padded with spaces
 * to a multiple of 8, or to exactly `size` bytes when given.
 */
export function encodeHeader(json: string, size?: number): Uint8Array {
  const text = UTF8_ENCODER.encode(json);
  const n = size ?? Math.ceil(text.length / 8) * 8;
  if (text.length > n) throw new BnbError('E_ARGUMENT', `the header needs ${text.length} bytes but ${n} were reserved`);
  if (n > MAX_HEADER_BYTES) {
    throw new BnbError('E_ST_HEADER_TOO_LARGE', `header length = ${n} is not accepted: expected at most ${MAX_HEADER_BYTES} bytes (too many tensors or too much metadata)`);
  }
  const out = new Uint8Array(8 + n).fill(0x20, 8 + text.length);
  new DataView(out.buffer).setUint32(0, n, true);
  out.set(text, 8);
  return out;
}

export interface PreparedEntry extends TensorInfo {
  /** the little-endian bytes (any typed array, addressed in bytes), the tensor's data where possible */
  bytes: ArrayBufferView;
}

/** Validates tensors and metadata and lays them out as the reference writer does. */
export function prepareSafetensors(tensors: Record<string, StoredTensor>, metadata: unknown): { header: Uint8Array; entries: PreparedEntry[]; dataLength: number } {
  if (!isPlainObject('tensors', tensors) || ArrayBuffer.isView(tensors)) {
    fail('E_ARGUMENT', 'tensors', tensors, 'an object of tensors by name');
  }
  const meta = checkMetadata(metadata);
  const entries: PreparedEntry[] = [];
  for (const [name, given] of guard('tensors', () => Object.entries(tensors))) {
    checkTensorName(name);
    const { dtype, t } = checkStoredTensor(`tensors[${JSON.stringify(name)}]`, given);
    entries.push({ name, dtype, shape: [...t.shape], start: 0, end: 0, bytes: littleEndianBytes(t) });
  }
  checkTensorCount(entries.length);
  entries.sort(referenceOrder);
  let offset = 0;
  for (const e of entries) {
    e.start = offset;
    offset += e.bytes.byteLength;
    e.end = offset;
  }
  return { header: encodeHeader(headerJson(meta, entries)), entries, dataLength: offset };
}

/** The options, copied (each read once). */
function checkOptions(opts: unknown, keys: readonly string[]): Record<string, unknown> {
  if (opts === undefined) return {};
  if (typeof opts !== 'object' || opts === null) fail('E_ARGUMENT', 'opts', opts, `an object with ${keys.join(', ')}`);
  for (const k of guard('opts', () => Object.keys(opts))) {
    if (!keys.includes(k)) fail('E_ARGUMENT', `opts.${k}`, guard(`opts.${k}`, () => (opts as Record<string, unknown>)[k]), `only the options ${keys.join(', ')}`);
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = guard(`opts.${k}`, () => (opts as Record<string, unknown>)[k]);
  return out;
}

/** Checks write options ({ metadata, force }). */
export function checkWriteOptions(opts: unknown): { metadata: Record<string, string> | null; force: boolean } {
  const o = checkOptions(opts, ['metadata', 'force']);
  if (o.force !== undefined && typeof o.force !== 'boolean') fail('E_ARGUMENT', 'opts.force', o.force, 'a boolean');
  checkMetadata(o.metadata);
  return { metadata: (o.metadata as Record<string, string> | null | undefined) ?? null, force: o.force === true };
}

/**
 * Tensors -> file bytes, as the reference writer lays them out: data sorted by
 * descending dtype then name, header padded with spaces to a multiple of 8.
 * Metadata keys keep the object's order (the reference writer's is its hash map's).
 */
export function serializeSafetensors(tensors: Record<string, StoredTensor>, opts?: { metadata?: Record<string, string> | null }): Uint8Array {
  const o = checkOptions(opts, ['metadata']);
  const { header, entries, dataLength } = prepareSafetensors(tensors, o.metadata);
  let out: Uint8Array;
  try {
    out = new Uint8Array(header.length + dataLength);
  } catch (e) {
    throw new BnbError('E_ST_SIZE', `the file would have ${header.length + dataLength} bytes: more than one Uint8Array holds in this runtime (${(e as Error).message}); write it to a path instead`);
  }
  out.set(header);
  let p = header.length;
  for (const e of entries) {
    out.set(new Uint8Array(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength), p);
    p += e.bytes.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Reading

/** Whole file in memory -> tensors (for browsers and Workers); validates everything. */
export function parseSafetensors(bytes: Uint8Array | ArrayBuffer): { tensors: Record<string, StoredTensor>; metadata: Record<string, string> | null } {
  const v = viewOf(bytes);
  if (!(isArrayBuffer(bytes) || v?.kind === 'Uint8Array')) fail('E_ARGUMENT', 'bytes', bytes, 'a Uint8Array or an ArrayBuffer');
  const b = v === null ? wholeArrayBuffer(bytes as ArrayBuffer) : checkBytes('bytes', bytes);
  const n = headerLength(b.subarray(0, 8), b.byteLength);
  const header = parseHeader(b.subarray(8, 8 + n), b.byteLength);
  const base = header.dataStart;
  const tensors: [string, StoredTensor][] = header.tensors.map((t) => [t.name, toStoredTensor(t, b.subarray(base + t.start, base + t.end))]);
  return { tensors: Object.fromEntries(tensors), metadata: header.metadata };
}

// The file module is loaded only when a path is given, through a specifier that bundlers
// do not follow, so that browser and Worker bundles never try to resolve node:fs.
const FILE_MODULE = './safetensors-file.js';

async function fileModule(): Promise<typeof import('./safetensors-file.js')> {
  try {
    return await import(/* @vite-ignore */ /* webpackIgnore: true */ FILE_MODULE);
  } catch (e) {
    const err = new BnbError('E_IO', `cannot load ${FILE_MODULE} (${e instanceof Error ? e.message : String(e)}): paths need a runtime with node:fs (Node, Deno, Bun); elsewhere pass the file's bytes`);
    err.cause = e;
    throw err;
  }
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) fail('E_ARGUMENT', 'path', path, 'a file path (a non-empty string)');
  return path;
}

/**
 * A path (Node/Deno/Bun: read tensor by tensor through a file handle, never the
 * whole file at once) or the file's bytes.
 */
export async function readSafetensors(source: string | Uint8Array | ArrayBuffer): Promise<{ tensors: Record<string, StoredTensor>; metadata: Record<string, string> | null }> {
  if (typeof source === 'string') {
    checkPath(source);
    return (await fileModule()).readSafetensorsFile(source);
  }
  return parseSafetensors(source as Uint8Array);
}

/**
 * Writes tensors to a path, byte for byte what serializeSafetensors returns, without
 * assembling the file in memory: a temporary name in the same folder, fsync, then
 * rename; refuses to overwrite unless force.
 */
/**
 * Writes tensors: `writeSafetensors(tensors, { metadata })` returns the file's bytes (any runtime);
 * `writeSafetensors(path, tensors, { metadata, force })` writes a file under a temporary name and
 * renames it, refusing to overwrite unless `force`.
 */
export function writeSafetensors(tensors: Record<string, StoredTensor>, opts?: { metadata?: Record<string, string> | null }): Uint8Array;
export function writeSafetensors(path: string, tensors: Record<string, StoredTensor>, opts?: { metadata?: Record<string, string> | null; force?: boolean }): Promise<void>;
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

async function writeFile(path: string, tensors: Record<string, StoredTensor>, opts?: { metadata?: Record<string, string> | null; force?: boolean }): Promise<void> {
  checkPath(path);
  const o = checkWriteOptions(opts);
  const prepared = prepareSafetensors(tensors, o.metadata); // validate before touching the file system
  return (await fileModule()).writePreparedFile(path, prepared, o.force);
}
