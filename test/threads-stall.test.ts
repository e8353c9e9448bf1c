// A worker that dies in the middle of a job: the call does not wait forever. It
// fails with E_KERNEL after the stall timeout, the pool and its memory are given up,
// and the next op runs on a new pool with the right bytes.
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { dequantize4bit, quantize4bit, setNumThreads, tensor, wasmTensor } from '../src/index.js';
import { WorkerData, setParallelThreshold, setStallTimeout, setThreadHost, threadHost } from '../src/backend/wasm/threads/config.js';
import { poolFor, poolSize } from '../src/backend/wasm/threads/pool.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { setWasmBuild } from '../src/backend/wasm/runtime/instances.js';
import { sharedWasm } from '../src/backend/wasm/threads/shared.js';
import { Rng, randn } from './helpers/random.js';
import { error, onWasmBackend } from './helpers/util.js';

// Starts, takes the first job posted, and exits without finishing it.
const DYING = `
const { workerData: d } = require('node:worker_threads');
const i32 = new Int32Array(d.control), L = d.layout;
Atomics.add(i32, L.ready, 1);
Atomics.notify(i32, L.ready);
for (;;) {
  const c = Atomics.load(i32, L.claimed);
  if (c < Atomics.load(i32, L.posted) && Atomics.compareExchange(i32, L.claimed, c, c + 1) === c) process.exit(0);
}`;

describe('a worker dying mid-job', () => {
  onWasmBackend();
  const host = threadHost()!;
  afterAll(() => {
    setThreadHost(host);
    setStallTimeout(20_000);
    setParallelThreshold(1 << 20);
    setChunkElements(1 << 18);
    setNumThreads(2);
  });

  it('is E_KERNEL after the stall timeout, and the next op runs on a new pool', () => {
    setWasmBuild('simd');
    setNumThreads(1); // no pool yet: the dying host starts the first worker
    setParallelThreshold(1);
    setChunkElements(1 << 10);
    const x = tensor(randn(new Rng(5), 1 << 16));
    const [p, s] = quantize4bit(x); // made before the dying host
    const want = Buffer.from(dequantize4bit(p, s).data.buffer);
    setThreadHost({
      cores: host.cores,
      module: host.module,
      spawn(data: WorkerData) {
        const w = new Worker(DYING, { eval: true, workerData: data });
        w.unref();
        return { terminate: () => void w.terminate() };
      },
    });
    setStallTimeout(300);
    setNumThreads(2);
    const first = sharedWasm()!;
    const stuck = wasmTensor(p);
    expect(first.shared).not.toBeNull();
    expect(poolFor(first, 2).queue.awaitReady(1, 10_000)).toBe(true); // the dying worker waits for a job
    // the op is quick: repeat it until the worker (on a busy machine, not always
    // scheduled during one op) takes a job
    const t0 = Date.now();
    const e = error(() => {
      while (Date.now() - t0 < 10_000) dequantize4bit(p, s);
    });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(e).toMatchObject({
      code: 'E_KERNEL',
      message: expect.stringMatching(/a worker thread stopped responding: a job it took was not done after 300 ms/),
    });
    expect(first.abandoned).toBe(true);
    expect(sharedWasm()).not.toBe(first);
    expect(poolSize(first)).toBe(0);
    expect(error(() => dequantize4bit(stuck, s))).toMatchObject({
      code: 'E_KERNEL',
      message: expect.stringMatching(/given up after a worker thread died/),
    });
    setThreadHost(host);
    expect(Buffer.from(dequantize4bit(p, s).data.buffer)).toEqual(want);
  });
});
