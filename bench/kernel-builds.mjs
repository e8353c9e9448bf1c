// The relaxed-SIMD and SIMD kernel builds side by side, kernel alone (data resident in
// each instance's memory, best of 15 runs x 3 rounds, 2^22 elements): what relaxed_swizzle
// buys on this engine, and that the bytes agree. Usage: node --experimental-wasm-relaxed-simd
// bench/kernel-builds.mjs; bun bench/kernel-builds.mjs; deno run -A bench/kernel-builds.mjs
import { readFileSync } from 'node:fs';
const mk = (f) => ({
  ...new WebAssembly.Instance(new WebAssembly.Module(readFileSync(f)), {
    env: {
      abort() {
        throw new Error('abort');
      },
    },
  }).exports,
});
const file = (b) => new URL(`../build/bnb.${b}.wasm`, import.meta.url);
const builds = { simd: mk(file('simd')), relaxed: mk(file('relaxed')) };
const n = 1 << 22,
  bs = 64;
for (const k of Object.values(builds)) {
  const base = (k.heapBase() + 255) & ~255;
  const need = base + n * 4 + n / 2 + (n / bs) * 4 + n * 4 + (1 << 20);
  k.memory.grow(Math.ceil((need - k.memory.buffer.byteLength) / 65536) + 1);
  const src = base,
    packed = src + n * 4,
    absmax = packed + n / 2,
    out = absmax + (n / bs) * 4 + 256;
  const f = new Float32Array(k.memory.buffer, src, n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    f[i] = (s / 2 ** 32 - 0.5) * 3;
  }
  const nf4 = out + n * 4 + 256; // the NF4 bucket table quantize4bit reads (host-managed)
  k.prepareNf4Table(nf4);
  k.quantize4bit(src, n, 0, bs, 1, packed, absmax, nf4);
  k.q = { packed, absmax, out, src, nf4 };
}
const same = (dt) => {
  const a = builds.simd,
    b = builds.relaxed;
  a.dequantize4bit(a.q.packed, n, bs, 1, a.q.absmax, dt, a.q.out);
  b.dequantize4bit(b.q.packed, n, bs, 1, b.q.absmax, dt, b.q.out);
  const x = new Uint8Array(a.memory.buffer, a.q.out, n * 4),
    y = new Uint8Array(b.memory.buffer, b.q.out, n * 4);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
};
console.log('identical f32/f16/bf16:', same(0), same(1), same(2));
for (const [dt, name] of [
  [0, 'f32'],
  [1, 'f16'],
  [2, 'bf16'],
]) {
  const r = {};
  for (let round = 0; round < 3; round++)
    for (const [bn, k] of Object.entries(builds)) {
      let best = Infinity;
      for (let i = 0; i < 15; i++) {
        const t = performance.now();
        k.dequantize4bit(k.q.packed, n, bs, 1, k.q.absmax, dt, k.q.out);
        best = Math.min(best, performance.now() - t);
      }
      r[bn] = Math.min(r[bn] ?? Infinity, best);
    }
  console.log(
    `dequantize4bit nf4 -> ${name}: simd ${(n / r.simd / 1e6).toFixed(2)} Gelem/s, relaxed ${(n / r.relaxed / 1e6).toFixed(2)} Gelem/s, x${(r.simd / r.relaxed).toFixed(3)}`,
  );
}
{
  // quantize fp4 (uses one swizzle)
  const r = {};
  for (let round = 0; round < 3; round++)
    for (const [bn, k] of Object.entries(builds)) {
      let best = Infinity;
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        k.quantize4bit(k.q.src, n, 0, bs, 0, k.q.packed, k.q.absmax, k.q.nf4);
        best = Math.min(best, performance.now() - t);
      }
      r[bn] = Math.min(r[bn] ?? Infinity, best);
    }
  console.log(
    `quantize4bit fp4 f32: simd ${(n / r.simd / 1e6).toFixed(2)}, relaxed ${(n / r.relaxed / 1e6).toFixed(2)} Gelem/s, x${(r.simd / r.relaxed).toFixed(3)}`,
  );
}
