// What this runtime can use: WebAssembly features, the CUDA addon and its GPUs.
import { wasmBuild } from '../wasm/runtime.js';
import { cudaAddon, CudaDeviceInfo } from './cuda/addon.js';
import { forcedBackend } from './registry.js';
import { GaudiProbe } from './hpu/probe.js';
import { gaudi } from './hpu/backend.js';

export interface Probe {
  /** BNBJS_BACKEND, when set */
  forced: 'wasm' | 'cuda' | 'hpu' | null;
  wasm: { simd: boolean; relaxedSimd: boolean; threads: boolean; build: string };
  cuda: {
    available: boolean;
    /** why CUDA is not used, when it is not */
    reason: string | null;
    driverVersion: number | null;
    runtimeVersion: number | null;
    devices: CudaDeviceInfo[];
  };
  /** Intel Gaudi: devices, software version, the nibble rule; computed on WebAssembly (emulated) */
  hpu: GaudiProbe;
}

// Smallest modules that use each feature (a v128 result; i8x16.relaxed_swizzle; a shared memory).
const SIMD = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11];
const RELAXED = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 0, 253, 15, 65, 0, 253, 15, 253, 128, 2, 11];
const THREADS = [0, 97, 115, 109, 1, 0, 0, 0, 5, 4, 1, 3, 1, 1];

function validates(bytes: number[]): boolean {
  try {
    return WebAssembly.validate(new Uint8Array(bytes));
  } catch {
    return false;
  }
}

/** Reports the backends without throwing. */
export function probe(): Probe {
  let forced: Probe['forced'] = null;
  try {
    forced = forcedBackend();
  } catch {
    forced = null;
  }
  const { probe: p, reason } = cudaAddon();
  let build = 'unavailable';
  try {
    build = wasmBuild();
  } catch {
    // reported as unavailable
  }
  return {
    forced,
    wasm: { simd: validates(SIMD), relaxedSimd: validates(RELAXED), threads: validates(THREADS), build },
    cuda: {
      available: reason === null,
      reason,
      driverVersion: p?.driverVersion ?? null,
      runtimeVersion: p?.runtimeVersion ?? null,
      devices: p?.devices ?? [],
    },
    hpu: gaudi(),
  };
}
