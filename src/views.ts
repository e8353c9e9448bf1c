// A typed array as the engine sees it. Its kind, buffer, offset and length are read
// through the engine's own %TypedArray% getters, never through the object: a
// subclass or an own property can make `length` or `buffer` say anything, and a
// Proxy is no typed array at all. Ops then work on a fresh view of those bytes.
import type { TypedArray } from './dtypes.js';

const TA = Object.getPrototypeOf(Uint8Array.prototype) as object;
const getter = (key: PropertyKey) => Object.getOwnPropertyDescriptor(TA, key)!.get! as (this: unknown) => unknown;
const TAG = getter(Symbol.toStringTag);
const BUFFER = getter('buffer');
const BYTE_OFFSET = getter('byteOffset');
const BYTE_LENGTH = getter('byteLength');
const LENGTH = getter('length');
const DETACHED = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'detached')?.get as ((this: unknown) => boolean) | undefined;

const CTORS: Record<string, new (b: ArrayBufferLike, at: number, n: number) => ArrayBufferView> = {
  Float32Array,
  Float64Array,
  Uint16Array,
  Uint8Array,
  Int8Array,
  Int32Array,
  Uint32Array,
  Int16Array,
  Uint8ClampedArray,
};

export interface View {
  /** the constructor's name: 'Float32Array', 'Uint16Array', ... */
  kind: string;
  buffer: ArrayBufferLike;
  byteOffset: number;
  byteLength: number;
  length: number;
}

/** The geometry of a typed array (null for anything else: a DataView, a Proxy, an object with a typed array's prototype). */
export function viewOf(x: unknown): View | null {
  if (typeof x !== 'object' || x === null) return null;
  const kind = TAG.call(x);
  if (typeof kind !== 'string') return null;
  return {
    kind,
    buffer: BUFFER.call(x) as ArrayBufferLike,
    byteOffset: BYTE_OFFSET.call(x) as number,
    byteLength: BYTE_LENGTH.call(x) as number,
    length: LENGTH.call(x) as number,
  };
}

/** True for a view of a detached ArrayBuffer (it reads as empty). */
export function detached(v: View): boolean {
  if (v.byteLength !== 0) return false;
  if (DETACHED) {
    try {
      return DETACHED.call(v.buffer);
    } catch {
      return false; // a SharedArrayBuffer never detaches
    }
  }
  try {
    new Uint8Array(v.buffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

/** A new plain view of the same bytes (of a live, not detached, buffer). */
export function freshView(v: View): TypedArray {
  return new CTORS[v.kind]!(v.buffer, v.byteOffset, v.length) as TypedArray;
}

const AB_BYTE_LENGTH = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get! as (this: unknown) => number;

/** True for an ArrayBuffer (a brand check: a Proxy or look-alike is not one). */
export function isArrayBuffer(x: unknown): x is ArrayBuffer {
  if (typeof x !== 'object' || x === null) return false;
  try {
    AB_BYTE_LENGTH.call(x);
    return true;
  } catch {
    return false;
  }
}
