// Ops stream their tensors through wasm memory in chunks of whole blocks (or rows).
// runChunks runs such a plan on one thread, or pipelined over the pool: the calling
// thread copies chunk inputs in and outputs out (the caller's arrays are not shared
// with workers) and runs kernels when it has nothing to copy; workers run kernels.
// Each chunk is the same kernel calls on the same bytes either way, so the result
// never depends on the thread count.
import { BnbError } from '../../../errors.js';
import { WasmMemory, memoryOf } from '../runtime/memory.js';
import { wasm } from '../runtime/instances.js';
import { abandonSharedMemory, sharedWasm } from './shared.js';
import { numThreads, parallelThreshold, stallTimeout } from './config.js';
import { poolFor } from './pool.js';
import { KernelCall, MAX_IN_FLIGHT } from './queue.js';

export type { KernelCall } from './queue.js';

export interface ChunkPlan {
  /** chunks, processed (loaded and stored) in order */
  count: number;
  /** byte sizes of the regions each chunk in flight gets */
  slot: number[];
  /** byte sizes of regions shared by all chunks, read-only while they run */
  shared?: number[];
  /** calling thread: fills the shared regions */
  prepare?(s: number[]): void;
  /**
   * calling thread: copies chunk j's inputs into its regions p; may point an entry
   * of p at bytes already in wasm memory instead (a resident tensor: WasmMemory.place,
   * .target), and calls and store then see that pointer
   */
  load(j: number, p: number[], s: number[]): void;
  /** the kernel calls of chunk j (any thread: wasm memory only) */
  calls(j: number, p: number[], s: number[]): KernelCall[];
  /** calling thread: copies chunk j's outputs out; `results` are its calls' return values */
  store(j: number, p: number[], results: number[], s: number[]): void;
}

/**
 * The kernels for an op of `work` elements (or their equivalent), and the threads
 * it runs on: the memory of the first of `views` that is a resident tensor's, else the
 * shared memory and numThreads() from the threshold up where threads are available,
 * else the calling thread's private kernels.
 */
export function kernelsFor(work: number, ...views: (ArrayBufferView | null | undefined)[]): { m: WasmMemory; threads: number } {
  // an op on a resident tensor runs in the memory that holds it, so nothing is copied
  for (const v of views) {
    const own = v ? memoryOf(v) : null;
    if (own && own.addressOf(v!, 0, v!.byteLength) !== null) {
      if (own.abandoned) {
        throw new BnbError(
          'E_KERNEL',
          'this wasmTensor lives in a shared memory given up after a worker thread died: copy its data (it is readable) into a new wasmTensor',
        );
      }
      return { m: own, threads: own.shared && work >= parallelThreshold() ? numThreads() : 1 };
    }
  }
  const threads = work >= parallelThreshold() ? numThreads() : 1;
  const shared = threads > 1 ? sharedWasm() : null;
  return shared ? { m: shared, threads } : { m: wasm(), threads: 1 };
}

function kernelError(cause: unknown, where: string): BnbError {
  const e = new BnbError('E_KERNEL', `a WebAssembly kernel failed ${where}: ${(cause as Error)?.message ?? cause}`);
  e.cause = cause;
  return e;
}

/**
 * A job taken by a worker did not finish in time: the worker is taken to be dead.
 * The memory is given up (its pool stopped, ops move to a new one), since a worker
 * that was only stalled could still write into it later.
 */
function stalled(m: WasmMemory): BnbError {
  abandonSharedMemory(m);
  return new BnbError(
    'E_KERNEL',
    `a worker thread stopped responding: a job it took was not done after ${stallTimeout()} ms (the worker died or ` +
      'was terminated mid-job); the thread pool and its shared memory were given up and later ops start a new one' +
      `${m.residentBytes() > 0 ? ' (wasmTensors in the old memory can no longer be used)' : ''}`,
  );
}

function runHere(m: WasmMemory, calls: readonly KernelCall[]): number[] {
  try {
    const k = m.k as unknown as Record<string, (...a: number[]) => unknown>;
    return calls.map(([name, ...args]) => Number(k[name]!(...args) ?? 0));
  } catch (e) {
    throw kernelError(e, 'on the calling thread');
  }
}

export function runChunks(m: WasmMemory, threads: number, plan: ChunkPlan): void {
  const shared = plan.shared ?? [];
  const inFlight = threads > 1 ? Math.max(1, Math.min(MAX_IN_FLIGHT, 3 * threads, plan.count)) : 1;
  const ptrs = m.scratch(...shared, ...Array.from({ length: inFlight }, () => plan.slot).flat());
  const s = ptrs.slice(0, shared.length);
  const slot = (j: number) =>
    ptrs.slice(shared.length + (j % inFlight) * plan.slot.length, shared.length + ((j % inFlight) + 1) * plan.slot.length);
  plan.prepare?.(s);
  if (threads <= 1 || plan.count <= 1) {
    for (let j = 0; j < plan.count; j++) {
      const p = slot(j);
      plan.load(j, p, s);
      plan.store(j, p, runHere(m, plan.calls(j, p, s)), s);
    }
    return;
  }
  const pool = poolFor(m, threads);
  const q = pool.queue;
  q.renumber();
  const seqs: number[] = [],
    ncalls: number[] = [],
    ps: number[][] = [];
  let loaded = 0,
    stored = 0;
  try {
    while (stored < plan.count) {
      if (loaded < plan.count && loaded - stored < inFlight) {
        const p = (ps[loaded] = slot(loaded));
        plan.load(loaded, p, s);
        const calls = plan.calls(loaded, p, s);
        ncalls.push(calls.length);
        seqs.push(q.post(calls));
        loaded++;
        continue;
      }
      const seq = seqs[stored]!;
      if (!q.done(seq)) {
        const c = q.claim(); // rather than wait, run a job nobody has taken
        if (c > 0) q.execute(m.k, c);
        else if (!q.wait(seq, stallTimeout())) throw stalled(m);
        continue;
      }
      const err = q.error(seq);
      if (err !== null) throw kernelError(err, 'in a job of the thread pool');
      plan.store(stored, ps[stored]!, q.results(seq, ncalls[stored]!), s);
      stored++;
    }
  } catch (e) {
    // every posted job finishes before the scratch is laid out again (unless the memory was given up)
    for (let j = stored; j < loaded && !m.abandoned; j++) {
      while (!q.done(seqs[j]!)) {
        const c = q.claim();
        if (c > 0) q.execute(m.k, c);
        else if (!q.wait(seqs[j]!, stallTimeout())) throw stalled(m);
      }
    }
    throw e;
  }
}

/** Bytes of a fresh output each 'touch' job first touches. */
const TOUCH_BYTES = 1 << 22;
let outputs = 0;

/**
 * A new SharedArrayBuffer of `bytes` whose pages the pool's threads have first touched,
 * each its share (the kernel's zeroing of a fresh page is the cost of a new output, and
 * it is paid on every thread at once rather than by the calling thread's copy); null
 * where no pool here can take part (one thread, no shared kernels, no worker that
 * receives messages mid-loop: Node and Bun's worker_threads can, the web's Worker cannot).
 * The bytes are zeros, as a new ArrayBuffer's.
 */
export function prefaultedBuffer(bytes: number): SharedArrayBuffer | null {
  const threads = numThreads();
  const m = threads > 1 ? sharedWasm() : null;
  if (m === null || m.abandoned) return null;
  const pool = poolFor(m, threads);
  const buf = new SharedArrayBuffer(bytes);
  const id = ++outputs;
  if (pool.broadcast({ id, buf }) === 0) return buf; // no worker can take it: the copy touches the pages
  const q = pool.queue;
  const u8 = new Uint8Array(buf);
  q.touch = (i, from, to) => {
    if (i !== id) return -1;
    for (let b = from; b < to; b += 4096) u8[b] = 0;
    return 0;
  };
  q.renumber();
  const count = Math.ceil(bytes / TOUCH_BYTES);
  const seqs: number[] = [];
  try {
    for (let j = 0, waited = 0; waited < count;) {
      if (j < count && j - waited < MAX_IN_FLIGHT) {
        seqs.push(q.post([['touch', id, j * TOUCH_BYTES, Math.min(bytes, (j + 1) * TOUCH_BYTES)]]));
        j++;
        continue;
      }
      const seq = seqs[waited]!;
      if (!q.done(seq)) {
        const c = q.claim();
        if (c > 0) q.execute(m.k, c);
        else if (!q.wait(seq, stallTimeout())) throw stalled(m);
        continue;
      }
      waited++;
    }
  } finally {
    q.touch = () => -1;
    pool.broadcast({ id, buf: null }); // workers let the output go before they sleep
  }
  return buf;
}
