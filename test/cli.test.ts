// The bnbjs command line, run as a user runs it (the built dist/cli.js).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SHARED } from './helpers/golden.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const models = `${SHARED}/models`;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

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
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config.llm_int8_skip_modules).toContain('model.layers.0.mlp.down_proj');
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
