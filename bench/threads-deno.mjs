// 1 against 2 threads on the Workers of the inline entry (Deno's), in one process:
// each op timed 1 thread then 2, twice, median of 5 calls, the best round kept.
// Usage: npm run build && deno run bench/threads-deno.mjs (no permission flag)
import * as lib from '../dist/inline.js';

const ROWS = 4096,
  COLS = 14336,
  n = ROWS * COLS;
const W = new Float32Array(n);
for (let i = 0; i < n; i++) W[i] = Math.sin(i * 0.37) * (1 + (i % 97));
const A = lib.tensor(W, [ROWS, COLS]);
lib.setNumThreads(1);
const [p, s] = lib.quantize4bit(A, { quantType: 'nf4' });
const out = lib.tensor(new Float32Array(n), [ROWS, COLS]);
// the same tensors resident in the shared kernel memory (wasmTensor): nothing copied
lib.setNumThreads(2);
const rp = lib.wasmTensor(p),
  rs = new lib.QuantState({ ...s, absmax: lib.wasmTensor(s.absmax) }),
  rout = lib.wasmTensor(out);
if (!lib.isResident(rp)) throw new Error('no shared kernel memory here');
const OPS = {
  'quantize4bit nf4 bs64 from float32': () => lib.quantize4bit(A, { quantType: 'nf4' }),
  'dequantize4bit nf4 bs64 to float32': () => lib.dequantize4bit(p, s),
  'dequantize4bit nf4 bs64 to float32 (out=)': () => lib.dequantize4bit(p, s, { out }),
  'dequantize4bit nf4 bs64 to float32, resident (wasmTensor)': () => lib.dequantize4bit(rp, rs, { out: rout }),
};
const runtime =
  typeof Deno !== 'undefined' ? `Deno ${Deno.version.deno}` : typeof Bun !== 'undefined' ? `Bun ${Bun.version}` : `Node ${process.version}`;
console.log(`${runtime}, ${ROWS}x${COLS}\n\n| op | 1 thread ms | 2 threads ms | speed-up |\n|---|---:|---:|---:|`);
for (const [name, f] of Object.entries(OPS)) {
  const best = {};
  for (let round = 0; round < 2; round++) {
    for (const t of [1, 2]) {
      lib.setNumThreads(t);
      f();
      await new Promise((r) => setTimeout(r, 30)); // let workers start
      const times = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        f();
        times.push(performance.now() - t0);
      }
      const median = times.sort((a, b) => a - b)[2];
      best[t] = Math.min(best[t] ?? Infinity, median);
    }
  }
  console.log(`| ${name} | ${best[1].toFixed(1)} | ${best[2].toFixed(1)} | ${(best[1] / best[2]).toFixed(2)} |`);
}
console.log(`\njobs run on workers: ${lib.threadStats().workerJobs}`);
