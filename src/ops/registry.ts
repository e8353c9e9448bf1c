// The backend registry, in the spirit of bitsandbytes' register_kernel(op, device):
// each op is declared once, each backend registers its kernels, and a call
// dispatches on the device of its tensor arguments.
import { BnbError, fail, show } from '../errors.js';
import { guard, isPlainObject } from '../args.js';
import { envVar } from '../runtime/env.js';

export const OPS = [
  'quantize4bit', 'dequantize4bit', 'quantizeBlockwise', 'dequantizeBlockwise',
  'int8VectorwiseQuant', 'int8DoubleQuant', 'int8VectorwiseDequant', 'int8LinearMatmul', 'int8MmDequant',
  'gemv4bit', 'dequantizeFp8',
] as const;
export type OpName = (typeof OPS)[number];

/** 'cpu' (WebAssembly), 'cuda', 'hpu': the part of a device string before ':'. */
export type DeviceType = string;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Kernel = (...args: any[]) => any;
const kernels = new Map<OpName, Map<DeviceType, Kernel>>(OPS.map((op) => [op, new Map()]));

/** Registers a backend's kernel for an op; returns a function that restores the previous one. */
export function registerKernel(op: OpName, deviceType: DeviceType, kernel: Kernel): () => void {
  const table = kernels.get(op);
  if (!table) throw new BnbError('E_ARGUMENT', `op = ${show(op)} is not accepted: expected one of ${OPS.join(', ')}`);
  if (typeof deviceType !== 'string' || !/^[a-z][a-z0-9-]*$/.test(deviceType)) fail('E_ARGUMENT', 'deviceType', deviceType, "a device type such as 'cpu', 'cuda' or 'hpu'");
  if (typeof kernel !== 'function') fail('E_ARGUMENT', 'kernel', kernel, 'a function');
  const previous = table.get(deviceType);
  table.set(deviceType, kernel);
  return () => (previous ? table.set(deviceType, previous) : table.delete(deviceType));
}

export function hasKernel(op: OpName, deviceType: DeviceType): boolean {
  return kernels.get(op)?.has(deviceType) ?? false;
}

export function deviceType(device: string): DeviceType {
  return device.split(':')[0]!;
}

/** Normalises 'cuda' to 'cuda:0'; 'cpu' stays. */
export function canonicalDevice(device: unknown): string {
  if (typeof device !== 'string' || !/^(cpu|cuda(:\d+)?|hpu(:\d+)?)$/.test(device)) {
    throw new BnbError('E_DEVICE', `device = ${show(device)} is not accepted: expected 'cpu', 'cuda', 'cuda:N', 'hpu' or 'hpu:N'`);
  }
  return device === 'cpu' || device.includes(':') ? device : `${device}:0`;
}

/**
 * bitsandbytes' is_on_gpu: the one device all the given tensors are on (null and
 * undefined entries skipped). CPU mixed with anything else, or two different
 * GPUs, is an error naming the tensors.
 */
export function commonDevice(tensors: Record<string, { device?: string } | null | undefined>): string {
  if (!isPlainObject('tensors', tensors)) fail('E_ARGUMENT', 'tensors', tensors, 'an object of tensors by name');
  const seen = new Map<string, string[]>();
  for (const [name, t] of guard('tensors', () => Object.entries(tensors))) {
    if (t === null || t === undefined) continue;
    // a non-object argument is on no device: the op's own checks name it
    const device = typeof t === 'object' ? guard(`${name}.device`, () => t.device) : undefined;
    const d = canonicalDevice(device ?? 'cpu');
    seen.set(d, [...(seen.get(d) ?? []), name]);
  }
  if (seen.size <= 1) return seen.keys().next().value ?? 'cpu';
  const list = [...seen].map(([d, names]) => `${names.join(', ')} on ${d}`).join('; ');
  if (seen.has('cpu')) throw new BnbError('E_DEVICE', `Input tensors need to be on the same device: ${list}`);
  throw new BnbError('E_DEVICE', `Input tensors need to be on the same GPU: ${list}`);
}

let forced: ForcedBackend | null | undefined;

export type ForcedBackend = 'wasm' | 'cuda' | 'hpu';

/**
 * BNBJS_BACKEND=wasm|cuda|hpu forces a backend (tests): 'cuda' routes CPU tensors
 * through the CUDA kernels; 'hpu' makes the (emulated) Gaudi backend available
 * without a Gaudi device; 'wasm' disables CUDA.
 */
export function forcedBackend(): ForcedBackend | null {
  if (forced === undefined) {
    const env = envVar('BNBJS_BACKEND');
    if (env !== undefined && env !== '' && env !== 'wasm' && env !== 'cuda' && env !== 'hpu') {
      throw new BnbError('E_ARGUMENT', `BNBJS_BACKEND = ${show(env)} is not accepted: expected 'wasm', 'cuda' or 'hpu'`);
    }
    forced = env || null;
  }
  return forced as ForcedBackend | null;
}

/** Overrides BNBJS_BACKEND (null: no forcing); any other name is E_ARGUMENT. */
export function setForcedBackend(backend: ForcedBackend | null): void {
  if (backend !== null && backend !== 'wasm' && backend !== 'cuda' && backend !== 'hpu') fail('E_ARGUMENT', 'backend', backend, "'wasm', 'cuda', 'hpu' or null");
  forced = backend;
}

/**
 * The kernel for an op on the device its tensors share. CPU tensors run on
 * WebAssembly unless BNBJS_BACKEND=cuda routes them through the CUDA kernels.
 */
export function dispatch(op: OpName, tensors: Record<string, { device?: string } | null | undefined>): Kernel {
  const device = commonDevice(tensors);
  let type = deviceType(device);
  if (type === 'cpu' && forcedBackend() === 'cuda') type = 'cuda-host';
  const k = kernels.get(op)!.get(type);
  if (!k) {
    throw new BnbError('E_DEVICE', `${op} has no kernel for ${type === 'cuda-host' ? 'the forced CUDA backend' : device}` +
      `${type.startsWith('cuda') ? ' (is the CUDA addon loaded? probe().cuda.reason says why not)' : ''}`);
  }
  return k;
}
