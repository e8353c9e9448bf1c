// Steadier thread ratios on a noisy machine: the dequantize4bit targets and
// the two matmul-like ops, 1 thread and all threads timed alternately in one process
// next to a memcpy, best of --rounds (default 12) rounds of 3 calls each. "resident":
// the API with wasmTensor inputs and out (nothing copied).
// Usage: npm run build && node bench/threads.mjs [--rounds N] [--threads N]
import os from 'node:os';
import {
  QuantState,
  dequantize4bit,
  gemv4bit,
  int8LinearMatmul,
  isResident,
  numThreads,
  quantize4bit,
  setNumThreads,
  tensor,
  wasmTensor,
} from '../dist/index.js';
import { chunkElements } from '../dist/backend/wasm/chunk.js';
import { sharedWasm } from '../dist/backend/wasm/threads/shared.js';
import { wasm } from '../dist/backend/wasm/runtime/instances.js';
import { runChunks } from '../dist/backend/wasm/threads/parallel.js';
import { DTYPE_ID, QTYPE_ID } from '../dist/backend/abi.js';

const arg = (name) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : undefined);
const rounds = arg('--rounds') || 12;
const T = arg('--threads') || numThreads();
const ROWS = 4096,
  COLS = 14336,
  n = ROWS * COLS;

let seed = 7;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const x32 = Float32Array.from({ length: n }, () => rnd() * 2 - 1);
const [packed, state] = quantize4bit(tensor(x32, [ROWS, COLS]), { quantType: 'nf4' });
const stateOf = (dtype) => Object.assign(Object.create(Object.getPrototypeOf(state)), state, { dtype });
const outs = { float16: dequantize4bit(packed, stateOf('float16')), bfloat16: dequantize4bit(packed, stateOf('bfloat16')) };
const memcpyDst = new Float32Array(n);
const i8 = (len) => Int8Array.from({ length: len }, () => ((rnd() * 256) | 0) - 128);
const IA = tensor(i8(4096), [1, 4096]),
  IB = tensor(i8(14336 * 4096), [14336, 4096]);
const [qW, sW] = quantize4bit(tensor(x32.subarray(0, 14336 * 4096), [14336, 4096]), { quantType: 'nf4' });
const A16 = tensor(
  Uint16Array.from({ length: 4096 }, () => 0x3c00 + ((rnd() * 512) | 0)),
  [1, 4096],
  'float16',
);

// The same tensors resident in the shared kernel memory.
const rPacked = wasmTensor(packed),
  rAbsmax = wasmTensor(state.absmax);
const rStateOf = (dtype) => new QuantState({ ...state, absmax: rAbsmax, dtype });
const rOuts = { float16: wasmTensor(outs.float16), bfloat16: wasmTensor(outs.bfloat16) };
const rIB = wasmTensor(IB),
  rqW = wasmTensor(qW);
if (![rPacked, rAbsmax, rOuts.float16, rIB, rqW].every(isResident))
  throw new Error('no shared kernel memory here: resident figures would be ordinary ones');

// The kernel on the whole tensor resident in wasm memory: one call (private memory),
// or the pool's chunks (shared memory).
function residentKernel(threads, dtype) {
  setNumThreads(threads);
  const m = threads > 1 ? sharedWasm() : wasm();
  const [pP, pA, pO] = m.scratch(n / 2, n / 16, n * 2);
  m.write(pP, packed.data);
  m.write(pA, new Uint8Array(state.absmax.data.buffer));
  const call = (s, len) => ['dequantize4bit', pP + s / 2, len, 64, QTYPE_ID.nf4, pA + s / 16, DTYPE_ID[dtype], pO + s * 2];
  if (threads === 1) return () => m.k.dequantize4bit(...call(0, n).slice(1));
  const chunk = chunkElements(64, threads, n);
  return () =>
    runChunks(m, threads, {
      count: Math.ceil(n / chunk),
      slot: [],
      load() {},
      calls: (j) => [call(j * chunk, Math.min(chunk, n - j * chunk))],
      store() {},
    });
}

const bytes16 = n / 2 + n / 16 + n * 2;
const cases = [
  ['memcpy (TypedArray.set, f32 tensor)', 1, 8 * n, () => () => memcpyDst.set(x32)],
  ...['float16', 'bfloat16'].flatMap((dtype) =>
    [1, T].flatMap((t) => [
      [`dequantize4bit nf4 bs64 -> ${dtype}, kernel`, t, bytes16, () => residentKernel(t, dtype)],
      [
        `dequantize4bit nf4 bs64 -> ${dtype}, api+out`,
        t,
        bytes16,
        () => {
          setNumThreads(t);
          const st = stateOf(dtype);
          return () => dequantize4bit(packed, st, { out: outs[dtype] });
        },
      ],
      [
        `dequantize4bit nf4 bs64 -> ${dtype}, api resident`,
        t,
        bytes16,
        () => {
          setNumThreads(t);
          const st = rStateOf(dtype);
          return () => dequantize4bit(rPacked, st, { out: rOuts[dtype] });
        },
      ],
    ]),
  ),
  ...[1, T].flatMap((t) => [
    [
      'int8LinearMatmul 1x14336x4096 (B bytes)',
      t,
      14336 * 4096,
      () => {
        setNumThreads(t);
        return () => int8LinearMatmul(IA, IB);
      },
    ],
    [
      'int8LinearMatmul 1x14336x4096 (B bytes), B resident',
      t,
      14336 * 4096,
      () => {
        setNumThreads(t);
        return () => int8LinearMatmul(IA, rIB);
      },
    ],
    [
      'gemv4bit nf4 1x4096 · 14336x4096, A float16',
      t,
      14336 * 4096 * (0.5 + 1 / 16),
      () => {
        setNumThreads(t);
        return () => gemv4bit(A16, qW, sW);
      },
    ],
    [
      'gemv4bit nf4 1x4096 · 14336x4096, A float16, B resident',
      t,
      14336 * 4096 * (0.5 + 1 / 16),
      () => {
        setNumThreads(t);
        return () => gemv4bit(A16, rqW, sW);
      },
    ],
  ]),
];

const best = new Map();
for (let r = 0; r < rounds; r++) {
  for (const [name, t, b, make] of cases) {
    const f = make();
    f();
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      f();
      const gbs = b / (Number(process.hrtime.bigint() - t0) / 1e6) / 1e6;
      const key = `${name}|${t}`;
      best.set(key, Math.max(best.get(key) ?? 0, gbs));
    }
  }
}
const memcpy = best.get(`${cases[0][0]}|1`);
console.log(
  `\n${new Date().toISOString().slice(0, 10)} — ${os.cpus()[0]?.model}, ${os.cpus().length} cores, Node ${process.version}; best of ${rounds} rounds, 1 and ${T} threads alternating`,
);
console.log(`\n| figure | threads | GB/s | × memcpy |\n|---|---:|---:|---:|`);
for (const [key, gbs] of best) {
  const [name, t] = key.split('|');
  console.log(`| ${name} | ${t} | ${gbs.toFixed(1)} | ${(gbs / memcpy).toFixed(2)} |`);
}
