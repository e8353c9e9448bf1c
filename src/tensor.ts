import { BnbError, fail, show } from './errors.js';
import { DType, TypedArray, allocate, arrayTypeOf, checkDType, inferDType } from './dtypes.js';
import { numberToBf16, numberToF16, bf16ToNumber, f16ToNumber } from './float16.js';
import { memoryOf } from './wasm/memory.js';

/**
 * A dense, row-major tensor. float16/bfloat16 data are Uint16Array bit patterns.
 * Tensors on a GPU ('cuda:N') hold no host data; `to(device)` copies.
 */
export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
  device: string;
  /** A copy on another device ('cpu', 'cuda', 'cuda:N'), or this tensor if it is there. */
  to?(device: string): Tensor;
  /** Frees device memory now (no-op for host tensors). */
  dispose?(): void;
}

/** Copies a tensor between the host and one device type (both directions). */
export type DeviceMover = (t: Tensor, device: string) => Tensor;
const movers = new Map<string, DeviceMover>();

/** Registered by each device backend ('cuda', 'hpu') when it loads. */
export function registerDeviceMover(deviceType: string, m: DeviceMover): void {
  movers.set(deviceType, m);
}

/** The tensor on `device`: 'cpu', 'cuda', 'cuda:N', 'hpu', ... (a copy unless it is there already). */
export function toDevice(t: Tensor, device: string): Tensor {
  if (!isTensor(t)) fail('E_ARGUMENT', 't', t, 'a Tensor (see tensor())');
  const from = t.device ?? 'cpu';
  if (typeof device === 'string' && device === from) return t;
  const to = typeof device === 'string' ? device.split(':')[0]! : '';
  const src = from.split(':')[0]!;
  const mover = (type: string) => {
    const m = movers.get(type);
    if (!m) throw new BnbError('E_DEVICE', `device = ${show(type === to ? device : from)} is not available in this runtime: expected 'cpu'${[...movers.keys()].map((k) => `, '${k}'`).join('')}`);
    return m;
  };
  if (src === 'cpu') return mover(to)(t, device);
  if (to === 'cpu' || to === src) return mover(src)(t, device);
  return mover(to)(mover(src)(t, 'cpu'), device);
}

const METHODS: PropertyDescriptorMap = {
  to: { value(this: Tensor, device: string) { return toDevice(this, device); } },
  dispose: { value() {} },
};

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(argument: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail('E_SHAPE', argument, shape, 'an array of non-negative integers');
  }
  return [...shape];
}

/**
 * Wraps data as a Tensor. The dtype is inferred from the typed array where that
 * is unambiguous; Uint16Array needs 'float16' or 'bfloat16'. A plain number
 * array is converted (default 'float32').
 */
export function tensor(data: TypedArray | number[], shape?: number[], dtype?: DType): Tensor {
  if (dtype !== undefined) checkDType('dtype', dtype);
  if (Array.isArray(data)) {
    const dt = dtype ?? 'float32';
    if (dt === 'float8_e4m3fn') fail('E_DTYPE', 'dtype', dt, 'a dtype bnbjs can encode numbers in; for float8_e4m3fn pass a Uint8Array of its bytes');
    const out = allocate(dt, data.length);
    const conv = dt === 'float16' ? numberToF16 : dt === 'bfloat16' ? numberToBf16 : (x: number) => x;
    for (let i = 0; i < data.length; i++) out[i] = conv(data[i]!);
    return tensor(out, shape ?? [data.length], dt);
  }
  if (!ArrayBuffer.isView(data)) fail('E_ARGUMENT', 'data', data, 'a typed array or an array of numbers');
  checkNotDetached('data', data);
  const inferred = inferDType(data);
  let dt: DType;
  if (dtype === undefined) {
    if (inferred === null && data instanceof Uint16Array) {
      fail('E_DTYPE', 'dtype', dtype, `an explicit dtype for ${data.constructor.name} ('float16' or 'bfloat16' for Uint16Array)`);
    }
    if (inferred === null) {
      fail('E_DTYPE', 'data', data, 'a Float32Array, Uint8Array, Int8Array, Int32Array, or a Uint16Array with dtype \'float16\' or \'bfloat16\'');
    }
    dt = inferred;
  } else {
    dt = dtype;
    const want = arrayTypeOf(dt);
    if (!(data instanceof want)) {
      throw new BnbError('E_DTYPE', `data is a ${data.constructor.name} but dtype ${show(dt)} needs a ${want.name}`);
    }
  }
  const sh = checkShape('shape', shape ?? [data.length]);
  if (numel(sh) !== data.length) {
    throw new BnbError('E_SHAPE', `shape ${show(sh)} holds ${numel(sh)} elements but data has ${data.length}`);
  }
  return Object.defineProperties({ dtype: dt, shape: sh, data, device: 'cpu' }, METHODS) as Tensor;
}

/**
 * True for a view of a detached ArrayBuffer (transferred with postMessage or
 * structuredClone, or the old buffer of a WebAssembly.Memory that grew): it
 * reads as empty, which would otherwise pass for a shape mismatch.
 */
export function isDetached(v: ArrayBufferView): boolean {
  if (v.byteLength !== 0) return false;
  const b = v.buffer as ArrayBuffer & { detached?: boolean };
  if (typeof b.detached === 'boolean') return b.detached;
  try {
    new Uint8Array(b, 0, 0);
    return false;
  } catch {
    return true;
  }
}

export function checkNotDetached(argument: string, v: ArrayBufferView): void {
  if (isDetached(v)) {
    throw new BnbError('E_DETACHED', `${argument} is a ${v.constructor.name} over a detached ArrayBuffer (transferred to another thread or a WebAssembly ` +
      'memory that grew): expected data that is still readable; copy it before transferring the buffer');
  }
  // a view of the kernels' memory is only data inside a live wasmTensor (else freed or scratch bytes)
  if (memoryOf(v)?.addressOf(v, 0, v.byteLength) === null) {
    throw new BnbError('E_DETACHED', `${argument} is a ${v.constructor.name} over bnbjs's kernel memory outside any live wasmTensor ` +
      '(one that was disposed, or a view made beyond its data): expected the data of a tensor that is not disposed');
  }
}

export function isTensor(x: unknown): x is Tensor {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as Tensor;
  if (typeof t.dtype !== 'string' || !Array.isArray(t.shape)) return false;
  // device tensors have no host data to look at
  return (typeof t.device === 'string' && t.device !== 'cpu') || ArrayBuffer.isView(t.data);
}

/** Checks that `t` is a well-formed CPU tensor and returns it. */
export function checkTensor(argument: string, t: unknown): Tensor {
  if (!isTensor(t)) fail('E_ARGUMENT', argument, t, 'a Tensor (see tensor())');
  checkDType(`${argument}.dtype`, t.dtype);
  if (t.device === undefined || t.device === 'cpu') checkNotDetached(`${argument}.data`, t.data);
  const want = arrayTypeOf(t.dtype);
  if (!(t.data instanceof want)) {
    throw new BnbError('E_DTYPE', `${argument}.data is a ${t.data.constructor.name} but ${argument}.dtype ${show(t.dtype)} needs a ${want.name}`);
  }
  checkShape(`${argument}.shape`, t.shape);
  if (numel(t.shape) !== t.data.length) {
    throw new BnbError('E_SHAPE', `${argument}.shape ${show(t.shape)} holds ${numel(t.shape)} elements but ${argument}.data has ${t.data.length}`);
  }
  if (t.device !== undefined && t.device !== 'cpu') {
    throw new BnbError('E_ARGUMENT', `${argument}.device = ${show(t.device)} is not accepted: expected 'cpu'`);
  }
  return t;
}

/** The tensor's bytes, without copying. */
export function bytesOf(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function e4m3fnToNumber(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const mant = b & 7;
  if (exp === 0xf && mant === 7) return NaN;
  return exp === 0 ? sign * mant * 2 ** -9 : sign * (1 + mant / 8) * 2 ** (exp - 7);
}

const DECODE: Partial<Record<DType, (x: number) => number>> = {
  float16: f16ToNumber, bfloat16: bf16ToNumber, float8_e4m3fn: e4m3fnToNumber,
};

/** Element values as a new Float32Array (16-bit and 8-bit floats decoded). */
export function toFloat32(t: Tensor): Float32Array {
  if (!isTensor(t)) fail('E_ARGUMENT', 't', t, 'a Tensor (see tensor())');
  if ((t.device ?? 'cpu') === 'cpu') checkTensor('t', t); // a device tensor's data getter says where it is
  if (t.dtype === 'float32') return Float32Array.from(t.data);
  const dec = DECODE[t.dtype] ?? ((x: number) => x);
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = dec(t.data[i]!);
  return out;
}
