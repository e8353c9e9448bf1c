// safetensors dtypes: their names, sizes, what bnbjs reads each as, and the reference
// writer's order (descending dtype, then name by code point).
import { fail } from '../../errors.js';
import { DType } from '../../dtypes.js';

export type SafetensorsDType =
  'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';
export type RawDType = 'float64' | 'int64' | 'int16' | 'uint64' | 'uint32' | 'uint16' | 'bool' | 'float8_e5m2';

/** The reference implementation's Dtype enum, in its order (the writer sorts by it, descending). */
export const ST_DTYPES: readonly SafetensorsDType[] = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
];
export const RANK: ReadonlyMap<string, number> = new Map<string, number>(ST_DTYPES.map((d, i) => [d, i]));
export const ITEMSIZE: ReadonlyMap<SafetensorsDType, number> = new Map<SafetensorsDType, number>([
  ['BOOL', 1],
  ['U8', 1],
  ['I8', 1],
  ['F8_E5M2', 1],
  ['F8_E4M3', 1],
  ['I16', 2],
  ['U16', 2],
  ['F16', 2],
  ['BF16', 2],
  ['I32', 4],
  ['U32', 4],
  ['F32', 4],
  ['F64', 8],
  ['I64', 8],
  ['U64', 8],
]);
/** read as a bnbjs Tensor */
export const TO_BNB: ReadonlyMap<SafetensorsDType, DType> = new Map<SafetensorsDType, DType>([
  ['F32', 'float32'],
  ['F16', 'float16'],
  ['BF16', 'bfloat16'],
  ['U8', 'uint8'],
  ['I8', 'int8'],
  ['I32', 'int32'],
  ['F8_E4M3', 'float8_e4m3fn'],
]);
/** read as a RawTensor (bytes) */
export const TO_RAW: ReadonlyMap<SafetensorsDType, RawDType> = new Map<SafetensorsDType, RawDType>([
  ['F64', 'float64'],
  ['I64', 'int64'],
  ['I16', 'int16'],
  ['U64', 'uint64'],
  ['U32', 'uint32'],
  ['U16', 'uint16'],
  ['BOOL', 'bool'],
  ['F8_E5M2', 'float8_e5m2'],
]);
/** a stored tensor's dtype (bnbjs or raw) -> its safetensors dtype */
export const FROM_STORED: ReadonlyMap<string, SafetensorsDType> = new Map<string, SafetensorsDType>([
  ...[...TO_BNB].map(([st, d]) => [d, st] as [string, SafetensorsDType]),
  ...[...TO_RAW].map(([st, d]) => [d, st] as [string, SafetensorsDType]),
]);
export const RAW_DTYPES: readonly RawDType[] = [...TO_RAW.values()];

export function isSafetensorsDType(x: unknown): x is SafetensorsDType {
  return typeof x === 'string' && RANK.has(x);
}

/** Bytes per element of a safetensors dtype. */
export function safetensorsItemsize(dtype: SafetensorsDType): number {
  const size = ITEMSIZE.get(dtype);
  if (size === undefined) fail('E_ST_DTYPE', 'dtype', dtype, `one of ${ST_DTYPES.join(', ')}`);
  return size;
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
