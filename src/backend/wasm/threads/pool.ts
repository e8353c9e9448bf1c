// The workers of one shared kernel memory, started on first use. They only ever
// take jobs from the queue, so the calling thread never waits for a worker to start
// (it runs the jobs itself meanwhile), and a worker that fails to start only means
// fewer hands: results are the same either way. A lower count retires the workers
// past it: each returns between two jobs and its thread ends. They are not
// terminated: termination is asynchronous, and a worker stopped in the middle of a
// job would leave that job undone forever.
import { WasmMemory } from '../runtime/memory.js';
import { WorkerHandle, numThreads, onThreadCountChange, threadHost } from './config.js';
import { JobQueue, KERNEL_NAMES, LAYOUT } from './queue.js';

export class Pool {
  readonly queue = new JobQueue();
  /** every worker started, in the order of their indices */
  private readonly workers: WorkerHandle[] = [];
  private readonly dead = new Set<WorkerHandle>();
  private active = 0;
  /** the first worker failure; after one, no more workers are started */
  failure: unknown = null;
  /** ops that have used the pool (the idle check's clock) */
  uses = 0;

  constructor(private readonly m: WasmMemory) {}

  /** Workers retired by a lower count whose threads may not have ended yet (where the host can tell). */
  readonly retired: Promise<unknown>[] = [];

  /**
   * Lets `count` workers take jobs (fewer after a failure), starting more if needed
   * and retiring the rest (between ops only: no job is in flight then).
   */
  resize(count: number): void {
    if (count < this.workers.length) {
      const gone = this.workers.splice(count);
      this.queue.retire(count, count + gone.length);
      for (const w of gone) {
        this.dead.delete(w);
        if (w.exited) this.retired.push(w.exited);
      }
    }
    const host = threadHost();
    while (host && this.failure === null && this.workers.length < count) {
      const shared = this.m.shared!;
      const index = this.workers.length;
      const data = {
        module: shared.module,
        memory: shared.memory,
        control: this.queue.control,
        names: [...KERNEL_NAMES],
        layout: LAYOUT,
        index,
        epoch: this.queue.epoch(index),
      };
      let w: WorkerHandle | null = null;
      const onError = (e: unknown) => {
        this.failure ??= e;
        if (w !== null) this.dead.add(w);
      };
      try {
        w = host.spawn(data, onError);
      } catch (e) {
        onError(e);
      }
      if (w === null || this.failure !== null) {
        w?.terminate();
        break;
      }
      this.workers.push(w);
    }
    this.active = Math.min(count, this.workers.length);
    this.queue.allow(this.active);
  }

  /**
   * Posts a message to every worker allowed to take jobs whose host can deliver one mid-loop
   * (WorkerHandle.post); returns how many got it.
   */
  broadcast(message: unknown): number {
    let sent = 0;
    for (const w of this.workers.slice(0, this.active)) {
      if (this.dead.has(w) || !w.post) continue;
      try {
        w.post(message);
        sent++;
      } catch {
        // not delivered: that worker's touch jobs leave their pages to the copy
      }
    }
    return sent;
  }

  /** Workers started and not retired (alive or not). */
  workerCount(): number {
    return this.workers.length;
  }

  /** Workers alive and allowed to take jobs. */
  size(): number {
    return this.workers.slice(0, this.active).filter((w) => !this.dead.has(w)).length;
  }

  /** Stops every worker (nothing may be in flight). */
  close(): void {
    this.queue.close();
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
    this.active = 0;
  }
}

const pools = new Map<WasmMemory, Pool>();

/**
 * Closes the pool once no op has started for a whole `ms`, where live workers would
 * keep the process alive (Deno). The check runs between ops (they are synchronous),
 * so the first one only notes the count; the next op starts a new pool and queue,
 * which the old workers, terminated asynchronously, never see.
 */
function closeWhenIdle(m: WasmMemory, p: Pool, ms: number): void {
  let seen = -1;
  const check = () => {
    if (pools.get(m) !== p) return;
    if (p.uses !== seen) {
      seen = p.uses;
      setTimeout(check, ms);
    } else closePool(m);
  };
  setTimeout(check, ms);
}

/** The pool of a shared memory with `threads - 1` workers (the calling thread is the other one). */
export function poolFor(m: WasmMemory, threads: number): Pool {
  let p = pools.get(m);
  if (!p) {
    pools.set(m, (p = new Pool(m)));
    const ms = threadHost()?.idleMs;
    if (ms !== undefined) closeWhenIdle(m, p, ms);
  }
  p.uses++;
  p.resize(threads - 1);
  return p;
}

// A lower thread count retires the surplus workers now, not at the next op.
onThreadCountChange(() => {
  const workers = Math.max(0, numThreads() - 1);
  for (const p of pools.values()) if (p.workerCount() > workers) p.resize(workers);
});

/** Stops the workers of a memory that is no longer used. */
export function closePool(m: WasmMemory): void {
  pools.get(m)?.close();
  pools.delete(m);
}

/** Workers now running for the memory (tests, diagnostics). */
export function poolSize(m: WasmMemory): number {
  return pools.get(m)?.size() ?? 0;
}

/**
 * Workers that have started in the pools now open, and the jobs they have run
 * (diagnostics, and tests that a runtime's threads really take part: workers may
 * start only once the creating thread yields to its event loop).
 */
export function threadStats(): { workers: number; workerJobs: number } {
  let workers = 0,
    workerJobs = 0;
  for (const p of pools.values()) {
    const c = p.queue.counts();
    workers += c.ready;
    workerJobs += c.byWorkers;
  }
  return { workers, workerJobs };
}
