// Device names, the device a call's tensors share, and BNBJS_BACKEND: what the op
// registry (src/ops/registry.ts) and the device backends agree on.
import { BnbError, fail, show } from './errors.js';
import { guard, isPlainObject } from './args.js';
import { envVar } from './runtime/env.js';

/** 'cpu' (the host: WebAssembly), 'cuda', 'hpu': the part of a device string before ':'. */
export type DeviceType = string;

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
 * BNBJS_BACKEND=wasm|cuda|hpu forces a backend (tests): a forced backend that can take
 * host tensors runs them (CUDA: copied in and out, see src/ops/registry.ts); 'hpu'
 * makes the (emulated) Gaudi backend available without a Gaudi device; 'wasm'
 * disables CUDA.
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
  if (backend !== null && backend !== 'wasm' && backend !== 'cuda' && backend !== 'hpu')
    fail('E_ARGUMENT', 'backend', backend, "'wasm', 'cuda', 'hpu' or null");
  forced = backend;
}
