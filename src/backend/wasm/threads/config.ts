// How many threads the kernels use, and who can start them. The core knows no
// threading API: an entry point that can start workers registers a ThreadHost (the
// Node/Bun entry: worker_threads; the Deno, inline and browser entries: the web's
// Worker); everywhere else the count is 1.
import { fail } from '../../../errors.js';
import { envVar } from '../../../runtime/env.js';
import { wasmFeatures } from '../runtime/features.js';

/** What a worker is started with: the kernels' module and shared memory, and the job queue. */
export interface WorkerData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer;
  /** the kernel export of each function id in the job descriptors */
  names: string[];
  /** the queue's layout (queue.ts), passed so that the worker's code stays self-contained */
  layout: Record<string, number>;
  /** the worker's place in its pool: it takes jobs while the pool allows more workers than this */
  index: number;
  /** its slot's retirement count when it was started: when the slot's count moves on, the worker returns (between jobs) */
  epoch: number;
}

/** The builds with a threaded variant. */
export type ThreadedBuild = 'simd' | 'relaxed';

export interface WorkerHandle {
  terminate(): void;
  /** settles when the worker's thread has ended (where the host can tell) */
  exited?: Promise<unknown>;
  /**
   * posts a message the worker can take synchronously in the middle of its job loop (Node's
   * receiveMessageOnPort): how fresh outputs reach workers; absent where the host cannot
   */
  post?(message: unknown): void;
}

export interface ThreadHost {
  /** logical processors of the machine */
  cores(): number;
  /**
   * the threaded variant of a build (importing a shared memory): relaxed SIMD where the
   * host has it and the engine takes it, else SIMD; null where none can be loaded
   */
  module(build: ThreadedBuild): WebAssembly.Module | null;
  /** starts a worker serving the queue; `onError` hears of its failure (it then serves nothing) */
  spawn(data: WorkerData, onError: (e: unknown) => void): WorkerHandle;
  /** where live workers keep the process alive and cannot be unref'd (Deno): close a pool idle this many ms */
  idleMs?: number;
}

/** Threads used by default: the machine's, up to this many (memory-bound ops gain nothing past a few). */
export const DEFAULT_MAX_THREADS = 8;
/** The most threads any machine is asked for (the pool's job ring holds 64 jobs in flight, 3 per thread at most). */
export const MAX_THREADS = 256;

/**
 * The most threads setNumThreads and BNBJS_NUM_THREADS accept here: twice the
 * machine's logical processors, at least DEFAULT_MAX_THREADS, at most MAX_THREADS.
 * Each worker costs a thread and a few MB; more than the cores only queue.
 */
export function maxThreads(): number {
  const cores = host === null ? 1 : Math.floor(host.cores()) || 1;
  return Math.min(MAX_THREADS, Math.max(DEFAULT_MAX_THREADS, 2 * cores));
}

let host: ThreadHost | null = null;
let chosen: number | null = null;
let threshold = 1 << 20;
let stall = 20_000;

export function setThreadHost(h: ThreadHost): void {
  host = h;
}

let blocks: boolean | undefined;

/** Whether this thread may block in Atomics.wait, as a pool's calling thread does (a browser's main thread may not: it throws). */
function canBlock(): boolean {
  if (blocks === undefined) {
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 0);
      blocks = true;
    } catch {
      blocks = false;
    }
  }
  return blocks;
}

/** The host, where threads can run here: a registered host, SharedArrayBuffer, a thread that may block and wasm threads. */
export function threadHost(): ThreadHost | null {
  if (host === null || typeof SharedArrayBuffer !== 'function' || typeof Atomics?.wait !== 'function') return null;
  return canBlock() && wasmFeatures().threads ? host : null;
}

function checkCount(argument: string, n: unknown): number {
  const max = maxThreads();
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > max) {
    fail(
      'E_ARGUMENT',
      argument,
      n,
      `an integer from 1 to ${max} (maxThreads(): twice this machine's logical processors, at least ${DEFAULT_MAX_THREADS})`,
    );
  }
  return n;
}

const countListeners: (() => void)[] = [];

/** Called after each setNumThreads (the pools let surplus workers go). */
export function onThreadCountChange(f: () => void): void {
  countListeners.push(f);
}

/**
 * Sets the number of threads large ops use, the calling thread included (1: no
 * workers), at most maxThreads(). A lower count than before ends the surplus workers
 * now. Where threads are unavailable the kernels run on the calling thread whatever
 * this says. Results are the same bits for every count.
 */
export function setNumThreads(n: number): void {
  chosen = checkCount('numThreads', n);
  for (const f of countListeners) f();
}

/**
 * The threads large ops use: setNumThreads(), else BNBJS_NUM_THREADS, else the
 * machine's logical processors up to DEFAULT_MAX_THREADS; 1 where threads are unavailable.
 */
export function numThreads(): number {
  const h = threadHost();
  if (h === null) return 1;
  if (chosen !== null) return chosen;
  const env = envVar('BNBJS_NUM_THREADS');
  if (env !== undefined && env !== '') return checkCount('BNBJS_NUM_THREADS', Number(env));
  return Math.max(1, Math.min(DEFAULT_MAX_THREADS, Math.floor(h.cores()) || 1));
}

/** Below this much work (elements, or their equivalent) an op stays on the calling thread. */
export function setParallelThreshold(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) fail('E_ARGUMENT', 'parallelThreshold', n, 'a non-negative integer');
  threshold = n;
}

export function parallelThreshold(): number {
  return threshold;
}

/**
 * How long the calling thread waits for one job a worker has taken (ms) before it
 * gives the pool up: a worker that died in the middle of a job (terminated, or its
 * thread killed) would otherwise leave the call waiting forever. Jobs take
 * milliseconds, so the default (20 s) is only ever reached by a dead worker.
 */
export function setStallTimeout(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 1) fail('E_ARGUMENT', 'stallTimeout', ms, 'a positive integer number of milliseconds');
  stall = ms;
}

export function stallTimeout(): number {
  return stall;
}
