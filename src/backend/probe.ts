// What this runtime can use: WebAssembly features, the CUDA addon and its GPUs.
import { wasmBuild } from './wasm/runtime/instances.js';
import { wasmFeatures } from './wasm/runtime/features.js';
import { cudaAddon, CudaDeviceInfo } from './cuda/addon.js';
import { forcedBackend } from '../devices.js';
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
    wasm: { ...wasmFeatures(), build },
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
