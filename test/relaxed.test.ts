// The relaxed-SIMD build gives the bytes of the SIMD build and of the scalar oracle.
// Node 20 validates relaxed SIMD only behind a flag, so a child Node runs the
// comparison with it; Deno, Bun, Chromium and workerd select the build by themselves
// (test/runtimes/ runs the golden smoke suite there).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const FLAG = '--experimental-wasm-relaxed-simd';
const script = `
const lib = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
if (!lib.wasmFeatures().relaxedSimd) { console.log(JSON.stringify({ skip: 'relaxed SIMD not validated even with ${FLAG}' })); process.exit(0); }
let s = 12345;
const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
const specials = [NaN, Infinity, -Infinity, 0, -0, 1e-40, 3e38];
const bytes = (t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64');
const { castFloat } = await import(${JSON.stringify(new URL('../dist/backend/wasm/cast.js', import.meta.url).href)});
const { int8VectorwiseQuantCast, int8VectorwiseDequantCast } = await import(${JSON.stringify(new URL('../dist/backend/wasm/int8-cast.js', import.meta.url).href)});
const all16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
const out = {};
for (const build of ['relaxed', 'simd', 'scalar']) {
  lib.setWasmBuild(build);
  s = 12345; // the same inputs for each build
  const r = [];
  for (const [n, bs] of [[4096, 64], [100003, 128], [777, 4096], [65536, 256]]) {
    const x = Float32Array.from({ length: n }, (_, i) => (i % 997 === 5 ? specials[i % specials.length] : (rnd() - 0.5) * 2 ** ((i % 13) - 6)));
    for (const quantType of ['nf4', 'fp4']) {
      const [p, st] = lib.quantize4bit(lib.tensor(x, [n]), { blocksize: bs, quantType, allowNonFinite: true });
      r.push(bytes(p), bytes(st.absmax));
      for (const dtype of ['float32', 'float16', 'bfloat16']) r.push(bytes(lib.dequantize4bit(p, new lib.QuantState({ ...st, dtype }))));
    }
  }
  // the casts, the LLM.int8 row kernels and their fused paths (issue 14): 6 + 9 outputs
  const f32 = new Float32Array(Uint32Array.from({ length: 70001 }, () => (rnd() * 2 ** 32) >>> 0).buffer);
  for (const [x, dtypes] of [[lib.tensor(f32), ['float16', 'bfloat16']], [lib.tensor(all16, [65536], 'float16'), ['float32', 'bfloat16']], [lib.tensor(all16, [65536], 'bfloat16'), ['float32', 'float16']]]) {
    for (const to of dtypes) r.push(bytes(castFloat(x, to)));
  }
  for (const threshold of [0, 6]) {
    const [cb, scb] = lib.int8VectorwiseQuant(lib.tensor(all16, [512, 128], 'float16'), { threshold, allowNonFinite: true });
    r.push(bytes(cb), bytes(scb), bytes(lib.int8VectorwiseDequant(cb, lib.tensor(Float32Array.from({ length: 512 }, (_, i) => i % 8 < 7 ? specials[i % 8] : i / 64), [512]))));
  }
  const W = lib.tensor(Uint16Array.from({ length: 301 * 77 }, () => 0x3c00 + Math.floor(rnd() * 1024) - 512), [301, 77], 'bfloat16');
  const [cb, scb] = int8VectorwiseQuantCast(W);
  r.push(bytes(cb), bytes(scb), bytes(int8VectorwiseDequantCast(cb, scb, 'bfloat16')));
  // gemv4bit: one A row (the direct path), tiles of A rows, rows that are not whole chunks
  for (const [M, N, K] of [[1, 37, 2048], [6, 9, 512], [3, 5, 100]]) {
    const [qW, sW] = lib.quantize4bit(lib.tensor(Float32Array.from({ length: N * K }, () => rnd() - 0.5), [N, K]), { blocksize: 64 });
    r.push(bytes(lib.gemv4bit(lib.tensor(Float32Array.from({ length: M * K }, () => rnd() - 0.5), [M, K]), qW, sW)));
  }
  // gemv4bit's int8-activation mode (issue 17): 4 outputs
  for (const [M, N, K, bs, dtype] of [[1, 37, 4096, 64, 'float32'], [5, 9, 160, 32, 'float16'], [3, 11, 77, 64, 'bfloat16'], [2, 6, 96, 128, 'float32']]) {
    const [qB, qs] = lib.quantize4bit(lib.tensor(Float32Array.from({ length: N * K }, () => rnd() - 0.5), [N, K]), { blocksize: bs, quantType: 'nf4' });
    const A = lib.tensor(Float32Array.from({ length: M * K }, () => (rnd() - 0.5) * 4), [M, K]);
    r.push(bytes(lib.matmul4bit(A, qB, qs, { accuracy: 'int8' })));
  }
  out[build] = r;
}
// threaded: the relaxed build's threaded variant (simd() 2) on 2 threads, against the scalar oracle
const rt = await import(${JSON.stringify(new URL('../dist/backend/wasm/threads/shared.js', import.meta.url).href)});
const big = lib.tensor(Float32Array.from({ length: 1 << 21 }, () => (rnd() - 0.5) * 8));
const both = {};
for (const build of ['scalar', 'relaxed']) {
  lib.setWasmBuild(build);
  lib.setNumThreads(build === 'scalar' ? 1 : 2);
  const [p, st] = lib.quantize4bit(big, { blocksize: 64 });
  const [cb, scb] = int8VectorwiseQuantCast(lib.tensor(big.data, [2048, 1024]));
  const gA = lib.tensor(big.data.subarray(0, 4 * 2048), [4, 2048]);
  const gemv8 = bytes(lib.matmul4bit(gA, p, new lib.QuantState({ ...st, shape: [1024, 2048] }), { accuracy: 'int8' }));
  both[build] = [gemv8, bytes(p), bytes(st.absmax), bytes(lib.dequantize4bit(p, st)), bytes(castFloat(big, 'bfloat16')), bytes(cb), bytes(scb), bytes(int8VectorwiseDequantCast(cb, scb, 'float16'))].join();
}
const threadedLevel = rt.sharedWasm()?.k.simd();
console.log(JSON.stringify({ build: lib.wasmBuild(), same: out.relaxed.every((b, i) => b === out.scalar[i] && b === out.simd[i]), count: out.relaxed.length, threadedLevel, threadedSame: both.scalar === both.relaxed }));
`;

describe('the relaxed-SIMD build', () => {
  it('quantize4bit, dequantize4bit and gemv4bit (the i8x16.relaxed_swizzle lookups) give the bytes of the SIMD and scalar builds', () => {
    const r = spawnSync(process.execPath, [FLAG, '--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, BNBJS_WASM: '', BNBJS_BACKEND: 'wasm' },
    });
    if (r.status !== 0 && /bad option|not allowed/i.test(r.stderr)) {
      console.warn(`relaxed-SIMD comparison skipped: this Node does not take ${FLAG}`);
      return;
    }
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    if (res.skip) {
      console.warn(`relaxed-SIMD comparison skipped: ${res.skip}`);
      return;
    }
    expect(res.count).toBe(40 + 6 + 9 + 3 + 4);
    expect(res.same, 'relaxed, simd and scalar builds differ').toBe(true);
    expect([res.threadedLevel, res.threadedSame], 'the threaded relaxed variant on 2 threads, and its bytes').toEqual([2, true]);
  });

  it('asked for by name on a Node without the flag, it is turned on and used (the default stays SIMD there)', () => {
    const probe = `
const lib = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
const before = lib.wasmFeatures().relaxedSimd, defaultBuild = lib.wasmBuild();
const x = lib.tensor(Float32Array.from({ length: 70001 }, (_, i) => Math.sin(i * 0.37) * 3));
const bytes = (t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64');
const run = () => { const [p, st] = lib.quantize4bit(x); return [bytes(p), bytes(lib.dequantize4bit(p, st))]; };
const simd = run();
lib.setWasmBuild('relaxed');
const relaxed = run();
console.log(JSON.stringify({ before, defaultBuild, after: lib.wasmFeatures().relaxedSimd, build: lib.wasmBuild(), same: simd.join() === relaxed.join() }));
`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
      encoding: 'utf8',
      env: { ...process.env, BNBJS_WASM: '', BNBJS_NUM_THREADS: '1', BNBJS_BACKEND: 'wasm' },
    });
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(res.defaultBuild).toBe(res.before ? 'relaxed' : 'simd');
    expect([res.after, res.build, res.same]).toEqual([true, 'relaxed', true]);
  });
});
