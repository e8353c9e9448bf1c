// dequantize4bit nf4 bs64 -> float32 on one thread against the rates it is bound by,
// in one process, alternating, best of --rounds (default 12): memcpy (TypedArray.set,
// whose memmove writes large copies with non-temporal stores), and two wasm loops with
// no lookup at all (bench/probe/stores.ts): one that only stores the output, one that
// reads the packed input and stores the output. WebAssembly has no non-temporal store,
// so the store loops are the ceiling for any kernel writing 4 bytes per element.
// Usage: npm run build && node bench/f32-ceiling.mjs [--rounds N]
import os from 'node:os';
import v8 from 'node:v8';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const arg = (name) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : undefined);
const rounds = arg('--rounds') || 12;
const n = 4096 * 14336;
const probeFile = join(mkdtempSync(join(os.tmpdir(), 'bnbjs-probe-')), 'stores.wasm'); // not in build/, which is published
execFileSync(process.execPath, [
  'node_modules/assemblyscript/bin/asc.js',
  'bench/probe/stores.ts',
  '--enable',
  'simd',
  '-O3',
  '--runtime',
  'stub',
  '-o',
  probeFile,
]);
v8.setFlagsFromString('--experimental-wasm-relaxed-simd'); // Node 20: the relaxed build too
const mk = (f) =>
  new WebAssembly.Instance(new WebAssembly.Module(readFileSync(f)), {
    env: {
      abort() {
        throw new Error('abort');
      },
    },
  }).exports;
let s = 1;
const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
const packed = new Uint8Array(n / 2).map(() => rnd() >>> 24),
  absmax = new Float32Array(n / 64).map(() => 0.01 + rnd() / 2 ** 32);
const place = (k) => {
  const base = (k.heapBase() + 65535 + 2 * 65536) & ~65535,
    pp = base,
    pa = pp + n / 2,
    po = pa + n / 16 + 64;
  k.memory.grow(Math.ceil((po + n * 4 + 65536 - k.memory.buffer.byteLength) / 65536));
  new Uint8Array(k.memory.buffer, pp, n / 2).set(packed);
  new Float32Array(k.memory.buffer, pa, n / 64).set(absmax);
  return { pp, pa, po };
};
const probe = mk(probeFile),
  pr = place(probe);
const builds = Object.fromEntries(
  ['simd', 'relaxed'].map((b) => {
    const k = mk(`build/bnb.${b}.wasm`);
    return [b, { k, ...place(k) }];
  }),
);
const src = new Float32Array(n).fill(1),
  dst = new Float32Array(n);
const cases = {
  'memcpy (TypedArray.set, f32 tensor)': () => dst.set(src),
  'wasm loop storing the f32 output only': () => probe.fill(pr.po, n),
  'wasm loop reading the packed input, storing the f32 output': () => probe.expand(pr.pp, pr.po, n),
  ...Object.fromEntries(
    Object.entries(builds).map(([b, { k, pp, pa, po }]) => [
      `dequantize4bit nf4 bs64 -> float32, ${b} build`,
      () => k.dequantize4bit(pp, n, 64, 1, pa, 0, po),
    ]),
  ),
};
const best = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, f] of Object.entries(cases)) {
    const t0 = performance.now();
    f();
    best[name] = Math.min(best[name] ?? Infinity, performance.now() - t0);
  }
}
const memcpy = (8 * n) / best['memcpy (TypedArray.set, f32 tensor)'] / 1e6,
  bound = memcpy / 4.5,
  ceiling = n / best['wasm loop reading the packed input, storing the f32 output'] / 1e6;
console.log(
  `\n${new Date().toISOString().slice(0, 10)} — ${os.cpus()[0]?.model}, Node ${process.version}; ${n} elements, best of ${rounds} rounds alternating, 1 thread`,
);
console.log(`\nmemcpy ${memcpy.toFixed(1)} GB/s (read + write) → memcpy-bound rate at 4.5 bytes/element: ${bound.toFixed(2)} Gelem/s\n`);
console.log('| figure | Gelem/s | × memcpy-bound | × read-and-store loop |\n|---|---:|---:|---:|');
for (const [name, ms] of Object.entries(best)) {
  if (name.startsWith('memcpy')) continue;
  const g = n / ms / 1e6;
  console.log(`| ${name} | ${g.toFixed(2)} | ${(g / bound).toFixed(2)} | ${(g / ceiling).toFixed(2)} |`);
}
