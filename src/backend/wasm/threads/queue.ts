// The job queue shared by the calling thread and the workers: a SharedArrayBuffer
// holding two counters (jobs posted, jobs claimed), a ring of job descriptors and
// a done cell per descriptor. Jobs are numbered from 1; job s lives in descriptor
// s % RING until it is done. Whoever raises `claimed` from s - 1 to s runs job s, so
// each job runs exactly once, on whichever thread takes it: the kernels' inputs and
// outputs are in wasm memory, so where a job runs never changes a bit.
import { kernelsOf } from '../../abi.js';
import { KernelExports, KernelName } from '../runtime/exports.js';
import { QueueLayout, executeJob } from './serve.js';
import { MAX_THREADS } from './config.js';

/**
 * One kernel call: an export and its arguments (pointers into the shared memory, sizes, ids);
 * or 'touch' (id, from, to): the first touch of bytes [from, to) of fresh output `id`
 * (parallel.ts, prefaultedBuffer), which is no kernel and only ever posted to the pool.
 */
export type KernelCall = readonly [KernelName | 'touch', ...number[]];

const RING = 64;
const MAX_CALLS = 3; // a cast, a NaN/Inf scan and a kernel (int8QuantRows from bfloat16)
const MAX_ARGS = 16;
const DESC_F64 = 1 + MAX_CALLS * (2 + MAX_ARGS) + MAX_CALLS + 1;
const ERR_CHARS = 256;
const DONE = 8;
const DESC_BYTE = Math.ceil(((DONE + RING) * 4) / 8) * 8;
const ERR_BYTE = DESC_BYTE + RING * DESC_F64 * 8;
/** one Int32 per worker slot after the error texts: its retirement count (see Pool.resize) */
const EPOCHS = (ERR_BYTE + RING * ERR_CHARS * 2) / 4;

export const LAYOUT: QueueLayout = {
  posted: 0,
  claimed: 1,
  // workers that have started, and jobs they have run (tests, diagnostics)
  ready: 2,
  byWorkers: 3,
  // workers with an index below this take jobs; the others sleep until it changes; -1: closed
  allowed: 4,
  done: DONE,
  ring: RING,
  descByte: DESC_BYTE,
  descF64: DESC_F64,
  maxArgs: MAX_ARGS,
  resultAt: 1 + MAX_CALLS * (2 + MAX_ARGS),
  errorAt: 1 + MAX_CALLS * (2 + MAX_ARGS) + MAX_CALLS,
  errByte: ERR_BYTE,
  errChars: ERR_CHARS,
  // a worker checks this many times for work before sleeping (a few microseconds)
  spins: 2000,
  epochs: EPOCHS,
};

/** Most jobs in flight at once. */
export const MAX_IN_FLIGHT = RING;

/**
 * The kernel exports a job can name: the ABI table's WebAssembly functions that work on
 * memory (not heapBase or simd, which describe the build); a call's function id is the index here.
 */
export const KERNEL_NAMES: readonly KernelName[] = kernelsOf('wasm')
  .filter((k) => k.returns === 'void' || k.returns === 'index')
  .map((k) => k.name as KernelName);
const ID = new Map<string, number>([...KERNEL_NAMES.map((n, i) => [n, i] as const), ['touch', KERNEL_NAMES.length]]);

export class JobQueue {
  readonly control = new SharedArrayBuffer(EPOCHS * 4 + MAX_THREADS * 4);
  private readonly i32 = new Int32Array(this.control);
  private readonly f64 = new Float64Array(this.control, DESC_BYTE);
  private readonly err = new Uint16Array(this.control, ERR_BYTE);
  private last = 0;
  private readonly fns = new WeakMap<KernelExports, ((...a: number[]) => unknown)[]>();
  /** the calling thread's 'touch' (set by prefaultedBuffer while its jobs run) */
  touch: (id: number, from: number, to: number) => number = () => -1;

  /** Restarts the numbering while nothing is in flight, long before the counters could overflow. */
  renumber(): void {
    if (this.last < 2 ** 30) return;
    Atomics.store(this.i32, LAYOUT.posted, 0); // before `claimed`: a worker reads claimed, then posted
    Atomics.store(this.i32, LAYOUT.claimed, 0);
    for (let d = 0; d < RING; d++) Atomics.store(this.i32, DONE + d, 0);
    this.last = 0;
  }

  /** Posts a job; returns its number. The caller keeps fewer than RING jobs in flight. */
  post(calls: readonly KernelCall[]): number {
    if (calls.length > MAX_CALLS || calls.some((c) => c.length - 1 > MAX_ARGS || !ID.has(c[0]))) {
      throw new Error(
        `bnbjs internal error: a job holds at most ${MAX_CALLS} calls of ${MAX_ARGS} arguments to ${KERNEL_NAMES.join(', ')}`,
      );
    }
    const seq = this.last + 1;
    const b = (seq % RING) * DESC_F64;
    const f = this.f64;
    f[b] = calls.length;
    calls.forEach(([name, ...args], c) => {
      const o = b + 1 + c * (2 + MAX_ARGS);
      f[o] = ID.get(name)!;
      f[o + 1] = args.length;
      args.forEach((a, i) => (f[o + 2 + i] = a));
    });
    this.last = seq;
    Atomics.store(this.i32, LAYOUT.posted, seq);
    Atomics.notify(this.i32, LAYOUT.posted, 1);
    return seq;
  }

  /** The retirement count of worker slot `index`. */
  epoch(index: number): number {
    return Atomics.load(this.i32, EPOCHS + index);
  }

  /**
   * Tells the workers of slots `from` and up to return (each between two jobs: one that
   * has claimed a job runs it first) and wakes them to hear it. A worker started later in
   * such a slot gets the new count and stays.
   */
  retire(from: number, to: number): void {
    for (let i = from; i < to; i++) Atomics.add(this.i32, EPOCHS + i, 1);
    Atomics.notify(this.i32, LAYOUT.allowed);
    Atomics.notify(this.i32, LAYOUT.posted);
  }

  /** Lets the workers with an index below `count` take jobs, and wakes the parked ones to check. */
  allow(count: number): void {
    if (Atomics.exchange(this.i32, LAYOUT.allowed, count) === count) return;
    Atomics.notify(this.i32, LAYOUT.allowed); // parked workers check again
    Atomics.notify(this.i32, LAYOUT.posted); // and sleeping ones, which may have to park
  }

  /**
   * Makes every worker return from serveJobs (Deno cannot terminate a worker that
   * never yields); nothing may be in flight, and the queue is not used again.
   */
  close(): void {
    Atomics.store(this.i32, LAYOUT.allowed, -1);
    Atomics.notify(this.i32, LAYOUT.allowed); // parked workers
    this.post([]); // an empty job moves `posted`: a worker about to sleep on it cannot miss the news
    Atomics.notify(this.i32, LAYOUT.posted);
  }

  /** Takes a posted job nobody has taken; 0 if there is none. */
  claim(): number {
    for (;;) {
      const c = Atomics.load(this.i32, LAYOUT.claimed);
      if (c >= Atomics.load(this.i32, LAYOUT.posted)) return 0;
      if (Atomics.compareExchange(this.i32, LAYOUT.claimed, c, c + 1) === c) return c + 1;
    }
  }

  /** Runs a claimed job on this thread's kernels. */
  execute(k: KernelExports, seq: number): void {
    let fns = this.fns.get(k);
    if (!fns) {
      fns = KERNEL_NAMES.map((n) => k[n] as (...a: number[]) => unknown);
      fns.push((id, from, to) => this.touch(id, from, to));
      this.fns.set(k, fns);
    }
    executeJob(fns, seq, this.i32, this.f64, this.err, LAYOUT);
  }

  done(seq: number): boolean {
    return Atomics.load(this.i32, DONE + (seq % RING)) === seq;
  }

  /** Sleeps until job `seq` is done (another thread runs it) or `ms` have passed; true if it is done. */
  wait(seq: number, ms: number): boolean {
    const at = DONE + (seq % RING),
      end = Date.now() + ms;
    for (let v = Atomics.load(this.i32, at); v !== seq; v = Atomics.load(this.i32, at)) {
      const left = end - Date.now();
      if (left <= 0) return false;
      Atomics.wait(this.i32, at, v, left);
    }
    return true;
  }

  /** Workers started so far, and the jobs they ran. */
  counts(): { ready: number; byWorkers: number } {
    return { ready: Atomics.load(this.i32, LAYOUT.ready), byWorkers: Atomics.load(this.i32, LAYOUT.byWorkers) };
  }

  /** Waits up to `ms` for `n` workers to have started (tests: real concurrency from the first job). */
  awaitReady(n: number, ms: number): boolean {
    const end = Date.now() + ms;
    for (let r = Atomics.load(this.i32, LAYOUT.ready); r < n; r = Atomics.load(this.i32, LAYOUT.ready)) {
      if (Date.now() >= end) return false;
      Atomics.wait(this.i32, LAYOUT.ready, r, end - Date.now());
    }
    return true;
  }

  /** The return values of a done job's calls. */
  results(seq: number, calls: number): number[] {
    const b = (seq % RING) * DESC_F64 + LAYOUT.resultAt;
    return Array.from(this.f64.subarray(b, b + calls));
  }

  /** The error text of a done job, or null. */
  error(seq: number): string | null {
    const d = seq % RING,
      len = this.f64[d * DESC_F64 + LAYOUT.errorAt]!;
    return len > 0 ? String.fromCharCode(...this.err.subarray(d * ERR_CHARS, d * ERR_CHARS + len)) : null;
  }
}
