// Loading the optional CUDA addon (build/bnbjs_cuda.node, `npm run build:cuda`).
// Never throws: without the file, a driver or a GPU, bnbjs runs on WebAssembly
// and `reason` says why.
import { BnbError } from '../../errors.js';
import { nodeBuiltin } from '../../runtime/node-builtins.js';
import { KernelsOf } from '../abi.js';
import { forcedBackend } from '../../devices.js';

export interface CudaDeviceInfo {
  index: number;
  name: string;
  major: number;
  minor: number;
  totalMemory: number;
  multiProcessorCount: number;
}

export interface CudaProbe {
  driverVersion: number;
  runtimeVersion: number;
  devices: CudaDeviceInfo[];
  error?: string;
}

/**
 * The addon's ABI (native/cuda): device pointers are numbers, ids are DTYPE_ID and QTYPE_ID. The kernels are the
 * table's cuda entries (src/backend/abi.ts, which generates their C++ side); the runtime calls below are written by
 * hand in native/cuda/addon.cpp, as their bodies are CUDA runtime calls rather than one launcher each.
 */
export interface CudaAddon extends KernelsOf<'cuda'> {
  probe(): CudaProbe;
  setDevice(index: number): void;
  malloc(bytes: number): number;
  free(ptr: number): void;
  memset(ptr: number, byte: number, bytes: number): void;
  copyHtoD(dst: number, src: ArrayBufferView): void;
  copyDtoH(dst: ArrayBufferView, src: number): void;
  copyDtoD(dst: number, src: number, bytes: number): void;
  synchronize(): void;
  eventRecord(): number;
  eventElapsed(start: number, end: number): number;
  eventDestroy(e: number): void;
}

let loaded: { addon: CudaAddon | null; probe: CudaProbe | null; reason: string | null } | null = null;

interface NodeProcess {
  env?: Record<string, string | undefined>;
}

/** Forgets the loaded state (tests that change BNBJS_BACKEND). */
export function resetCudaAddon(): void {
  loaded = null;
}

/** The addon with at least one usable GPU, or null and the reason. */
export function cudaAddon(): { addon: CudaAddon | null; probe: CudaProbe | null; reason: string | null } {
  if (loaded) return loaded;
  const proc = (globalThis as { process?: NodeProcess }).process;
  if (forcedBackend() === 'wasm') return (loaded = { addon: null, probe: null, reason: 'disabled by BNBJS_BACKEND=wasm' });
  const { createRequire } = nodeBuiltin<{ createRequire(u: string): (p: string) => unknown }>('node:module');
  const { existsSync } = nodeBuiltin<{ existsSync(p: string): boolean }>('node:fs');
  const { fileURLToPath } = nodeBuiltin<{ fileURLToPath(u: URL): string }>('node:url');
  const path = proc?.env?.BNBJS_CUDA_ADDON ?? fileURLToPath(new URL('../../../build/bnbjs_cuda.node', import.meta.url));
  if (!existsSync(path)) {
    const checkout = existsSync(fileURLToPath(new URL('../../../scripts/build-cuda.mjs', import.meta.url)));
    return (loaded = { addon: null, probe: null, reason: notBuiltReason(path, checkout) });
  }
  let addon: CudaAddon;
  try {
    addon = createRequire(import.meta.url)(path) as CudaAddon;
  } catch (e) {
    return (loaded = { addon: null, probe: null, reason: `the CUDA addon failed to load: ${(e as Error).message}` });
  }
  const probe = addon.probe();
  if (!probe.devices.length) return (loaded = { addon: null, probe, reason: probe.error ?? 'no CUDA device' });
  return (loaded = { addon, probe, reason: null });
}

/**
 * Why there is no addon, and how to get one: a git checkout has the build script; an
 * installed package does not (package.json `files` ships no scripts/ or native/).
 */
function notBuiltReason(path: string, checkout: boolean): string {
  return (
    `the CUDA addon is not built (${path}): ` +
    (checkout
      ? 'npm run build:cuda (needs nvcc and cmake)'
      : 'the installed package has no CUDA sources; build it in a clone of the bnbjs repository (npm run build:cuda, needs nvcc and cmake) ' +
        `and copy its build/bnbjs_cuda.node to ${path}, or point BNBJS_CUDA_ADDON at it`)
  );
}

/** The addon, or a BnbError saying why CUDA is unavailable. */
export function requireCuda(): CudaAddon {
  const { addon, reason } = cudaAddon();
  if (!addon) throw new BnbError('E_DEVICE', `CUDA is not available: ${reason}`);
  return addon;
}

/** Runs a CUDA call, turning its errors into BnbError E_CUDA with CUDA's message. */
export function cudaCall<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof BnbError) throw e;
    throw new BnbError('E_CUDA', (e as Error).message);
  }
}
