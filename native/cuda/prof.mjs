#!/usr/bin/env node
// One launch of each memory-bound kernel on benchmark-sized data, for a profiler:
//   ncu --clock-control none -k 'regex:k_gemv4|k_dequantize4bit|k_quantize8' node native/cuda/prof.mjs
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cuda = createRequire(import.meta.url)(process.env.BNBJS_CUDA_ADDON ?? join(root, 'build', 'bnbjs_cuda.node'));

const N = 8192 * 28672;
const ptrs = [];
const alloc = (b) => { const p = cuda.malloc(b); ptrs.push(p); return p; };
function fill(p, bytes) {
  const chunk = 32 << 20;
  const u = new Uint16Array(chunk / 2);
  let x = 12345;
  for (let i = 0; i < u.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    u[i] = ((x >>> 16) & 0x8000) | ((118 + ((x >>> 8) % 12)) << 7) | (x & 0x7f); // bf16 of moderate magnitude
  }
  const b = new Uint8Array(u.buffer);
  for (let o = 0; o < bytes; o += chunk) cuda.copyHtoD(p + o, b.subarray(0, Math.min(chunk, bytes - o)));
}
const src = alloc(N * 2);
fill(src, N * 2);
const pk = alloc(N / 2), ab = alloc((N / 64) * 4), out = alloc(N * 2);
cuda.quantize4bit(src, N, 2, 64, 1, pk, ab);
cuda.dequantize4bit(pk, N, 64, 1, ab, 2, out);
const a = alloc(8192 * 2), o = alloc(28672 * 2);
fill(a, 8192 * 2);
cuda.gemv4bit(a, 1, 8192, 2, pk, 28672, ab, 64, 1, 0, 2, o);
const code = new Float32Array(256);
for (let i = 0; i < 256; i++) code[i] = Math.fround(-1 + (2 * i) / 255); // linear map
const c = alloc(1024);
cuda.copyHtoD(c, new Uint8Array(code.buffer));
const q = alloc(N), ab8 = alloc((N / 256) * 4);
cuda.quantizeBlockwise(src, N, 2, 256, c, q, ab8);
cuda.synchronize();
for (const p of ptrs.reverse()) cuda.free(p);
console.log('prof: done');
