// Writing the safetensors format to bytes: names, metadata and tensors checked, laid
// out as the reference writer does (data sorted by descending dtype, then by name;
// header padded with spaces to a multiple of 8).
import { BnbError, fail } from '../../errors.js';
import { guard, isPlainObject } from '../../args.js';
import { referenceOrder } from './dtypes.js';
import { MAX_HEADER_BYTES, MAX_TENSORS, TensorInfo } from './header.js';
import { StoredTensor, checkStoredTensor, littleEndianBytes } from './tensors.js';

const UTF8_ENCODER = new TextEncoder();

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** What a reader accepts: at most MAX_TENSORS tensors per file. */
export function checkTensorCount(count: number): void {
  if (count > MAX_TENSORS) {
    throw new BnbError(
      'E_ST_TENSOR_COUNT',
      `tensors: ${count} is not accepted: expected at most ${MAX_TENSORS} tensors in one file (readers refuse more; shard the checkpoint)`,
    );
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
    if (typeof v !== 'string' || LONE_SURROGATE.test(v))
      fail('E_ST_METADATA', `metadata[${JSON.stringify(k)}]`, v, 'a string (well-formed Unicode)');
  }
  return entries as [string, string][];
}

/** The header JSON as the reference writer prints it (serde_json, compact), tensors in the order given. */
export function headerJson(
  metadata: [string, string][] | null,
  tensors: readonly { name: string; dtype: string; shape: readonly number[]; start: number; end: number }[],
): string {
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
    throw new BnbError(
      'E_ST_HEADER_TOO_LARGE',
      `header length = ${n} is not accepted: expected at most ${MAX_HEADER_BYTES} bytes (too many tensors or too much metadata)`,
    );
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
export function prepareSafetensors(
  tensors: Record<string, StoredTensor>,
  metadata: unknown,
): { header: Uint8Array; entries: PreparedEntry[]; dataLength: number } {
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
    if (!keys.includes(k))
      fail(
        'E_ARGUMENT',
        `opts.${k}`,
        guard(`opts.${k}`, () => (opts as Record<string, unknown>)[k]),
        `only the options ${keys.join(', ')}`,
      );
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
export function serializeSafetensors(
  tensors: Record<string, StoredTensor>,
  opts?: { metadata?: Record<string, string> | null },
): Uint8Array {
  const o = checkOptions(opts, ['metadata']);
  const { header, entries, dataLength } = prepareSafetensors(tensors, o.metadata);
  let out: Uint8Array;
  try {
    out = new Uint8Array(header.length + dataLength);
  } catch (e) {
    throw new BnbError(
      'E_ST_SIZE',
      `the file would have ${header.length + dataLength} bytes: more than one Uint8Array holds in this runtime (${(e as Error).message}); write it to a path instead`,
    );
  }
  out.set(header);
  let p = header.length;
  for (const e of entries) {
    out.set(new Uint8Array(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength), p);
    p += e.bytes.byteLength;
  }
  return out;
}
