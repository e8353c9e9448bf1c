// Loading the optional CUDA addon (build/bnbjs_cuda.node, `npm run build:cuda`).
// Never throws: without the file, a driver or a GPU, bnbjs runs on WebAssembly
// and `reason` says why.
import { BnbError } from '../../errors.js';
import { nodeBuiltin } from '../../runtime/node-builtins.js';
import { forcedBackend } from '../registry.js';

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

/** The addon's ABI (native/cuda): device pointers are numbers; dtype ids 0 f32, 1 f16, 2 bf16; qtype 0 fp4, 1 nf4. */
export interface CudaAddon {
  probe(): CudaProbe;
  setDevice(index: number): void;
  malloc(bytes: number): number;
  free(ptr: number): void;
  memset(ptr: number, byte: number, bytes: number): void;
  copyHtoD(dst: number, src: ArrayBufferView): void;
  copyDtoH(dst: ArrayBufferView, src: number): void;
  copyDtoD(dst: number, src: number, bytes: number): void;
  synchronize(): void;
  /** Queues a kernel that waits this long on the GPU (benchmarks: hides the launch gap). */
  spin(microseconds: number): void;
  eventRecord(): number;
  eventElapsed(start: number, end: number): number;
  eventDestroy(e: number): void;
  quantize4bit(src: number, n: number, dtype: number, blocksize: number, qtype: number, packed: number, absmax: number): void;
  dequantize4bit(packed: number, n: number, blocksize: number, qtype: number, absmax: number, dtype: number, out: number): void;
  quantizeBlockwise(src: number, n: number, dtype: number, blocksize: number, code: number, q: number, absmax: number): void;
  dequantizeBlockwise(q: number, n: number, blocksize: number, code: number, absmax: number, dtype: number, out: number): void;
  addScalarF32(ptr: number, n: number, value: number): void;
  subtractScalarF32(src: number, n: number, value: number, dst: number): void;
  firstNonFinite(src: number, n: number, dtype: number): number;
  int8VectorwiseQuant(a: number, rows: number, cols: number, threshold: number, cb: number, stats: number): void;
  int8ColumnQuant(a: number, rows: number, cols: number, threshold: number, cat: number, stats: number): void;
  int8VectorwiseDequant(a: number, rows: number, cols: number, stats: number, out: number): void;
  int8LinearMatmul(a: number, m: number, k: number, b: number, n: number, out: number): void;
  int8MmDequant(a: number, rows: number, cols: number, rowStats: number, colStats: number, bias: number, biasKind: number, dtype: number, out: number): void;
  gemv4bit(a: number, m: number, k: number, adtype: number, packed: number, n: number, absmax: number, blocksize: number, qtype: number, bias: number, dtype: number, out: number): void;
  dequantizeFp8(w: number, rows: number, cols: number, row0: number, scale: number, scaleCols: number, blockRows: number, blockCols: number, dtype: number, out: number): void;
  /** dequantize4bit with a nested absmax (qabsmax uint8 per block, code2 f32[256], absmax2 f32 per blocksize2 blocks, offset):
   * one kernel, the bytes of dequantizeBlockwise(f32) + addScalarF32(offset) + dequantize4bit. */
  dequantize4bitNested(packed: number, n: number, blocksize: number, qtype: number, qabsmax: number, code2: number, absmax2: number, blocksize2: number, offset: number, dtype: number, out: number): void;
}

let loaded: { addon: CudaAddon | null; probe: CudaProbe | null; reason: string | null } | null = null;

interface NodeProcess { env?: Record<string, string | undefined> }

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
  return `the CUDA addon is not built (${path}): ` + (checkout
    ? 'npm run build:cuda (needs nvcc and cmake)'
    : 'the installed package has no CUDA sources; build it in a clone of the bnbjs repository (npm run build:cuda, needs nvcc and cmake) ' +
      `and copy its build/bnbjs_cuda.node to ${path}, or point BNBJS_CUDA_ADDON at it`);
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
