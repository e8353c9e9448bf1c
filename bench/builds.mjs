// The kernel builds against each other in whichever runtime runs this (Node, Bun, Deno):
// is the default (relaxed SIMD where validated, else SIMD) the fastest there? Median of 7 timed runs, 4096x1024 float32.
// Usage: node [--experimental-wasm-relaxed-simd] bench/builds.mjs; bun bench/builds.mjs; deno run bench/builds.mjs
import * as bnb from 'bnbjs';

const runtime =
  typeof Deno !== 'undefined' ? `Deno ${Deno.version.deno}` : typeof Bun !== 'undefined' ? `Bun ${Bun.version}` : `Node ${process.version}`;
const n = 4096 * 1024;
const A = bnb.tensor(
  Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 2),
  [4096, 1024],
);

function median(f) {
  f();
  const t = [];
  for (let i = 0; i < 7; i++) {
    const s = performance.now();
    f();
    t.push(performance.now() - s);
  }
  return t.sort((a, b) => a - b)[3];
}

const rows = [];
for (const build of [...(bnb.wasmFeatures().relaxedSimd ? ['relaxed'] : []), 'simd', 'scalar']) {
  bnb.setWasmBuild(build);
  const [p, s] = bnb.quantize4bit(A, { quantType: 'nf4', blocksize: 64 });
  const out = bnb.tensor(new Float32Array(n), [4096, 1024]);
  const [q, s8] = bnb.quantizeBlockwise(A, { blocksize: 256 });
  rows.push([
    build,
    median(() => bnb.quantize4bit(A, { quantType: 'nf4', blocksize: 64 })),
    median(() => bnb.dequantize4bit(p, s, { out })),
    median(() => bnb.dequantizeBlockwise(q, s8, { out })),
  ]);
}
const rate = (ms) => (n / ms / 1e6).toFixed(2);
for (const [build, q4, d4, d8] of rows) console.log(`| ${runtime} | ${build} | ${rate(q4)} | ${rate(d4)} | ${rate(d8)} |`);
