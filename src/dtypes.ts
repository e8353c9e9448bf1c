import { BnbError, fail } from './errors.js';

export type DType = 'float32' | 'float16' | 'bfloat16' | 'uint8' | 'int8' | 'int32' | 'float8_e4m3fn';
export type FloatDType = 'float32' | 'float16' | 'bfloat16';
export type TypedArray = Float32Array | Uint16Array | Uint8Array | Int8Array | Int32Array;

export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'uint8', 'int8', 'int32', 'float8_e4m3fn'];
export const FLOAT_DTYPES: readonly FloatDType[] = ['float32', 'float16', 'bfloat16'];

const ITEMSIZE: Record<DType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  uint8: 1,
  int8: 1,
  int32: 4,
  float8_e4m3fn: 1,
};

type ArrayCtor = { new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): TypedArray; new (length: number): TypedArray };
const ARRAY_TYPE: Record<DType, ArrayCtor> = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int32: Int32Array,
  float8_e4m3fn: Uint8Array,
};

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

export function checkDType(argument: string, x: unknown): DType {
  if (!isDType(x)) fail('E_DTYPE', argument, x, `one of ${DTYPES.join(', ')}`);
  return x;
}

/** Bytes per element of `dtype` (E_DTYPE for a name that is not a DType, "constructor" included). */
export function itemsize(dtype: DType): number {
  return ITEMSIZE[checkDType('dtype', dtype)];
}

/** The typed array class that holds elements of `dtype` (16-bit floats as bit patterns). */
export function arrayTypeOf(dtype: DType): ArrayCtor {
  return ARRAY_TYPE[checkDType('dtype', dtype)];
}

/** A new zeroed typed array for `length` elements of `dtype`. */
export function allocate(dtype: DType, length: number): TypedArray {
  return new ARRAY_TYPE[checkDType('dtype', dtype)](length);
}

/** The same bytes seen as elements of `dtype` (byte length must divide evenly). */
export function reinterpret(bytes: Uint8Array, dtype: DType): TypedArray {
  const size = itemsize(dtype);
  if (bytes.byteLength % size !== 0) {
    throw new BnbError('E_STORAGE', `${bytes.byteLength} bytes cannot be viewed as ${dtype} (itemsize ${size})`);
  }
  if (bytes.byteOffset % size !== 0) bytes = bytes.slice();
  return new ARRAY_TYPE[dtype](bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
}

/** The dtype a typed array implies, or null where it is ambiguous (Uint16Array). */
export function inferDType(data: unknown): DType | null {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int32Array) return 'int32';
  return null;
}
