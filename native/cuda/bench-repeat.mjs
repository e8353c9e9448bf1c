#!/usr/bin/env node
// Run-to-run spread of the headline timings: each kernel timed in several rounds
// (median of many CUDA-event timings per round), interleaved.
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cuda = createRequire(import.meta.url)(process.env.BNBJS_CUDA_ADDON ?? join(root, 'build', 'bnbjs_cuda.node'));
const N = 8192 * 28672;
const alloc = (b) => cuda.malloc(b);
function fill(p, bytes) {
  const chunk = 32 << 20, u = new Uint16Array(chunk / 2);
  let x = 12345;
  for (let i = 0; i < u.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    u[i] = ((x >>> 16) & 0x8000) | ((118 + ((x >>> 8) % 12)) << 7) | (x & 0x7f);
  }
  const b = new Uint8Array(u.buffer);
  for (let o = 0; o < bytes; o += chunk) cuda.copyHtoD(p + o, b.subarray(0, Math.min(chunk, bytes - o)));
}
function median(f, reps) {
  for (let i = 0; i < 5; i++) f();
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const s = cuda.eventRecord(); f(); const e = cuda.eventRecord();
    ts.push(cuda.eventElapsed(s, e)); cuda.eventDestroy(s); cuda.eventDestroy(e);
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1];
}
const src = alloc(N * 2); fill(src, N * 2);
const pk = alloc(N / 2), ab = alloc((N / 64) * 4), out = alloc(N * 2);
cuda.quantize4bit(src, N, 2, 64, 1, pk, ab);
const a = alloc(8192 * 2), o = alloc(28672 * 2); fill(a, 8192 * 2);
const rows = { gemv: [], dq4: [], q4: [] };
for (let round = 0; round < 5; round++) {
  rows.gemv.push((N / 2 + (N / 64) * 4) / median(() => cuda.gemv4bit(a, 1, 8192, 2, pk, 28672, ab, 64, 1, 0, 2, o), 200) / 1e6);
  rows.dq4.push((N / 2 + (N / 64) * 4 + N * 2) / median(() => cuda.dequantize4bit(pk, N, 64, 1, ab, 2, out), 50) / 1e6);
  rows.q4.push((N * 2 + N / 2 + (N / 64) * 4) / median(() => cuda.quantize4bit(src, N, 2, 64, 1, pk, ab), 50) / 1e6);
}
for (const [k, v] of Object.entries(rows)) console.log(k, v.map((x) => x.toFixed(0)).join(' '), 'GB/s');
