// Stored tensors (a bnbjs Tensor, or the raw bytes of a dtype bnbjs does not compute
// with) from and to the little-endian bytes of a safetensors data section.
import { BnbError, fail, show } from '../../errors.js';
import { guard, isPlainObject, readShape } from '../../args.js';
import { freshView, viewOf } from '../../views.js';
import { arrayTypeOf, isDType } from '../../dtypes.js';
import { Tensor, checkNotDetached, checkShape, checkTensor, numel, tensor } from '../../tensor.js';
import { FROM_STORED, ITEMSIZE, RAW_DTYPES, RawDType, SafetensorsDType, ST_DTYPES, TO_BNB, TO_RAW, isSafetensorsDType } from './dtypes.js';
import { TensorInfo, checkBytes, expectedBytes } from './header.js';

/** A tensor whose dtype bnbjs does not compute with: its raw little-endian bytes. */
export interface RawTensor {
  dtype: RawDType;
  shape: number[];
  data: Uint8Array;
  device: 'cpu';
}

/** Tensor for F32 F16 BF16 U8 I8 I32 F8_E4M3 (float32 float16 bfloat16 uint8 int8 int32 float8_e4m3fn), RawTensor for the others. */
export type StoredTensor = Tensor | RawTensor;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

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
export function wholeArrayBuffer(b: ArrayBuffer): Uint8Array {
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
    throw new BnbError(
      'E_ST_SIZE',
      `${what} has ${bytes.byteLength} bytes: more than one Uint8Array holds in this runtime (${(e as Error).message})`,
    );
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
    throw new BnbError(
      'E_ST_SIZE',
      `${what} has ${bytes.byteLength / size} elements: more than one ${Data.name} holds in this runtime (${(e as Error).message})`,
    );
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
  if (
    !Number.isSafeInteger(t.start) ||
    !Number.isSafeInteger(t.end) ||
    (t.start as number) < 0 ||
    (t.end as number) < (t.start as number)
  ) {
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
    throw new BnbError(
      'E_ST_SIZE',
      `tensor ${JSON.stringify(info.name)}: ${bytes.byteLength} bytes given but ${info.dtype} ${show(info.shape)} with offsets [${info.start}, ${info.end}] needs ${want ?? 'more than 2^64'}`,
    );
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
  const r = guard(argument, () => ({
    shape: (t as RawTensor).shape as unknown,
    data: (t as RawTensor).data as unknown,
    device: (t as RawTensor).device as unknown,
  }));
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
