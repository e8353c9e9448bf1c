// The code a worker runs, also used by the calling thread for the jobs it takes.
// Both functions are self-contained (no imports, no outer names): the Node and web
// hosts start workers from their source text, so they work from src/ and dist/
// alike and no bundler has to find a worker file.

/** Layout of the job queue (queue.ts); passed in, not imported. */
export interface QueueLayout {
  [key: string]: number;
  posted: number;
  claimed: number;
  ready: number;
  byWorkers: number;
  allowed: number;
  done: number;
  ring: number;
  descByte: number;
  descF64: number;
  maxArgs: number;
  resultAt: number;
  errorAt: number;
  errByte: number;
  errChars: number;
  spins: number;
  epochs: number;
}

type Kernel = (...args: number[]) => unknown;

/**
 * Runs job `seq` (its kernel calls, in order), records each call's return value
 * or the error's text, and marks it done. A descriptor is [calls, then per call:
 * function id, argument count, MAX_ARGS arguments], then the results and the
 * error's length.
 */
export function executeJob(fns: Kernel[], seq: number, i32: Int32Array, f64: Float64Array, err: Uint16Array, L: QueueLayout): void {
  const d = seq % L.ring,
    b = d * L.descF64;
  let message = '';
  try {
    const calls = f64[b]!;
    for (let c = 0, o = b + 1; c < calls; c++, o += 2 + L.maxArgs) {
      const args: number[] = [];
      for (let a = 0; a < f64[o + 1]!; a++) args.push(f64[o + 2 + a]!);
      const r = fns[f64[o]!]!(...args);
      f64[b + L.resultAt + c] = typeof r === 'number' ? r : 0;
    }
  } catch (e) {
    message = String((e as Error)?.message ?? e) || 'failed';
  }
  const at = d * L.errChars,
    len = Math.min(message.length, L.errChars);
  for (let i = 0; i < len; i++) err[at + i] = message.charCodeAt(i);
  f64[b + L.errorAt] = len;
  Atomics.store(i32, L.done + d, seq);
  Atomics.notify(i32, L.done + d);
}

/**
 * A worker's life: instantiate the kernels on the shared memory, then take jobs
 * (spinning briefly, then sleeping) until the pool closes; parked while its index
 * is not below the allowed count.
 */
export function serveJobs(
  data: {
    module: WebAssembly.Module;
    memory: WebAssembly.Memory;
    control: SharedArrayBuffer;
    names: string[];
    layout: QueueLayout;
    index: number;
    epoch: number;
  },
  execute: typeof executeJob,
  receive?: () => unknown,
): void {
  const L = data.layout;
  const instance = new WebAssembly.Instance(data.module, {
    env: {
      memory: data.memory,
      abort: () => {
        throw new Error('bnbjs kernel aborted');
      },
    },
  });
  const exports = instance.exports as Record<string, Kernel>;
  // the last function id: first touch of a fresh output's pages (parallel.ts, prefaultedBuffer). The
  // output comes by message (where the host can receive one without returning to the event loop:
  // `receive`); one not received yet is left to the thread that copies into it (-1).
  let target: { id: number; buf: SharedArrayBuffer | null } | null = null;
  const next = (): boolean => {
    let m: unknown;
    try {
      m = receive?.();
    } catch {
      m = undefined;
    }
    if (m === undefined) return false;
    target = m as { id: number; buf: SharedArrayBuffer | null };
    return true;
  };
  const touch = (id: number, from: number, to: number): number => {
    while (target === null || target.id !== id) if (!next()) return -1;
    if (target.buf === null) return -1;
    const u8 = new Uint8Array(target.buf);
    for (let i = from; i < to; i += 4096) u8[i] = 0;
    return 0;
  };
  const fns: Kernel[] = [...data.names.map((n) => exports[n]!), touch as Kernel];
  const i32 = new Int32Array(data.control);
  const f64 = new Float64Array(data.control, L.descByte);
  const err = new Uint16Array(data.control, L.errByte);
  Atomics.add(i32, L.ready, 1);
  Atomics.notify(i32, L.ready);
  let spins = 0;
  for (;;) {
    const allowed = Atomics.load(i32, L.allowed);
    if (allowed < 0) return; // the pool closed
    if (Atomics.load(i32, L.epochs + data.index) !== data.epoch) {
      // retired (the thread count was lowered): leave, so that the thread ends
      Atomics.sub(i32, L.ready, 1);
      Atomics.notify(i32, L.ready);
      return;
    }
    if (data.index >= allowed) {
      Atomics.wait(i32, L.allowed, allowed);
      continue;
    }
    const c = Atomics.load(i32, L.claimed),
      p = Atomics.load(i32, L.posted);
    if (c < p) {
      if (Atomics.compareExchange(i32, L.claimed, c, c + 1) === c) {
        execute(fns, c + 1, i32, f64, err, L);
        Atomics.add(i32, L.byWorkers, 1);
        spins = 0;
      }
    } else if (++spins > L.spins) {
      while (next()); // a finished output's reference goes before sleeping
      if (target !== null && (target as { buf: unknown }).buf === null) target = null;
      Atomics.wait(i32, L.posted, p);
      spins = 0;
    }
  }
}
