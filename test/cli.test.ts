// The bnbjs command line, run as a user runs it (the built dist/cli.js).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeSafetensors, tensor } from '../src/index.js';
import { numberToBf16 } from '../src/float16.js';
import { SHARED } from './helpers/golden.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const models = `${SHARED}/models`;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
// Linear weights of 2^20 elements, large enough for worker threads; eight of them, as the
// first ops may finish on the calling thread while the workers are still starting
const big = join(tmp, 'big');
mkdirSync(big);
const bigWeight = tensor(
  Uint16Array.from({ length: 1 << 20 }, (_, i) => numberToBf16(Math.sin(i) * 0.02)),
  [1024, 1024],
  'bfloat16',
);
writeFileSync(
  join(big, 'model.safetensors'),
  serializeSafetensors(Object.fromEntries(Array.from({ length: 8 }, (_, l) => [`model.layers.${l}.mlp.up_proj.weight`, bigWeight]))),
);

function bnbjs(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bnbjs CLI', () => {
  it('inspect --json lists the layers', () => {
    const r = bnbjs('inspect', `${models}/tiny-llama-nf4-dq`, '--json');
    expect(r.status).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.layers).toHaveLength(14);
    expect(s.quantizationConfig.bnb_4bit_quant_type).toBe('nf4');
    const text = bnbjs('inspect', `${models}/tiny-llama-int8`);
    expect(text.stdout).toMatch(/bitsandbytes LLM.int8, 49 tensors/);
    expect(text.stdout).toMatch(/14 quantized layers/);
    expect(text.stdout).toMatch(/model\.layers\.0\.mlp\.down_proj\.weight {2}int8 {2}\[256, 704\]/);
  });

  it('quantize, refuse to overwrite, --force, dequantize --dtype fp16', () => {
    const out = join(tmp, 'nf4');
    const q = bnbjs('quantize', `${models}/tiny-llama-bf16`, out, '--format', 'nf4', '--double-quant', '--json');
    expect(q.status).toBe(0);
    expect(JSON.parse(q.stdout).layers).toBe(14);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
    const again = bnbjs('quantize', `${models}/tiny-llama-bf16`, out, '--format', 'nf4');
    expect(again.status).toBe(3);
    expect(again.stderr).toMatch(/exists: pass force \(--force\)/);
    expect(bnbjs('quantize', `${models}/tiny-llama-bf16`, out, '--format', 'fp4', '--force').status).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config.bnb_4bit_quant_type).toBe('fp4');
    const back = join(tmp, 'back.safetensors');
    const d = bnbjs('dequantize', join(out, 'model.safetensors'), back, '--dtype', 'fp16');
    expect(d.status, d.stderr).toBe(0);
    const s = JSON.parse(bnbjs('inspect', back, '--json').stdout);
    expect(s.layers).toHaveLength(0);
    expect(s.other.find((t: { name: string }) => t.name === 'model.layers.0.mlp.down_proj.weight').format).toBe('F16');
  });

  it('--skip keeps matching layers in float and lists them for transformers', () => {
    const out = join(tmp, 'skip');
    expect(bnbjs('quantize', `${models}/tiny-llama-bf16`, out, '--format', 'int8', '--skip', 'mlp').status).toBe(0);
    const s = JSON.parse(bnbjs('inspect', out, '--json').stdout);
    expect(s.layers).toHaveLength(8);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config.llm_int8_skip_modules).toContain(
      'model.layers.0.mlp.down_proj',
    );
  });

  it('usage errors exit 2, bad input exits 1 and leaves no output', () => {
    expect(bnbjs('frobnicate').status).toBe(2);
    expect(bnbjs('quantize', 'a', 'b').status).toBe(2);
    const bs = bnbjs('quantize', `${models}/tiny-llama-bf16`, join(tmp, 'x'), '--format', 'nf4', '--blocksize', '17');
    expect(bs.status).toBe(2);
    expect(bs.stderr).toMatch(/--blocksize 17: expected one of 32, 64/);
    expect(bnbjs('dequantize', 'a', 'b', '--dtype', 'fp8').status).toBe(2);
    const dir = join(tmp, 'broken');
    mkdirSync(dir);
    const good = readFileSync(`${models}/tiny-llama-nf4-dq/model.safetensors`);
    writeFileSync(join(dir, 'model.safetensors'), good.subarray(0, good.length - 100));
    const r = bnbjs('dequantize', dir, join(tmp, 'never'), '--json');
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout).error.code).toMatch(/^E_ST_/);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.includes('never'))).toEqual([]);
  });

  it('demo runs on the bundled model', () => {
    const r = bnbjs('demo', '--json');
    expect(r.status, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.quantizedLayers).toBe(14);
    expect(d.error.relerr).toBeLessThan(0.205719);
    expect(d.error.layers).toBe(14);
    // the tiny model's ops are under 2^20 elements: they stay on the calling thread, and it says so
    expect(d.workerJobs).toBe(0);
    const text = bnbjs('demo');
    expect(text.stdout).toMatch(
      /^WebAssembly (relaxed|simd|scalar) build, on the calling thread \(\d+ available; ops under 2\^20 elements do not use workers\)$/m,
    );
    expect(text.stdout).toMatch(/^quantize: {3}14 quantized layers \(91 tensors written\): 3\.3 MiB -> 1\.2 MiB in/m);
    expect(text.stdout).toMatch(/^dequantize: 14 quantized layers \(21 tensors written\)/m);
    expect(text.stdout).toMatch(
      /mean relative error = 0\.\d{4}\n {2}within bitsandbytes' own bar for nf4 at blocksize 64 \(test_4bit_quant: mean relative error < 0\.205719 on normal data\)/,
    );
  });

  it("a larger model's demo reports the jobs its worker threads ran", () => {
    const r = spawnSync(process.execPath, [cli, 'demo', big, '--json'], {
      encoding: 'utf8',
      // worker jobs are the WebAssembly backend's: a suite run with BNBJS_BACKEND=cuda would put the ops on the GPU
      env: { ...process.env, BNBJS_NUM_THREADS: '2', BNBJS_BACKEND: '' },
    });
    expect(r.status, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.threads).toBe(2);
    expect(d.workerJobs).toBeGreaterThan(0);
  });
});

describe('npm run demo rebuilds only what changed (scripts/build-if-stale.mjs)', () => {
  // a copy of the script in a tree of its own, so that the repository's files are left alone
  const tree = join(tmp, 'tree');
  const touch = (f: string, t: number) => {
    mkdirSync(join(tree, f, '..'), { recursive: true });
    if (!existsSync(join(tree, f))) writeFileSync(join(tree, f), '');
    utimesSync(join(tree, f), t, t);
  };
  const check = () => spawnSync(process.execPath, [join(tree, 'scripts/build-if-stale.mjs'), '--check'], { encoding: 'utf8' });

  it('up to date when every output is newer than every source; stale when a source changes or an output is missing', () => {
    mkdirSync(join(tree, 'scripts'), { recursive: true });
    writeFileSync(join(tree, 'scripts/build-if-stale.mjs'), readFileSync(new URL('../scripts/build-if-stale.mjs', import.meta.url)));
    const old = 1_700_000_000,
      later = old + 100;
    for (const f of ['assembly/index.ts', 'src/cli.ts', 'asconfig.json', 'tsconfig.json', 'package.json', 'scripts/inline-wasm.mjs'])
      touch(f, old);
    utimesSync(join(tree, 'scripts/build-if-stale.mjs'), old, old);
    for (const b of ['simd', 'relaxed', 'scalar', 'simd-mt', 'relaxed-mt']) touch(`build/bnb.${b}.wasm`, later);
    for (const f of ['dist/cli.js', 'dist/core.js', 'dist/backend/wasm/runtime/inline-bytes.js']) touch(f, later + 1);
    expect(check()).toMatchObject({ status: 0, stdout: 'up to date\n' });
    touch('src/cli.ts', later + 5);
    expect(check()).toMatchObject({ status: 1, stdout: 'stale: src/cli.ts changed\n' });
    touch('src/cli.ts', old);
    touch('assembly/index.ts', later + 5);
    expect(check()).toMatchObject({ status: 1, stdout: 'stale: assembly/index.ts changed\n' });
    touch('assembly/index.ts', old);
    rmSync(join(tree, 'build/bnb.scalar.wasm'));
    expect(check()).toMatchObject({ status: 1, stdout: 'stale: build/bnb.scalar.wasm is missing\n' });
  });
});

describe('bnbjs inspect --backends', () => {
  it('reports the backends without failing, also without CUDA', () => {
    const r = bnbjs('inspect', '--backends', '--json');
    expect(r.status).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p.wasm.simd).toBe(true);
    expect(typeof p.cuda.available).toBe('boolean');
    if (!p.cuda.available) expect(p.cuda.reason).toBeTruthy();
    expect(bnbjs('inspect', '--backends').stdout).toMatch(/^WebAssembly: simd build/);
  });
});
