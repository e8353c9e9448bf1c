// The kernels on a shared memory that worker threads instantiate too: the selected
// build's threaded variant (it imports its memory; the same bits as every build).
// Resident tensors live there, and ops that run on threads.
import { numThreads, threadHost } from './config.js';
import { closePool } from './pool.js';
import { MAX_WASM_BYTES, WasmMemory } from '../runtime/memory.js';
import { instantiate, isGivenBuild, onWasmReset, wasmBuild } from '../runtime/instances.js';

let sharedKernels: WasmMemory | null = null;

/**
 * The shared kernels for ops that run on threads; null where no thread host offers
 * them, one thread is asked for, or the selected build is the scalar oracle or a module
 * given to init(). Ops on one thread use the private memory of wasm(): V8 copies
 * between a shared memory and ordinary arrays at half the speed of memcpy.
 */
export function sharedWasm(): WasmMemory | null {
  return numThreads() < 2 ? null : sharedKernelMemory();
}

/** The shared kernel memory whatever the thread count (resident tensors live there); null where there is none. */
export function sharedKernelMemory(): WasmMemory | null {
  const build = wasmBuild();
  if (build === 'scalar' || isGivenBuild(build)) return null;
  if (sharedKernels === null) {
    const module = threadHost()?.module(build === 'relaxed' ? 'relaxed' : 'simd');
    if (!module) return null;
    // the module's minimum (2 pages): more is grown as needed, within setWasmMemoryLimit
    const memory = new WebAssembly.Memory({ initial: 2, maximum: MAX_WASM_BYTES / 65536, shared: true });
    sharedKernels = new WasmMemory(instantiate(module, memory), { module, memory });
  }
  return sharedKernels;
}

/** Gives a shared memory up (a worker died mid-job): its pool stops and later threaded ops get a new one. */
export function abandonSharedMemory(m: WasmMemory): void {
  m.abandoned = true;
  closePool(m);
  if (sharedKernels === m) sharedKernels = null;
}

onWasmReset(() => {
  if (sharedKernels) closePool(sharedKernels);
  sharedKernels = null;
});
