// The safetensors header, parsed with the reference implementation's validation.
//
// Format: 8 bytes little-endian u64 N, N bytes of UTF-8 JSON
//   {"__metadata__": {str: str}?, NAME: {"dtype": D, "shape": [..], "data_offsets": [s, e]}, ...}
// then the data section; offsets are relative to its start (8 + N).
import { BnbError, fail, show } from '../../errors.js';
import { checkNotDetached } from '../../tensor.js';
import { freshView, viewOf } from '../../views.js';
import { JsonNumber, JsonValue, parseJson, showJson } from '../../json/parse.js';
import { ITEMSIZE, SafetensorsDType, ST_DTYPES, isSafetensorsDType } from './dtypes.js';

/** One tensor of a header; start and end are byte offsets relative to the data section. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  start: number;
  end: number;
}

/** A TensorInfo as a new object (callers may change what they are given). */
export function copyInfo(t: TensorInfo): TensorInfo {
  return { name: t.name, dtype: t.dtype, shape: [...t.shape], start: t.start, end: t.end };
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

const UTF8_DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function checkFileSize(fileSize: unknown): number {
  if (typeof fileSize !== 'number' || !Number.isSafeInteger(fileSize) || fileSize < 0) {
    fail('E_ARGUMENT', 'fileSize', fileSize, 'a non-negative integer (bytes)');
  }
  return fileSize;
}

/** A Uint8Array argument as a fresh view of its bytes (its own length or buffer never consulted). */
export function checkBytes(argument: string, bytes: unknown): Uint8Array {
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
    throw new BnbError(
      'E_ST_HEADER_LENGTH',
      `header length = ${lo} is not accepted: 8 + ${lo} bytes run past the end of the file (${fileSize} bytes)`,
    );
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
export function expectedBytes(dtype: SafetensorsDType, shape: readonly number[]): bigint | null {
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
    throw new BnbError(
      'E_ST_HEADER_JSON',
      `${what} = ${showJson(entry)} is not accepted: expected an object with dtype, shape and data_offsets`,
    );
  }
  const dtype = entry.get('dtype');
  if (!isSafetensorsDType(dtype)) {
    throw new BnbError('E_ST_DTYPE', `${what}: dtype = ${showJson(dtype)} is not accepted: expected one of ${ST_DTYPES.join(', ')}`);
  }
  const shapeJ = entry.get('shape');
  const shape = Array.isArray(shapeJ) ? shapeJ.map(safeUint) : null;
  if (shape === null || shape.some((d) => d === null)) {
    throw new BnbError(
      'E_ST_SHAPE',
      `${what}: shape = ${showJson(shapeJ)} is not accepted: expected an array of non-negative integers (at most 2^53 - 1)`,
    );
  }
  const offJ = entry.get('data_offsets');
  const off = Array.isArray(offJ) && offJ.length === 2 ? offJ.map(safeUint) : null;
  if (off === null || off[0] === null || off[1] === null) {
    throw new BnbError(
      'E_ST_OFFSETS',
      `${what}: data_offsets = ${showJson(offJ)} is not accepted: expected [start, end], two non-negative integers within the file`,
    );
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
    throw new BnbError(
      'E_ST_HEADER_LENGTH',
      `header length = ${n} is not accepted: 8 + ${n} bytes run past the end of the file (${fileSize} bytes)`,
    );
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
      if (dims > MAX_SHAPE_ENTRIES) {
        // a limit: refused now
        throw new BnbError(
          'E_ST_SHAPE',
          `the header's shapes hold more than ${MAX_SHAPE_ENTRIES} dimensions in all (at tensor ${JSON.stringify(name)}): ` +
            `expected at most ${MAX_SHAPE_ENTRIES} (${MAX_SHAPE_ENTRIES / MAX_TENSORS} per tensor at the tensor limit)`,
        );
      }
      tensors.push(t);
    }
    return true;
  };
  const root = parseJson(text, {
    code: 'E_ST_HEADER_JSON',
    what: 'the header',
    expected: 'one JSON object',
    integers: true,
    maxRootKeys: MAX_TENSORS + 1, // + __metadata__
    onTooManyKeys: () => {
      throw new BnbError(
        'E_ST_TENSOR_COUNT',
        `the header lists more than ${MAX_TENSORS} tensors: expected at most ${MAX_TENSORS} in one file (shard larger checkpoints)`,
      );
    },
    limits: { arrayLength: MAX_SHAPE_DIMS, objectKeys: MAX_METADATA_ENTRIES, values: MAX_HEADER_VALUES },
    onLimit: (what, path) => {
      const where = path.length > 0 ? `tensor ${JSON.stringify(path[0])}` : 'the header';
      if (what === 'arrayLength' && path[0] !== '__metadata__' && path[1] === 'shape' && path.length === 2) {
        throw new BnbError('E_ST_SHAPE', `${where}: shape has more than ${MAX_SHAPE_DIMS} dimensions: expected at most ${MAX_SHAPE_DIMS}`);
      }
      if (what === 'objectKeys' && path.length === 1 && path[0] === '__metadata__') {
        throw new BnbError(
          'E_ST_METADATA',
          `__metadata__ has more than ${MAX_METADATA_ENTRIES} entries: expected at most ${MAX_METADATA_ENTRIES}`,
        );
      }
      if (what === 'values') {
        throw new BnbError(
          'E_ST_HEADER_JSON',
          `the header holds more than ${MAX_HEADER_VALUES} JSON values: expected at most ${MAX_HEADER_VALUES}`,
        );
      }
      throw new BnbError(
        'E_ST_HEADER_JSON',
        `${where}: ${path.slice(1).join('.') || 'the entry'} holds more than ` +
          `${what === 'arrayLength' ? `${MAX_SHAPE_DIMS} items` : `${MAX_METADATA_ENTRIES} keys`}: expected { dtype, shape, data_offsets }`,
      );
    },
    rootMember: (k, v) => member(k, v),
  });
  if (!(root instanceof Map)) {
    throw new BnbError('E_ST_HEADER_JSON', `the header = ${showJson(root)} is not accepted: expected a JSON object`);
  }
  if (invalid !== null) throw invalid;
  if (tensors.length > MAX_TENSORS) {
    throw new BnbError(
      'E_ST_TENSOR_COUNT',
      `the header lists ${tensors.length} tensors: expected at most ${MAX_TENSORS} in one file (shard larger checkpoints)`,
    );
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
    if (t.start === pos && t.end >= t.start && exactBytes(t)) {
      // the common case, without building messages
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
      throw new BnbError(
        'E_ST_OFFSETS',
        `${what}: ${offsets} is not accepted: it overlaps tensor ${JSON.stringify(prev!.name)} (bytes ${prev!.start} to ${prev!.end})`,
      );
    }
    if (t.start > pos) {
      const where = t.start > dataLength ? `, past the end of the data section (${dataLength} bytes)` : '';
      throw new BnbError(
        'E_ST_OFFSETS',
        prev === null
          ? `${what}: ${offsets} is not accepted: the first tensor must start at 0${where}`
          : `${what}: ${offsets} is not accepted: expected start ${pos}, where tensor ${JSON.stringify(prev.name)} ends (bytes ${pos} to ${t.start} belong to no tensor${where})`,
      );
    }
    const want = expectedBytes(t.dtype, t.shape);
    const got = t.end - t.start;
    if (want === null) {
      throw new BnbError(
        'E_ST_SIZE',
        `${what}: shape ${show(t.shape)} x ${t.dtype} overflows 64 bits: expected dtype size x product(shape) = end - start`,
      );
    }
    if (BigInt(got) !== want && t.end > dataLength) {
      throw new BnbError(
        'E_ST_OFFSETS',
        `${what}: ${offsets} is not accepted: end is past the end of the data section (${dataLength} bytes) and ${t.dtype} ${show(t.shape)} needs ${want} bytes`,
      );
    }
    if (BigInt(got) !== want) {
      throw new BnbError('E_ST_SIZE', `${what}: ${offsets} holds ${got} bytes but ${t.dtype} ${show(t.shape)} needs ${want}`);
    }
    pos = t.end;
    prev = t;
  }
  if (pos > dataLength) {
    throw new BnbError(
      'E_ST_INCOMPLETE',
      `the file is truncated: its tensors need ${pos} bytes of data but the data section has ${dataLength}`,
    );
  }
  if (pos < dataLength) {
    throw new BnbError(
      'E_ST_INCOMPLETE',
      `the data section has ${dataLength} bytes but the tensors cover ${pos}: ${dataLength - pos} trailing bytes`,
    );
  }
}
