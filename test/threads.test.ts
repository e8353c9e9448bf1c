// The worker pool: every threaded op gives the same bytes for 1, 2 and 3 threads
// and any chunk size (and the same as the scalar oracle); the pool falls back to the
// calling thread when it cannot start workers; idle workers never keep a process
// alive (unref'd, or the pool closed when idle where the host asks); a kernel failure
// on any thread is a BnbError and the pool keeps working.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  matmul4bit,
  numThreads,
  quantize4bit,
  quantizeBlockwise,
  setNumThreads,
  setWasmBuild,
  tensor,
  threadStats,
} from '../src/index.js';
import { maxThreads, setParallelThreshold, setThreadHost, threadHost } from '../src/backend/wasm/threads/config.js';
import { runChunks } from '../src/backend/wasm/threads/parallel.js';
import { castFloat } from '../src/backend/wasm/cast.js';
import { int8VectorwiseDequantCast, int8VectorwiseQuantCast } from '../src/backend/wasm/int8-cast.js';
import { closePool, poolFor, poolSize } from '../src/backend/wasm/threads/pool.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { sharedWasm } from '../src/backend/wasm/threads/shared.js';
import { wasm } from '../src/backend/wasm/runtime/instances.js';
import { DTYPE_ID, QTYPE_ID } from '../src/backend/abi.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { error, onWasmBackend } from './helpers/util.js';

const rng = new Rng(808);
const bytes = (t: Tensor | null) => (t === null ? Buffer.alloc(0) : Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
const i8 = (n: number) =>
  tensor(
    Int8Array.from({ length: n }, () => rng.int(-128, 127)),
    [n],
  );

// Inputs with odd sizes, n not a multiple of the blocksize, and every dtype.
const N = 20_011;
const x = randn(rng, N);
const inputs = (['float32', 'float16', 'bfloat16'] as const).map((d) => asDType(x, [N], d));
const f16 = asDType(randn(rng, 37 * 301), [37, 301], 'float16');
f16.data[5 * 301 + 7] = 0x4d00; // 20: an outlier column with threshold 6
const [qa, qb] = [i8(23 * 130), i8(301 * 130)].map((t) => tensor(t.data, [t.data.length / 130, 130]));
const W = tensor(randn(rng, 211 * 100), [211, 100]);
const A3 = tensor(randn(rng, 3 * 100), [3, 100]);
const bias = asDType(randn(rng, 211), [211], 'bfloat16');
const fp8 = tensor(
  Uint8Array.from({ length: 300 * 260 }, () => rng.int(0, 255) & 0xf7),
  [300, 260],
  'float8_e4m3fn',
);
const mmStats = [
  tensor(randn(rng, 23).map(Math.abs)),
  tensor(randn(rng, 301).map(Math.abs)),
  asDType(randn(rng, 301), [301], 'float16'),
] as const;
const tiles = tensor(
  randn(rng, 3 * 3).map((v) => Math.abs(v) + 0.1),
  [3, 3],
);

/** Every threaded op's outputs, as bytes. */
function outputs(): Buffer[] {
  const out: Tensor[] = [];
  for (const A of inputs) {
    for (const blocksize of [64, 128, 4096]) {
      for (const quantType of ['nf4', 'fp4'] as const) {
        const [p, s] = quantize4bit(A, { blocksize, quantType, compressStatistics: blocksize === 64 });
        out.push(p, s.absmax, dequantize4bit(p, s));
      }
      const [q, s8] = quantizeBlockwise(A, { blocksize: blocksize === 128 ? 256 : blocksize });
      out.push(q, s8.absmax, dequantizeBlockwise(q, s8));
    }
  }
  const [cb, rs, cols] = int8VectorwiseQuant(f16, { threshold: 6 });
  const acc = int8LinearMatmul(qa, qb);
  out.push(cb, rs, cols!, int8VectorwiseDequant(cb, rs), acc);
  out.push(int8MmDequant(acc, mmStats[0], mmStats[1], { bias: mmStats[2] }));
  out.push(int8LinearMatmul(tensor(qa.data.subarray(0, 130), [1, 130]), qb));
  for (const quantType of ['nf4', 'fp4'] as const) {
    const [pw, sw] = quantize4bit(W, { quantType, blocksize: 64, compressStatistics: true });
    out.push(
      gemv4bit(tensor(A3.data.subarray(0, 100), [1, 100]), pw, sw),
      matmul4bit(asDType(A3.data as Float32Array, [3, 100], 'bfloat16'), pw, sw, { bias }),
    );
  }
  out.push(dequantizeFp8(fp8, tiles, { blockSize: 128 }), dequantizeFp8(fp8, tensor(new Float32Array([0.75])), { dtype: 'float16' }));
  for (const A of inputs) for (const to of ['float32', 'float16', 'bfloat16'] as const) if (to !== A.dtype) out.push(castFloat(A, to));
  for (const w of [W, asDType(W.data as Float32Array, W.shape, 'bfloat16')]) {
    const [cw, sw] = int8VectorwiseQuantCast(w);
    out.push(cw, sw, int8VectorwiseDequantCast(cw, sw, 'bfloat16'), int8VectorwiseDequantCast(cw, sw, 'float16'));
  }
  return out.map(bytes);
}

describe('threads', () => {
  onWasmBackend();
  setNumThreads(2);
  const mt = sharedWasm()!; // the kernels on the shared memory (one per process)
  afterAll(() => {
    setNumThreads(2);
    setParallelThreshold(1 << 20);
    setChunkElements(1 << 18);
  });

  it('run on a shared memory, ops on one thread on a private one', () => {
    expect(threadHost()).not.toBeNull();
    expect(numThreads()).toBe(2);
    expect(mt.shared).not.toBeNull();
    expect(wasm().shared).toBeNull();
    setNumThreads(1);
    expect(sharedWasm()).toBeNull();
    setNumThreads(2);
    expect(sharedWasm()).toBe(mt);
    expect(error(() => setNumThreads(0))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(new RegExp(`numThreads = 0 .*1 to ${maxThreads()}`)),
    });
    expect(error(() => setNumThreads(1.5))).toMatchObject({ code: 'E_ARGUMENT' });
  });

  it('give the same bytes for 1, 2 and 3 threads, any chunk size, and the scalar oracle', () => {
    setWasmBuild('scalar');
    const oracle = outputs();
    setWasmBuild('simd');
    setParallelThreshold(0); // every op threaded, however small
    const runs: [number, number][] = [
      [1, 1 << 18],
      [2, 1 << 18],
      [3, 1 << 18],
      [2, 4096],
      [3, 999],
      [2, 1],
    ];
    const before = poolFor(mt, 2).queue.counts().byWorkers;
    for (const [threads, chunk] of runs) {
      setNumThreads(threads);
      setChunkElements(chunk);
      const q = poolFor(mt, threads).queue;
      expect(q.awaitReady(threads - 1, 20_000)).toBe(true); // workers take part from the first op
      const got = outputs();
      expect(got.length).toBe(oracle.length);
      got.forEach((b, i) => expect(b.equals(oracle[i]!), `${threads} threads, chunk ${chunk}: output ${i}`).toBe(true));
      if (threads > 1) expect(poolSize(mt)).toBe(threads - 1);
    }
    expect(poolFor(mt, 2).queue.counts().byWorkers - before).toBeGreaterThan(50);
  });

  it('report the first non-finite value whichever thread scans it', () => {
    setParallelThreshold(0);
    setNumThreads(3);
    setChunkElements(256);
    const y = x.slice();
    y[17_777] = NaN;
    y[18_000] = Infinity;
    expect(error(() => quantize4bit(tensor(y)))).toMatchObject({
      code: 'E_NON_FINITE',
      message: expect.stringMatching(/\(NaN\) at flat index 17777/),
    });
    expect(error(() => quantizeBlockwise(tensor(y)))).toMatchObject({
      code: 'E_NON_FINITE',
      message: expect.stringMatching(/flat index 17777/),
    });
    const h = asDType(randn(rng, 64 * 300), [64, 300], 'float16');
    h.data[40 * 300 + 3] = 0x7c00;
    expect(error(() => int8VectorwiseQuant(h))).toMatchObject({
      code: 'E_NON_FINITE',
      message: expect.stringMatching(/\(Infinity\) at flat index 12003/),
    });
  });

  it('turn a kernel failure on any thread into E_KERNEL, and keep working', () => {
    setParallelThreshold(0);
    setNumThreads(2);
    setChunkElements(1 << 18);
    const m = mt;
    const pool = poolFor(m, 2);
    // a job only a worker can take: the calling thread waits instead of claiming it
    const seq = pool.queue.post([['dequantize4bit', 0, 64, 64, QTYPE_ID.nf4, 0, DTYPE_ID.float32, 2 ** 32 - 64]]);
    expect(pool.queue.wait(seq, 10_000)).toBe(true);
    expect(pool.queue.error(seq)).toMatch(/out of bounds/);
    const bad = () =>
      runChunks(m, 2, {
        count: 8,
        slot: [64],
        load: () => {},
        calls: () => [['dequantize4bit', 0, 64, 64, QTYPE_ID.nf4, 0, DTYPE_ID.float32, 2 ** 32 - 64]],
        store: () => {},
      });
    expect(error(bad)).toMatchObject({
      code: 'E_KERNEL',
      message: expect.stringMatching(/a WebAssembly kernel failed in a job of the thread pool: .*out of bounds/),
    });
    expect(
      error(() =>
        runChunks(m, 1, { count: 1, slot: [64], load: () => {}, calls: () => [['firstNonFinite', 2 ** 32 - 8, 64, 0]], store: () => {} }),
      ),
    ).toMatchObject({ code: 'E_KERNEL', message: expect.stringMatching(/failed on the calling thread: .*out of bounds/) });
    expect(poolSize(m)).toBe(1);
    const [p, s] = quantize4bit(inputs[0]!, { quantType: 'nf4' });
    setNumThreads(1);
    const [p1, s1] = quantize4bit(inputs[0]!, { quantType: 'nf4' });
    expect(bytes(p).equals(bytes(p1)) && bytes(s.absmax).equals(bytes(s1.absmax))).toBe(true);
  });

  it('leave the static data unwritten (a worker that starts rewrites it)', () => {
    setParallelThreshold(0);
    const statics = () => [mt, wasm()].map((m) => Buffer.from(m.bytes(0, m.k.heapBase())));
    const before = statics();
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      outputs();
    }
    statics().forEach((b, i) => expect(b.equals(before[i]!)).toBe(true));
  });

  it('fall back to the calling thread when workers cannot start, with the same bytes', () => {
    setParallelThreshold(0);
    setChunkElements(4096);
    setNumThreads(1);
    const want = outputs();
    const m = mt,
      real = threadHost()!;
    let tries = 0;
    closePool(m); // the next threaded op starts a new pool, through this host
    setThreadHost({
      ...real,
      spawn: (_, onError) => {
        tries++;
        onError(new Error('no threads today'));
        return { terminate() {} };
      },
    });
    try {
      setNumThreads(3);
      outputs().forEach((b, i) => expect(b.equals(want[i]!), `output ${i}`).toBe(true));
      expect(poolSize(m)).toBe(0);
      expect(tries).toBe(1); // after a failure no more workers are tried
    } finally {
      setThreadHost(real);
      closePool(m);
    }
  });

  it("close a pool idle for the host's idleMs (Deno: Workers without unref), and start another on the next op", async () => {
    setParallelThreshold(0);
    setChunkElements(4096);
    setNumThreads(1);
    const [p1, s1] = quantize4bit(inputs[0]!, { quantType: 'fp4' });
    const m = mt,
      real = threadHost()!;
    let spawned = 0;
    closePool(m);
    setThreadHost({ ...real, idleMs: 20, spawn: (d, onError) => (spawned++, real.spawn(d, onError)) });
    try {
      setNumThreads(2);
      for (const round of [1, 2]) {
        expect(poolFor(m, 2).queue.awaitReady(1, 20_000)).toBe(true);
        const [p, s] = quantize4bit(inputs[0]!, { quantType: 'fp4' });
        expect(bytes(p).equals(bytes(p1)) && bytes(s.absmax).equals(bytes(s1.absmax)), `round ${round}`).toBe(true);
        expect(threadStats().workers).toBe(1);
        expect(spawned).toBe(round);
        for (const end = Date.now() + 20_000; poolSize(m) > 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
        expect(threadStats(), 'the idle pool closed').toEqual({ workers: 0, workerJobs: 0 });
      }
    } finally {
      setThreadHost(real);
      closePool(m);
    }
  });
});

describe('threads in a process of their own', () => {
  const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  const run = (code: string, env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', `import * as b from ${JSON.stringify(dist)};\n${code}`], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, ...env },
    });

  it('exits when done: idle workers do not keep it alive', () => {
    const t0 = Date.now();
    const r = run(
      `
      const A = b.tensor(new Float32Array(1 << 22).map((_, i) => Math.sin(i)));
      const [p, s] = b.quantize4bit(A, { quantType: 'nf4' });
      b.dequantize4bit(p, s);
      console.log(b.numThreads());`,
      { BNBJS_NUM_THREADS: '3' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('3');
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('BNBJS_NUM_THREADS: 1 makes no shared memory; a bad value is E_ARGUMENT', () => {
    const one = run(
      `
      const { sharedWasm } = await import(${JSON.stringify(fileURLToPath(new URL('../dist/backend/wasm/threads/shared.js', import.meta.url)))});
      b.quantize4bit(b.tensor(new Float32Array(1 << 21)));
      console.log(b.numThreads(), sharedWasm() === null);`,
      { BNBJS_NUM_THREADS: '1' },
    );
    expect(one.stdout.trim()).toBe('1 true');
    const bad = run('try { b.numThreads(); } catch (e) { console.log(e.code, e.message); }', { BNBJS_NUM_THREADS: 'many' });
    expect(bad.stdout).toMatch(
      new RegExp(
        `E_ARGUMENT BNBJS_NUM_THREADS = NaN is not accepted: expected an integer from 1 to ${Math.min(256, Math.max(8, 2 * availableParallelism()))}`,
      ),
    );
  });
});
