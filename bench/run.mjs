// bnbjs benchmark: 4-bit and 8-bit blockwise ops on a 4096x14336 tensor, int8 GEMM,
// 4-bit GEMV and FP8 dequantization, on 1 thread and on all threads (numThreads(),
// or --threads N). Figures: Gelem/s and GB/s (each input byte read once + each
// output byte written once), the ratio to a memcpy of the f32 tensor (TypedArray.set,
// one thread) measured in the same run, and the ratio to the native baseline on as
// many threads.
//   api      the public functions, outputs allocated by the call (page faults included)
//   api+out  the public functions writing into a preallocated `out` tensor
//   resident the public functions on wasmTensor inputs and `out` (in the shared kernel
//            memory: nothing copied in or out; where the runtime has one)
//   kernel   the WebAssembly kernels alone on data resident in wasm memory (threads:
//            the same chunks of whole blocks the ops hand to the pool)
// The native C++ baseline (bench/native/baseline.cpp, g++ -O3 -march=native -fopenmp)
// runs in the same invocation with OMP_NUM_THREADS=1 and =N.
// Usage: npm run bench [-- --reps N] [-- --threads N] [-- --wasm file.wasm]   (--wasm: run
// another kernel build of the same ABI through init(); single-threaded)
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import {
  quantize4bit,
  dequantize4bit,
  quantizeBlockwise,
  dequantizeBlockwise,
  tensor,
  wasmBuild,
  init,
  int8LinearMatmul,
  gemv4bit,
  dequantizeFp8,
  numThreads,
  setNumThreads,
  wasmTensor,
  isResident,
  QuantState,
} from '../dist/index.js';
import { chunkElements } from '../dist/backend/wasm/chunk.js';
import { sharedWasm } from '../dist/backend/wasm/threads/shared.js';
import { wasm } from '../dist/backend/wasm/runtime/instances.js';
import { runChunks } from '../dist/backend/wasm/threads/parallel.js';
import { DTYPE_ID, QTYPE_ID } from '../dist/backend/abi.js';
import { numberToF16, numberToBf16 } from '../dist/float16.js';
import { defaultDynamicMap } from '../dist/maps.js';

const ROWS = 4096,
  COLS = 14336,
  n = ROWS * COLS;
const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const reps = Number(arg('--reps')) || 5;
const wasmFile = arg('--wasm');
if (wasmFile) await init(readFileSync(wasmFile));
const T = wasmFile ? 1 : Number(arg('--threads')) || numThreads(); // a module given to init() runs on one thread
const size = { float32: 4, float16: 2, bfloat16: 2 };

function time(f, r = reps) {
  f();
  const ts = [];
  for (let i = 0; i < r; i++) {
    const t0 = process.hrtime.bigint();
    f();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]; // median ms
}

let seed = 12345;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const x32 = new Float32Array(n);
for (let i = 0; i < n; i += 2) {
  const r = Math.sqrt(-2 * Math.log(1 - rnd())),
    t = 2 * Math.PI * rnd();
  x32[i] = r * Math.cos(t);
  x32[i + 1] = r * Math.sin(t);
}
const inputs = {
  float32: tensor(x32, [ROWS, COLS]),
  float16: tensor(Uint16Array.from(x32, numberToF16), [ROWS, COLS], 'float16'),
  bfloat16: tensor(Uint16Array.from(x32, numberToBf16), [ROWS, COLS], 'bfloat16'),
};

execFileSync('g++', ['-O3', '-march=native', '-fopenmp', '-std=c++17', '-o', 'build/baseline', 'bench/native/baseline.cpp']);
const nativeRun = (threads) =>
  JSON.parse(
    execFileSync('./build/baseline', {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: String(threads), OMP_PROC_BIND: 'false' },
    }),
  );
const native = { 1: nativeRun(1), [T]: nativeRun(T) };

const memcpyDst = new Float32Array(n);
const memcpyMs = time(() => memcpyDst.set(x32));
const memcpyGBs = (8 * n) / memcpyMs / 1e6;

// rows[key] = { op, mode, bytes, native key, ms per thread count }
const rows = new Map();
function record(op, mode, threads, ms, bytes, nativeKey) {
  const key = `${op}|${mode}`;
  if (!rows.has(key)) rows.set(key, { op, mode, bytes, nativeKey, ms: {} });
  rows.get(key).ms[threads] = ms;
}

const packedBytes = n / 2,
  absmaxBytes = (n / 64) * 4;
const [packed, state] = quantize4bit(inputs.float32, { quantType: 'nf4' });
const stateOf = (dtype) => Object.assign(Object.create(Object.getPrototypeOf(state)), state, { dtype });
const [q8, s8] = quantizeBlockwise(inputs.float32, { blocksize: 256 });
const nativeOf = {
  'quantize4bit nf4 bs64 from float32': 'quant_nf4_bs64_f32',
  'quantize4bit fp4 bs64 from float32': 'quant_fp4_bs64_f32',
  'dequantize4bit nf4 bs64 to float32': 'dequant_nf4_bs64_f32',
  'dequantize4bit nf4 bs64 to float16': 'dequant_nf4_bs64_f16',
  'dequantize4bit nf4 bs64 to bfloat16': 'dequant_nf4_bs64_bf16',
  'quantizeBlockwise bs256 from float32': 'quant_blockwise_bs256_f32',
  'dequantizeBlockwise bs256 to float32': 'dequant_blockwise_bs256_f32',
};

// The same tensors resident in the shared kernel memory (none with --wasm).
const R = (t) => wasmTensor(t);
const resident = !wasmFile && isResident(R(tensor(new Float32Array(1))));
const rPacked = resident ? R(packed) : null,
  rState = resident ? new QuantState({ ...state, absmax: R(state.absmax) }) : null;
const rq8 = resident ? R(q8) : null,
  rs8 = resident ? new QuantState({ ...s8, absmax: R(s8.absmax) }) : null;

function apiRuns(threads) {
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    const op = `quantize4bit nf4 bs64 from ${dtype}`;
    const A = inputs[dtype];
    record(
      op,
      'api',
      threads,
      time(() => quantize4bit(A, { quantType: 'nf4' })),
      n * size[dtype] + packedBytes + absmaxBytes,
      nativeOf[op],
    );
  }
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    const op = `dequantize4bit nf4 bs64 to ${dtype}`;
    const st = stateOf(dtype),
      bytes = packedBytes + absmaxBytes + n * size[dtype];
    record(
      op,
      'api',
      threads,
      time(() => dequantize4bit(packed, st)),
      bytes,
      nativeOf[op],
    );
    const out = dequantize4bit(packed, st);
    record(
      op,
      'api+out',
      threads,
      time(() => dequantize4bit(packed, st, { out })),
      bytes,
      nativeOf[op],
    );
    if (resident) {
      const rst = new QuantState({ ...rState, dtype }),
        rOut = R(out);
      record(
        op,
        'resident',
        threads,
        time(() => dequantize4bit(rPacked, rst, { out: rOut })),
        bytes,
        nativeOf[op],
      );
      rOut.dispose();
    }
  }
  const A = inputs.float32;
  record(
    'quantizeBlockwise bs256 from float32',
    'api',
    threads,
    time(() => quantizeBlockwise(A, { blocksize: 256 })),
    n * 4 + n + (n / 256) * 4,
    nativeOf['quantizeBlockwise bs256 from float32'],
  );
  const out8 = dequantizeBlockwise(q8, s8),
    bytes8 = n + (n / 256) * 4 + n * 4;
  record(
    'dequantizeBlockwise bs256 to float32',
    'api',
    threads,
    time(() => dequantizeBlockwise(q8, s8)),
    bytes8,
    nativeOf['dequantizeBlockwise bs256 to float32'],
  );
  record(
    'dequantizeBlockwise bs256 to float32',
    'api+out',
    threads,
    time(() => dequantizeBlockwise(q8, s8, { out: out8 })),
    bytes8,
    nativeOf['dequantizeBlockwise bs256 to float32'],
  );
  if (resident) {
    const rOut = R(out8);
    record(
      'dequantizeBlockwise bs256 to float32',
      'resident',
      threads,
      time(() => dequantizeBlockwise(rq8, rs8, { out: rOut })),
      bytes8,
      nativeOf['dequantizeBlockwise bs256 to float32'],
    );
    rOut.dispose();
  }
}

// Kernels alone, whole tensor resident in wasm memory. One thread: one call over the
// tensor, on the private memory; more: the chunks of whole blocks an op would hand to
// the pool, on the shared memory.
function kernelRuns(threads) {
  const m = threads > 1 ? sharedWasm() : wasm();
  const [pX, pH, pB, pP, pA, pO, pQ, pA8] = m.scratch(n * 4, n * 2, n * 2, packedBytes, absmaxBytes, n * 4, n, (n / 256) * 4);
  m.write(pX, new Uint8Array(x32.buffer));
  m.write(pH, new Uint8Array(inputs.float16.data.buffer));
  m.write(pB, new Uint8Array(inputs.bfloat16.data.buffer));
  const src = { float32: pX, float16: pH, bfloat16: pB };
  // call(start, len) is the kernel call on elements [start, start + len)
  const run = (blocksize, call) => {
    if (threads === 1) return () => m.k[call(0, n)[0]](...call(0, n).slice(1));
    const chunk = chunkElements(blocksize, threads, n);
    return () =>
      runChunks(m, threads, {
        count: Math.ceil(n / chunk),
        slot: [],
        load() {},
        calls: (j) => [call(j * chunk, Math.min(chunk, n - j * chunk))],
        store() {},
      });
  };
  const kernel = (op, bytes, blocksize, call) => record(op, 'kernel', threads, time(run(blocksize, call)), bytes, nativeOf[op]);
  const q4 = (srcPtr, dtype, qt) => (s, len) => [
    'quantize4bit',
    srcPtr + s * size[dtype],
    len,
    DTYPE_ID[dtype],
    64,
    qt,
    pP + s / 2,
    pA + (s / 64) * 4,
    m.nf4Ptr,
  ];
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    kernel(`quantize4bit nf4 bs64 from ${dtype}`, n * size[dtype] + packedBytes + absmaxBytes, 64, q4(src[dtype], dtype, QTYPE_ID.nf4));
  }
  kernel('quantize4bit fp4 bs64 from float32', n * 4 + packedBytes + absmaxBytes, 64, q4(pX, 'float32', QTYPE_ID.fp4));
  m.k.quantize4bit(pX, n, 0, 64, QTYPE_ID.nf4, pP, pA, m.nf4Ptr);
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    kernel(`dequantize4bit nf4 bs64 to ${dtype}`, packedBytes + absmaxBytes + n * size[dtype], 64, (s, len) => [
      'dequantize4bit',
      pP + s / 2,
      len,
      64,
      QTYPE_ID.nf4,
      pA + (s / 64) * 4,
      DTYPE_ID[dtype],
      pO + s * size[dtype],
    ]);
  }
  m.useCode(defaultDynamicMap());
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    kernel(`quantizeBlockwise bs256 from ${dtype}`, n * size[dtype] + n + (n / 256) * 4, 256, (s, len) => [
      'quantizeBlockwise',
      src[dtype] + s * size[dtype],
      len,
      DTYPE_ID[dtype],
      256,
      m.codePtr,
      m.lutPtr,
      pQ + s,
      pA8 + (s / 256) * 4,
    ]);
  }
  m.k.quantizeBlockwise(pX, n, 0, 256, m.codePtr, m.lutPtr, pQ, pA8);
  for (const dtype of ['float32', 'float16', 'bfloat16']) {
    kernel(`dequantizeBlockwise bs256 to ${dtype}`, n + (n / 256) * 4 + n * size[dtype], 256, (s, len) => [
      'dequantizeBlockwise',
      pQ + s,
      len,
      256,
      m.codePtr,
      pA8 + (s / 256) * 4,
      DTYPE_ID[dtype],
      pO + s * size[dtype],
    ]);
  }
}

// int8 GEMM, 4-bit GEMV and FP8 dequantization through the API (copies in and out included).
const fn = new Map();
function fnRecord(op, unit, threads, value, nat) {
  if (!fn.has(op)) fn.set(op, { unit, v: {}, nat: {} });
  fn.get(op).v[threads] = value;
  fn.get(op).nat[threads] = nat;
}
const i8 = (len) => {
  const a = new Int8Array(len);
  for (let i = 0; i < len; i++) a[i] = ((rnd() * 256) | 0) - 128;
  return a;
};
const gemmInputs = [
  [4096, 4096, 4096],
  [1, 14336, 4096],
].map(([M, N, K]) => ({ M, N, K, A: tensor(i8(M * K), [M, K]), B: tensor(i8(N * K), [N, K]) }));
const gemv = (() => {
  const N = 14336,
    K = 4096;
  const [qB, st] = quantize4bit(tensor(x32.subarray(0, N * K), [N, K]), { quantType: 'nf4' });
  const A = { float16: tensor(inputs.float16.data.slice(0, K), [1, K], 'float16'), float32: tensor(x32.slice(0, K), [1, K]) };
  return { N, K, qB, st, A, bytes: (N * K) / 2 + ((N * K) / 64) * 4 };
})();
const fp8 = (() => {
  const R = 7168,
    C = 7168;
  const W = tensor(
    new Uint8Array(R * C).map(() => (rnd() * 256) & 0xf7),
    [R, C],
    'float8_e4m3fn',
  );
  const S = tensor(new Float32Array(56 * 56).fill(0.01), [56, 56]);
  return { R, C, W, S, out: dequantizeFp8(W, S), bytes: R * C * 3 };
})();

function fnRuns(threads) {
  const nat = native[threads];
  for (const { M, N, K, A, B } of gemmInputs) {
    const ms = time(() => int8LinearMatmul(A, B), M > 1 ? 1 : reps);
    fnRecord(
      `int8LinearMatmul ${M}x${N}x${K}`,
      'GOPS',
      threads,
      (2 * M * N * K) / ms / 1e6,
      (2 * M * N * K) / nat[`int8_matmul_${M}x${N}x${K}`] / 1e6,
    );
    if (M === 1 && resident) {
      const rB = R(B),
        rms = time(() => int8LinearMatmul(A, rB));
      fnRecord(
        `int8LinearMatmul ${M}x${N}x${K}, B resident`,
        'GOPS',
        threads,
        (2 * M * N * K) / rms / 1e6,
        (2 * M * N * K) / nat[`int8_matmul_${M}x${N}x${K}`] / 1e6,
      );
      rB.dispose();
    }
  }
  const rqB = resident ? R(gemv.qB) : null;
  for (const dtype of ['float16', 'float32']) {
    const ms = time(() => gemv4bit(gemv.A[dtype], gemv.qB, gemv.st));
    fnRecord(
      `gemv4bit nf4 bs64 1x${gemv.K} · ${gemv.N}x${gemv.K}, A ${dtype}`,
      'GB/s',
      threads,
      gemv.bytes / ms / 1e6,
      gemv.bytes / nat.gemv_nf4_1x4096_14336x4096 / 1e6,
    );
    if (rqB) {
      const rms = time(() => gemv4bit(gemv.A[dtype], rqB, gemv.st));
      fnRecord(
        `gemv4bit nf4 bs64 1x${gemv.K} · ${gemv.N}x${gemv.K}, A ${dtype}, B resident`,
        'GB/s',
        threads,
        gemv.bytes / rms / 1e6,
        gemv.bytes / nat.gemv_nf4_1x4096_14336x4096 / 1e6,
      );
    }
  }
  rqB?.dispose();
  const ms = time(() => dequantizeFp8(fp8.W, fp8.S, { out: fp8.out }));
  fnRecord(
    `dequantizeFp8 ${fp8.R}x${fp8.C} 128x128 tiles -> bf16 (out=)`,
    'GB/s',
    threads,
    fp8.bytes / ms / 1e6,
    fp8.bytes / nat.fp8_dequant_7168x7168_bf16 / 1e6,
  );
  if (resident) {
    const rW = R(fp8.W),
      rOut = R(fp8.out),
      rms = time(() => dequantizeFp8(rW, fp8.S, { out: rOut }));
    fnRecord(
      `dequantizeFp8 ${fp8.R}x${fp8.C} 128x128 tiles -> bf16 (out=), resident`,
      'GB/s',
      threads,
      fp8.bytes / rms / 1e6,
      fp8.bytes / nat.fp8_dequant_7168x7168_bf16 / 1e6,
    );
    rW.dispose();
    rOut.dispose();
  }
}

// Each phase on 1 thread then on T (api first: its page faults are the cheapest on a fresh process).
for (const phase of [apiRuns, fnRuns, kernelRuns]) {
  for (const threads of [...new Set([1, T])]) {
    setNumThreads(threads);
    phase(threads);
  }
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const f = (v, d) => (v === undefined ? '' : v.toFixed(d));
console.log(
  `\n### ${new Date().toISOString().slice(0, 10)} — ${cpu}, ${os.cpus().length} cores, Node ${process.version}, wasm ${wasmBuild()} build${wasmFile ? ` (${wasmFile})` : ''}, 1 and ${T} threads`,
);
console.log(
  `\nCommand: \`npm run bench${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` (${ROWS}x${COLS} = ${n} elements, median of ${reps} runs)\n`,
);
const nm = (t) => (8 * n) / native[t].memcpy_f32_4096x14336 / 1e6;
console.log(
  `memcpy (TypedArray.set, f32 tensor, 1 thread): ${memcpyGBs.toFixed(1)} GB/s (read + write); native memcpy ${nm(1).toFixed(1)} GB/s on 1 thread, ${nm(T).toFixed(1)} on ${T}\n`,
);
console.log(
  `× memcpy: GB/s over the TypedArray.set figure; × native: Gelem/s over the native baseline's on as many threads (bench/native/baseline.cpp).\n`,
);
console.log(`| op | mode | 1 thread Gelem/s | GB/s | × memcpy | × native | ${T} threads Gelem/s | GB/s | × memcpy | × native | speed-up |`);
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows.values()) {
  const cells = [1, T].flatMap((t) => {
    const ms = r.ms[t];
    if (ms === undefined) return ['', '', '', ''];
    const gbs = r.bytes / ms / 1e6,
      nat = r.nativeKey ? native[t][r.nativeKey] / ms : undefined;
    return [f(n / ms / 1e6, 2), f(gbs, 1), f(gbs / memcpyGBs, 2), f(nat, 2)];
  });
  console.log(`| ${r.op} | ${r.mode} | ${cells.join(' | ')} | ${f(r.ms[1] / r.ms[T], 2)} |`);
}
console.log(`\n| op | 1 thread | native, 1 thread | × native | ${T} threads | native, ${T} threads | × native | speed-up |`);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const [op, { unit, v, nat }] of fn) {
  console.log(
    `| ${op} | ${f(v[1], 1)} ${unit} | ${f(nat[1], 1)} ${unit} | ${f(v[1] / nat[1], 2)} | ${f(v[T], 1)} ${unit} | ${f(nat[T], 1)} ${unit} | ${f(v[T] / nat[T], 2)} | ${f(v[T] / v[1], 2)} |`,
  );
}
