// bnbjs on the oldest Node that package.json `engines` allows, 20.0.0 (the official binary,
// installed by `npm install --prefix test/node-versions`): it has no process.getBuiltinModule
// (20.16) and relaxed SIMD only behind a V8 flag. The CLI must give the bytes this Node
// gives, and a threaded op the bytes of one thread. test/runtimes/server-runtimes.test.ts
// runs the runtime smoke suite (golden files, threads, resident tensors) there too.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SHARED } from './helpers/golden.js';
import { OLD_NODE, ROOT, missing } from './runtimes/app.js';

const why = missing(OLD_NODE);
if (why) console.warn(`Node 20.0.0 tests skipped: ${why} (npm install --prefix test/node-versions installs it)`);

const CLI = join(ROOT, 'dist/cli.js');
const MODELS = join(SHARED, 'models');
const dir = mkdtempSync(join(tmpdir(), 'bnbjs-node-versions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// No BNBJS_* settings from the caller (npm run test:cuda-mock sets some): both Nodes see the same.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BNBJS_')));
const run = (node: string, args: string[]) => execFileSync(node, args, { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
const NODES = [
  ['old', OLD_NODE],
  ['current', process.execPath],
] as const;

/** The SHA-256 of every file of a folder (flat, as the CLI writes them), by name (deep equality of MB buffers is slow). */
const files = (d: string) =>
  Object.fromEntries(
    readdirSync(d)
      .sort()
      .map((f) => [
        f,
        createHash('sha256')
          .update(readFileSync(join(d, f)))
          .digest('hex'),
      ]),
  );

// A 2^20+ element op on 2 threads against 1 (until a job ran on a worker, as the smoke suite
// does), then the relaxed build asked for by name (Node 20 turns the V8 flag on).
const THREADS = `import { createHash } from 'node:crypto';
import * as lib from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/index.js')).href)};
const big = lib.tensor(Float32Array.from({ length: (1 << 20) + 3 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 97))));
const digest = () => {
  const [p, s] = lib.quantize4bit(big, { quantType: 'nf4', compressStatistics: true });
  const h = createHash('sha256');
  for (const t of [p, s.absmax, lib.dequantize4bit(p, s)]) h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return h.digest('hex');
};
const r = { version: process.version, build: lib.wasmBuild(), features: lib.wasmFeatures(), cuda: lib.probe().cuda.reason };
lib.setNumThreads(1);
r.one = digest();
lib.setNumThreads(2);
r.two = [digest()];
for (const end = Date.now() + 20_000; lib.threadStats().workerJobs === 0 && Date.now() < end;) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  r.two.push(digest());
}
r.workerJobs = lib.threadStats().workerJobs;
lib.setWasmBuild('relaxed');
const two = digest(); // loading the build turns the flag on
r.relaxed = { build: lib.wasmBuild(), features: lib.wasmFeatures(), two };
lib.setNumThreads(1);
r.relaxed.one = digest();
console.log(JSON.stringify(r));
`;

describe.skipIf(why)(`Node 20.0.0${why ? ` (skipped: ${why})` : ''}`, () => {
  it('is the old Node: no process.getBuiltinModule', () => {
    expect(run(OLD_NODE, ['-p', 'process.version + " " + typeof process.getBuiltinModule'])).toBe('v20.0.0 undefined\n');
  });

  it('the CLI: --version and inspect print what they print on this Node', () => {
    for (const args of [
      ['--version'],
      ['inspect', join(MODELS, 'tiny-llama-nf4-dq')],
      ['inspect', join(MODELS, 'tiny-llama-int8'), '--json'],
    ]) {
      const old = run(OLD_NODE, [CLI, ...args]);
      expect(old, `bnbjs ${args.join(' ')}`).toBe(run(process.execPath, [CLI, ...args]));
      if (args[0] === 'inspect') expect(old).toContain('bitsandbytes');
    }
    // the backends: the CUDA addon loader and the Gaudi probe ran (they need Node's modules)
    const backends = JSON.parse(run(OLD_NODE, [CLI, 'inspect', '--backends', '--json']));
    expect(backends.wasm.build).toBe('simd');
    expect(backends.cuda.reason).toMatch(/CUDA addon is not built|failed to load|no CUDA device|driver/i);
    expect(backends.hpu.reason).toMatch(/no Gaudi device|^null$/);
  });

  it('the CLI: quantize and dequantize tiny-llama-bf16 write the bytes they write on this Node', () => {
    for (const format of [['nf4', '--double-quant'], ['int8']]) {
      const out: Record<string, ReturnType<typeof files>[]> = { q: [], d: [] };
      for (const [name, node] of NODES) {
        const q = join(dir, `${format[0]}-${name}`),
          d = `${q}-bf16`;
        run(node, [CLI, 'quantize', join(MODELS, 'tiny-llama-bf16'), q, '--format', ...format]);
        run(node, [CLI, 'dequantize', q, d, '--dtype', 'bf16']);
        out.q!.push(files(q));
        out.d!.push(files(d));
      }
      expect(Object.keys(out.q![0]!)).toContain('model.safetensors');
      expect(out.q![0], `${format[0]}: quantized`).toEqual(out.q![1]);
      expect(out.d![0], `${format[0]}: dequantized`).toEqual(out.d![1]);
    }
  });

  it('a threaded op gives the bytes of one thread, on the SIMD build and on the relaxed one asked for by name', () => {
    const script = join(dir, 'threads.mjs');
    writeFileSync(script, THREADS);
    const [old, current] = NODES.map(([, node]) => JSON.parse(run(node, [script])));
    expect(old.version).toBe('v20.0.0');
    // relaxed SIMD is flagged in Node 20: the default is the SIMD build
    expect([old.build, old.features]).toEqual(['simd', { simd: true, relaxedSimd: false, threads: true }]);
    expect(old.workerJobs, 'no job ran on a worker').toBeGreaterThan(0);
    expect(new Set(old.two)).toEqual(new Set([old.one]));
    expect(old.relaxed).toEqual({
      build: 'relaxed',
      features: { simd: true, relaxedSimd: true, threads: true },
      two: old.one,
      one: old.one,
    });
    expect(old.one, 'the bytes of this Node').toBe(current.one);
    // the addon loader works there too (no addon in a checkout unless built)
    expect(old.cuda).toBe(current.cuda);
    expect(old.cuda).toMatch(/CUDA addon is not built|failed to load|no CUDA device|driver/i);
  });

  it('the CUDA addon loader loads an addon (the mock one, on the WebAssembly kernels): the bytes of WebAssembly', () => {
    const script = `import * as lib from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/index.js')).href)};
const t = lib.tensor(Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i)));
const [q, s] = lib.quantize4bit(lib.toDevice(t, 'cuda'), { quantType: 'nf4' });
const [w] = lib.quantize4bit(t, { quantType: 'nf4' });
console.log(JSON.stringify({ available: lib.probe().cuda.available, device: q.device, same: q.to('cpu').data.join() === w.data.join() && s.absmax.device === 'cuda:0' }));`;
    const out = execFileSync(OLD_NODE, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...env, BNBJS_CUDA_ADDON: join(ROOT, 'test/helpers/mock-cuda-addon.cjs') },
    });
    expect(JSON.parse(out)).toEqual({ available: true, device: 'cuda:0', same: true });
  });
});
