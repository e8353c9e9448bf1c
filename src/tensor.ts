import { BnbError, fail, show } from './errors.js';
import { guard, readShape } from './args.js';
import { DType, TypedArray, allocate, arrayTypeOf, checkDType, isDType } from './dtypes.js';
import { numberToBf16, numberToF16, bf16ToNumber, f16ToNumber } from './float16.js';
import { View, detached, freshView, viewOf } from './views.js';

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

/**
 * Memory that host tensors may view but that is not plain host memory: a backend's
 * kernel memory (the WebAssembly backend's resident tensors), registered by that
 * backend, so that this module knows none of them.
 */
export interface KernelMemory {
  /** The memory a buffer belongs to (one memory's buffer object changes as it grows), or null if not this backend's. */
  ownerOf(buffer: ArrayBufferLike): object | null;
  /** Whether `data`, whose bytes are `bytes` of such memory, is a live tensor's data (not freed, not scratch bytes). */
  isLive(data: unknown, bytes: Uint8Array): boolean;
}
const kernelMemories: KernelMemory[] = [];

export function registerKernelMemory(k: KernelMemory): void {
  kernelMemories.push(k);
}

/** The kernel memory a buffer belongs to (its identity across growth), or null for plain host memory. */
export function kernelMemoryOf(buffer: ArrayBufferLike): object | null {
  for (const k of kernelMemories) {
    const m = k.ownerOf(buffer);
    if (m !== null) return m;
  }
  return null;
}

/** Copies a tensor between the host and one device type (both directions); to 'cpu' it makes a new host tensor. */
export type DeviceMover = (t: Tensor, device: string) => Tensor;
/** Copies a device tensor to a new host tensor without blocking, where the backend can. */
export type DeviceReader = (t: Tensor) => Promise<Tensor>;
const movers = new Map<string, DeviceMover>();
const readers = new Map<string, DeviceReader>();

/** Registered by each device backend ('cuda', 'hpu') when it loads; `read`: its asynchronous readback, if it has one. */
export function registerDeviceMover(deviceType: string, m: DeviceMover, read?: DeviceReader): void {
  movers.set(deviceType, m);
  if (read) readers.set(deviceType, read);
  else readers.delete(deviceType);
}

/** t.device, checked to be a string ('cpu' where absent). */
function deviceOf(t: Tensor): string {
  const d = guard('t.device', () => t.device) ?? 'cpu';
  if (typeof d !== 'string') fail('E_DEVICE', 't.device', d, "a device string such as 'cpu'");
  return d;
}

/**
 * The tensor read back to the host, awaited: a new host tensor holding a fresh copy of
 * its data (never a view of the memory it lives in, a resident wasmTensor's or a
 * device's), from any device. A backend that can read without blocking does; the
 * others' synchronous copy is what the promise resolves to.
 */
export async function readTensor(t: Tensor): Promise<Tensor> {
  if (!isTensor(t)) fail('E_ARGUMENT', 't', t, 'a Tensor (see tensor())');
  const from = deviceOf(t);
  if (from === 'cpu') {
    const x = checkTensor('t', t);
    return tensor(x.data.slice() as TypedArray, [...x.shape], x.dtype);
  }
  const type = from.split(':')[0]!;
  const read = readers.get(type);
  if (read) return read(t);
  const m = movers.get(type);
  if (!m)
    throw new BnbError(
      'E_DEVICE',
      `t.device = ${show(from)} is not available in this runtime: expected 'cpu'${[...movers.keys()].map((k) => `, '${k}'`).join('')}`,
    );
  return m(t, 'cpu');
}

/**
 * toDevice, awaited: the tensor on `device`, read back to the host without blocking
 * where its backend can (to 'cpu' always a new tensor, as readTensor), then copied to
 * the device if that is not the host.
 */
export async function toDeviceAsync(t: Tensor, device: string): Promise<Tensor> {
  if (!isTensor(t)) fail('E_ARGUMENT', 't', t, 'a Tensor (see tensor())');
  if (typeof device !== 'string') fail('E_DEVICE', 'device', device, "'cpu', 'cuda', 'cuda:N', 'hpu' or 'hpu:N'");
  if (device === 'cpu') return readTensor(t);
  const from = deviceOf(t).split(':')[0]!;
  // from the host, or between two devices of one backend: its own copy; else through the host
  return toDevice(from === 'cpu' || from === device.split(':')[0] ? t : await readTensor(t), device);
}

/** The tensor on `device`: 'cpu', 'cuda', 'cuda:N', 'hpu', ... (a copy unless it is there already). */
export function toDevice(t: Tensor, device: string): Tensor {
  if (!isTensor(t)) fail('E_ARGUMENT', 't', t, 'a Tensor (see tensor())');
  if (typeof device !== 'string') fail('E_DEVICE', 'device', device, "'cpu', 'cuda', 'cuda:N', 'hpu' or 'hpu:N'");
  const from = guard('t.device', () => t.device) ?? 'cpu';
  if (typeof from !== 'string') fail('E_DEVICE', 't.device', from, "a device string such as 'cpu'");
  if (device === from) return t;
  const to = device.split(':')[0]!;
  const src = from.split(':')[0]!;
  const mover = (type: string) => {
    const m = movers.get(type);
    if (!m)
      throw new BnbError(
        'E_DEVICE',
        `device = ${show(type === to ? device : from)} is not available in this runtime: expected 'cpu'${[...movers.keys()].map((k) => `, '${k}'`).join('')}`,
      );
    return m;
  };
  // movers copy host data: they get a checked snapshot of it
  if (src === 'cpu') return mover(to)(checkTensor('t', t), device);
  if (to === 'cpu' || to === src) return mover(src)(t, device);
  return mover(to)(mover(src)(t, 'cpu'), device);
}

const METHODS: PropertyDescriptorMap = {
  to: {
    value(this: Tensor, device: string) {
      return toDevice(this, device);
    },
  },
  dispose: { value() {} },
};

/** checkTensor's snapshot: a host tensor whose methods live on its prototype (cheaper to make, once per tensor per op). */
class Checked implements Tensor {
  readonly device = 'cpu';
  constructor(
    readonly dtype: DType,
    readonly shape: number[],
    readonly data: TypedArray,
  ) {}
  to(device: string): Tensor {
    return toDevice(this, device);
  }

  dispose(): void {}
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(argument: string, shape: unknown): number[] {
  return readShape(argument, shape);
}

/**
 * Wraps data as a Tensor. The dtype is inferred from the typed array where that
 * is unambiguous; Uint16Array needs 'float16' or 'bfloat16'. A plain number
 * array is converted (default 'float32').
 */
export function tensor(data: TypedArray | number[], shape?: number[], dtype?: DType): Tensor {
  if (dtype !== undefined) checkDType('dtype', dtype);
  if (guard('data', () => Array.isArray(data))) {
    const dt = dtype ?? 'float32';
    if (dt === 'float8_e4m3fn')
      fail('E_DTYPE', 'dtype', dt, 'a dtype bnbjs can encode numbers in; for float8_e4m3fn pass a Uint8Array of its bytes');
    const values = readNumbers('data', data);
    const out = allocate(dt, values.length);
    const conv = dt === 'float16' ? numberToF16 : dt === 'bfloat16' ? numberToBf16 : (x: number) => x;
    for (let i = 0; i < values.length; i++) out[i] = conv(values[i]!);
    return tensor(out, shape ?? [values.length], dt);
  }
  const v = viewOf(data);
  if (v === null) {
    if (!ArrayBuffer.isView(data)) fail('E_ARGUMENT', 'data', data, 'a typed array or an array of numbers');
    fail('E_DTYPE', 'data', data, DATA_KINDS);
  }
  checkLive('data', data, v);
  const inferred = INFERRED[v.kind];
  let dt: DType;
  if (dtype === undefined) {
    if (inferred === undefined && v.kind === 'Uint16Array') {
      fail('E_DTYPE', 'dtype', dtype, `an explicit dtype for ${v.kind} ('float16' or 'bfloat16' for Uint16Array)`);
    }
    if (inferred === undefined) fail('E_DTYPE', 'data', data, DATA_KINDS);
    dt = inferred;
  } else {
    dt = dtype;
    const want = arrayTypeOf(dt);
    if (v.kind !== want.name) throw new BnbError('E_DTYPE', `data is a ${v.kind} but dtype ${show(dt)} needs a ${want.name}`);
  }
  const sh = checkShape('shape', shape ?? [v.length]);
  if (numel(sh) !== v.length) {
    throw new BnbError('E_SHAPE', `shape ${show(sh)} holds ${numel(sh)} elements but data has ${v.length}`);
  }
  return Object.defineProperties({ dtype: dt, shape: sh, data, device: 'cpu' }, METHODS) as Tensor;
}

const DATA_KINDS = "a Float32Array, Uint8Array, Int8Array, Int32Array, or a Uint16Array with dtype 'float16' or 'bfloat16'";
const INFERRED: Record<string, DType | undefined> = {
  Float32Array: 'float32',
  Uint8Array: 'uint8',
  Int8Array: 'int8',
  Int32Array: 'int32',
};

/** An array of numbers, copied element by element (each read once). */
function readNumbers(argument: string, a: unknown): number[] {
  const out = guard(argument, () => {
    const arr = a as unknown[];
    const n: unknown = arr.length;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return null;
    const values: number[] = [];
    for (let i = 0; i < n; i++) {
      const x: unknown = arr[i];
      if (typeof x !== 'number') return null;
      values.push(x);
    }
    return values;
  });
  if (out === null) fail('E_ARGUMENT', argument, a, 'a typed array or an array of numbers');
  return out;
}

/**
 * True for a view of a detached ArrayBuffer (transferred with postMessage or
 * structuredClone, or the old buffer of a WebAssembly.Memory that grew): it
 * reads as empty, which would otherwise pass for a shape mismatch.
 */
export function isDetached(v: ArrayBufferView): boolean {
  const g = viewOf(v);
  return g !== null && detached(g);
}

/** Data that is still readable: not detached, and in bnbjs's kernel memory only inside a live wasmTensor (by its geometry `v`). */
function checkLive(argument: string, data: unknown, v: View): void {
  if (detached(v)) {
    throw new BnbError(
      'E_DETACHED',
      `${argument} is a ${v.kind} over a detached ArrayBuffer (transferred to another thread or a WebAssembly ` +
        'memory that grew): expected data that is still readable; copy it before transferring the buffer',
    );
  }
  // a view of the kernels' memory is only data inside a live wasmTensor (else freed or scratch bytes, or another tensor's)
  const k = kernelMemories.find((k) => k.ownerOf(v.buffer) !== null);
  if (k !== undefined && !k.isLive(data, new Uint8Array(v.buffer, v.byteOffset, v.byteLength))) {
    throw new BnbError(
      'E_DETACHED',
      `${argument} is a ${v.kind} over bnbjs's kernel memory outside any live wasmTensor ` +
        '(one that was disposed, or a view made beyond its data): expected the data of a tensor that is not disposed',
    );
  }
}

export function checkNotDetached(argument: string, v: ArrayBufferView): void {
  const g = viewOf(v);
  if (g !== null) checkLive(argument, v, g);
}

export function isTensor(x: unknown): x is Tensor {
  if (typeof x !== 'object' || x === null) return false;
  try {
    const t = x as Tensor;
    if (typeof t.dtype !== 'string' || !Array.isArray(t.shape)) return false;
    // device tensors have no host data to look at
    const device: unknown = t.device;
    return (typeof device === 'string' && device !== 'cpu') || ArrayBuffer.isView(t.data);
  } catch {
    return false; // a getter or Proxy that throws: not a tensor
  }
}

/**
 * Checks that `t` is a well-formed CPU tensor and returns what ops use of it: a
 * snapshot, each field read once before it is checked (a getter that changes its
 * answer cannot slip past), the shape a plain copy and the data a fresh view of the
 * same bytes (never the caller's object, whose length or buffer may be overridden).
 */
export function checkTensor(argument: string, t: unknown): Tensor {
  if (typeof t !== 'object' || t === null) fail('E_ARGUMENT', argument, t, 'a Tensor (see tensor())');
  const x = t as Record<string, unknown>;
  const { dtype, rawShape, device } = guard(argument, () => ({
    dtype: x.dtype as unknown,
    rawShape: x.shape as unknown,
    device: x.device as unknown,
  }));
  if (typeof device === 'string' && device !== 'cpu') {
    // a device tensor: its host data is not ours to read (a CUDA tensor's getter says where it is)
    if (typeof dtype !== 'string' || !guard(`${argument}.shape`, () => Array.isArray(rawShape)))
      fail('E_ARGUMENT', argument, t, 'a Tensor (see tensor())');
    checkDType(`${argument}.dtype`, dtype);
    guard(`${argument}.data`, () => x.data);
    throw new BnbError('E_ARGUMENT', `${argument}.device = ${show(device)} is not accepted: expected 'cpu'`);
  }
  const data: unknown = guard(`${argument}.data`, () => x.data);
  const v = viewOf(data);
  if (typeof dtype !== 'string' || !guard(`${argument}.shape`, () => Array.isArray(rawShape)) || !ArrayBuffer.isView(data)) {
    fail('E_ARGUMENT', argument, t, 'a Tensor (see tensor())');
  }
  const dt = checkDType(`${argument}.dtype`, dtype);
  const want = arrayTypeOf(dt);
  if (v === null) fail('E_DTYPE', `${argument}.data`, data, `a ${want.name}`);
  checkLive(`${argument}.data`, data, v);
  if (v.kind !== want.name) {
    throw new BnbError('E_DTYPE', `${argument}.data is a ${v.kind} but ${argument}.dtype ${show(dt)} needs a ${want.name}`);
  }
  const shape = checkShape(`${argument}.shape`, rawShape);
  if (numel(shape) !== v.length) {
    throw new BnbError('E_SHAPE', `${argument}.shape ${show(shape)} holds ${numel(shape)} elements but ${argument}.data has ${v.length}`);
  }
  if (device !== undefined && device !== 'cpu') fail('E_ARGUMENT', `${argument}.device`, device, "'cpu'");
  return new Checked(dt, shape, freshView(v));
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
  float16: f16ToNumber,
  bfloat16: bf16ToNumber,
  float8_e4m3fn: e4m3fnToNumber,
};

/** Element values as a new Float32Array (16-bit and 8-bit floats decoded). */
export function toFloat32(t: Tensor): Float32Array {
  if (!isTensor(t)) fail('E_ARGUMENT', 't', t, 'a Tensor (see tensor())');
  const device = guard('t.device', () => t.device) ?? 'cpu';
  // a device tensor's data getter says where it is
  const x = device === 'cpu' ? checkTensor('t', t) : { dtype: guard('t.dtype', () => t.dtype), data: guard('t.data', () => t.data) };
  if (x.dtype === 'float32') return Float32Array.from(x.data);
  const dec = (isDType(x.dtype) ? DECODE[x.dtype] : undefined) ?? ((v: number) => v);
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = dec(x.data[i]!);
  return out;
}
