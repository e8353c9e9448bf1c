// bnbjs benchmark: 4-bit and 8-bit blockwise ops on a 4096x14336 tensor, one thread.
// Figures: Gelem/s and GB/s (each input byte read once + each output byte written
// once), and the ratio to a memcpy of the f32 tensor measured in the same run.
//   api      the public functions, outputs allocated by the call (page faults included)
//   api+out  the public functions writing into a preallocated `out` tensor
//   kernel   the WebAssembly kernel alone on data resident in wasm memory
// A native C++ baseline (bench/native/baseline.cpp, g++ -O3 -march=native) runs in
// the same invocation for the ops that have one.
// Usage: npm run bench [-- --reps N] [-- --wasm file.wasm]   (--wasm: run another kernel
// build of the same ABI, e.g. an earlier commit's, through init())
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import {
  quantize4bit, dequantize4bit, quantizeBlockwise, dequantizeBlockwise, tensor, wasmBuild, init,
  int8LinearMatmul, gemv4bit, dequantizeFp8,
} from '../dist/index.js';
import { wasm } from '../dist/wasm/runtime.js';
import { WASM_DTYPE, WASM_QTYPE } from '../dist/wasm/exports.js';
import { numberToF16, numberToBf16 } from '../dist/float16.js';
import { defaultDynamicMap } from '../dist/maps.js';

const ROWS = 4096, COLS = 14336, n = ROWS * COLS;
const arg = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const reps = Number(arg('--reps')) || 5;
const wasmFile = arg('--wasm');
if (wasmFile) await init(readFileSync(wasmFile));
const size = { float32: 4, float16: 2, bfloat16: 2 };

function time(f) {
  f();
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    f();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]; // median ms
}

let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
const x32 = new Float32Array(n);
for (let i = 0; i < n; i += 2) {
  const r = Math.sqrt(-2 * Math.log(1 - rnd())), t = 2 * Math.PI * rnd();
  x32[i] = r * Math.cos(t);
  x32[i + 1] = r * Math.sin(t);
}
const inputs = {
  float32: tensor(x32, [ROWS, COLS]),
  float16: tensor(Uint16Array.from(x32, numberToF16), [ROWS, COLS], 'float16'),
  bfloat16: tensor(Uint16Array.from(x32, numberToBf16), [ROWS, COLS], 'bfloat16'),
};

const rows = [];
const memcpyDst = new Float32Array(n);
const memcpyMs = time(() => memcpyDst.set(x32));
const memcpyGBs = (8 * n) / memcpyMs / 1e6;
function record(op, mode, ms, bytes) {
  const gbs = bytes / ms / 1e6;
  rows.push({ op, mode, gelem: n / ms / 1e6, gbs, ratio: gbs / memcpyGBs });
}

// 4-bit nf4, blocksize 64
const packedBytes = n / 2, absmaxBytes = (n / 64) * 4;
for (const dtype of ['float32', 'float16', 'bfloat16']) {
  const A = inputs[dtype];
  record(`quantize4bit nf4 bs64 from ${dtype}`, 'api', time(() => quantize4bit(A, { quantType: 'nf4' })), n * size[dtype] + packedBytes + absmaxBytes);
}
const [packed, state] = quantize4bit(inputs.float32, { quantType: 'nf4' });
for (const dtype of ['float32', 'float16', 'bfloat16']) {
  const st = Object.assign(Object.create(Object.getPrototypeOf(state)), state, { dtype });
  const bytes = packedBytes + absmaxBytes + n * size[dtype];
  record(`dequantize4bit nf4 bs64 to ${dtype}`, 'api', time(() => dequantize4bit(packed, st)), bytes);
  const out = dequantize4bit(packed, st);
  record(`dequantize4bit nf4 bs64 to ${dtype}`, 'api+out', time(() => dequantize4bit(packed, st, { out })), bytes);
}

// 8-bit blockwise, blocksize 256
const A = inputs.float32;
record('quantizeBlockwise bs256 from float32', 'api', time(() => quantizeBlockwise(A, { blocksize: 256 })), n * 4 + n + (n / 256) * 4);
const [q, s8] = quantizeBlockwise(A, { blocksize: 256 });
const out8 = dequantizeBlockwise(q, s8);
record('dequantizeBlockwise bs256 to float32', 'api', time(() => dequantizeBlockwise(q, s8)), n + (n / 256) * 4 + n * 4);
record('dequantizeBlockwise bs256 to float32', 'api+out', time(() => dequantizeBlockwise(q, s8, { out: out8 })), n + (n / 256) * 4 + n * 4);

// Kernels alone, whole tensor resident in wasm memory.
const m = wasm();
const [pX, pH, pB, pP, pA, pO, pQ, pA8] = m.scratch(n * 4, n * 2, n * 2, packedBytes, absmaxBytes, n * 4, n, (n / 256) * 4);
m.write(pX, new Uint8Array(x32.buffer));
m.write(pH, new Uint8Array(inputs.float16.data.buffer));
m.write(pB, new Uint8Array(inputs.bfloat16.data.buffer));
const src = { float32: pX, float16: pH, bfloat16: pB };
for (const dtype of ['float32', 'float16', 'bfloat16']) {
  record(`quantize4bit nf4 bs64 from ${dtype}`, 'kernel', time(() => m.k.quantize4bit(src[dtype], n, WASM_DTYPE[dtype], 64, WASM_QTYPE.nf4, pP, pA)), n * size[dtype] + packedBytes + absmaxBytes);
}
record('quantize4bit fp4 bs64 from float32', 'kernel', time(() => m.k.quantize4bit(pX, n, 0, 64, WASM_QTYPE.fp4, pP, pA)), n * 4 + packedBytes + absmaxBytes);
m.k.quantize4bit(pX, n, 0, 64, WASM_QTYPE.nf4, pP, pA);
for (const dtype of ['float32', 'float16', 'bfloat16']) {
  record(`dequantize4bit nf4 bs64 to ${dtype}`, 'kernel', time(() => m.k.dequantize4bit(pP, n, 64, WASM_QTYPE.nf4, pA, WASM_DTYPE[dtype], pO)), packedBytes + absmaxBytes + n * size[dtype]);
}
m.useCode(defaultDynamicMap());
for (const dtype of ['float32', 'float16', 'bfloat16']) {
  record(`quantizeBlockwise bs256 from ${dtype}`, 'kernel', time(() => m.k.quantizeBlockwise(src[dtype], n, WASM_DTYPE[dtype], 256, m.codePtr, m.lutPtr, pQ, pA8)), n * size[dtype] + n + (n / 256) * 4);
}
m.k.quantizeBlockwise(pX, n, 0, 256, m.codePtr, m.lutPtr, pQ, pA8);
for (const dtype of ['float32', 'float16', 'bfloat16']) {
  record(`dequantizeBlockwise bs256 to ${dtype}`, 'kernel', time(() => m.k.dequantizeBlockwise(pQ, n, 256, m.codePtr, pA8, WASM_DTYPE[dtype], pO)), n + (n / 256) * 4 + n * size[dtype]);
}

// int8 GEMM, 4-bit GEMV and FP8 dequantization, each next to the native baseline.
execFileSync('g++', ['-O3', '-march=native', '-std=c++17', '-o', 'build/baseline', 'bench/native/baseline.cpp']);
const native = JSON.parse(execFileSync('./build/baseline', { encoding: 'utf8' }));
const fn = [];
const i8 = (len) => { const a = new Int8Array(len); for (let i = 0; i < len; i++) a[i] = (rnd() * 256 | 0) - 128; return a; };
for (const [M, N, K] of [[4096, 4096, 4096], [1, 14336, 4096]]) {
  const A = tensor(i8(M * K), [M, K]), B = tensor(i8(N * K), [N, K]);
  const saved = reps;
  const ms = M > 1 ? (() => { int8LinearMatmul(A, B); const t0 = process.hrtime.bigint(); int8LinearMatmul(A, B); return Number(process.hrtime.bigint() - t0) / 1e6; })() : time(() => int8LinearMatmul(A, B));
  const gops = (2 * M * N * K) / ms / 1e6, nat = (2 * M * N * K) / native[`int8_matmul_${M}x${N}x${K}`] / 1e6;
  fn.push([`int8LinearMatmul ${M}x${N}x${K}`, `${gops.toFixed(1)} GOPS`, `${nat.toFixed(1)} GOPS`, gops / nat]);
}
{
  const N = 14336, K = 4096;
  const W = tensor(x32.subarray(0, N * K), [N, K]);
  const [qB, st] = quantize4bit(W, { quantType: 'nf4' });
  const bytes = N * K / 2 + (N * K / 64) * 4;
  for (const dtype of ['float16', 'float32']) {
    const A = dtype === 'float32' ? tensor(x32.slice(0, K), [1, K]) : tensor(inputs.float16.data.slice(0, K), [1, K], 'float16');
    const ms = time(() => gemv4bit(A, qB, st));
    fn.push([`gemv4bit nf4 bs64 1x${K} · ${N}x${K}, A ${dtype}`, `${(bytes / ms / 1e6).toFixed(2)} GB/s`, `${(bytes / native.gemv_nf4_1x4096_14336x4096 / 1e6).toFixed(2)} GB/s`, native.gemv_nf4_1x4096_14336x4096 / ms]);
  }
}
{
  const R = 7168, C = 7168;
  const W = tensor(new Uint8Array(R * C).map(() => (rnd() * 256) & 0xf7), [R, C], 'float8_e4m3fn');
  const S = tensor(new Float32Array(56 * 56).fill(0.01), [56, 56]);
  const out = dequantizeFp8(W, S);
  const ms = time(() => dequantizeFp8(W, S, { out }));
  const bytes = R * C * 3;
  fn.push([`dequantizeFp8 ${R}x${C} 128x128 tiles -> bf16 (out=)`, `${(bytes / ms / 1e6).toFixed(1)} GB/s`, `${(bytes / native.fp8_dequant_7168x7168_bf16 / 1e6).toFixed(1)} GB/s`, native.fp8_dequant_7168x7168_bf16 / ms]);
}
// Kernel rows next to the native baseline of the same op (same run).
const nativeOf = {
  'quantize4bit nf4 bs64 from float32': 'quant_nf4_bs64_f32',
  'quantize4bit fp4 bs64 from float32': 'quant_fp4_bs64_f32',
  'dequantize4bit nf4 bs64 to float32': 'dequant_nf4_bs64_f32',
  'dequantize4bit nf4 bs64 to float16': 'dequant_nf4_bs64_f16',
  'dequantize4bit nf4 bs64 to bfloat16': 'dequant_nf4_bs64_bf16',
  'quantizeBlockwise bs256 from float32': 'quant_blockwise_bs256_f32',
  'dequantizeBlockwise bs256 to float32': 'dequant_blockwise_bs256_f32',
};

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`\n### ${new Date().toISOString().slice(0, 10)} — ${cpu}, ${os.cpus().length} cores, Node ${process.version}, wasm ${wasmBuild()} build${wasmFile ? ` (${wasmFile})` : ''}, 1 thread`);
console.log(`\nCommand: \`npm run bench${wasmFile ? ` -- --wasm ${wasmFile}` : ''}\` (${ROWS}x${COLS} = ${n} elements, median of ${reps} runs)\n`);
console.log(`memcpy (TypedArray.set, f32 tensor): ${memcpyGBs.toFixed(1)} GB/s (read + write); native memcpy ${((8 * n) / native.memcpy_f32_4096x14336 / 1e6).toFixed(1)} GB/s\n`);
console.log('| op | mode | Gelem/s | GB/s | × memcpy |');
console.log('|---|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.op} | ${r.mode} | ${r.gelem.toFixed(2)} | ${r.gbs.toFixed(1)} | ${r.ratio.toFixed(2)} |`);
console.log('\nKernels against the native C++ baseline (bench/native/baseline.cpp, g++ -O3 -march=native, same run):\n');
console.log('| op | bnbjs kernel Gelem/s | native Gelem/s | bnbjs / native |');
console.log('|---|---:|---:|---:|');
for (const r of rows) {
  const key = r.mode === 'kernel' && nativeOf[r.op];
  if (!key) continue;
  const nat = n / native[key] / 1e6;
  console.log(`| ${r.op} | ${r.gelem.toFixed(2)} | ${nat.toFixed(2)} | ${(r.gelem / nat).toFixed(2)} |`);
}
console.log('\n| op | bnbjs | native C++ (g++ -O3 -march=native) | bnbjs / native |');
console.log('|---|---:|---:|---:|');
for (const [op, ours, nat, ratio] of fn) console.log(`| ${op} | ${ours} | ${nat} | ${ratio.toFixed(2)} |`);
