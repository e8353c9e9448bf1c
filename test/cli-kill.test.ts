// The CLI never leaves a partial or corrupt output: killed mid-write (SIGKILL, which
// cannot be caught, and SIGTERM/SIGINT, which can), failing half-way, or pointed at an
// existing output without --force. Outputs are built under a hidden temporary name
// (.NAME.bnbjs-HOST-PID-ID.tmp, ID naming the owner's lock .bnbjs-HOST-ID.lock) and
// renamed when complete; a SIGKILLed run leaves both, and the next run for the same
// output removes them. (--force interrupted mid-swap: output-swap.test.ts.)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tensor, serializeSafetensors, tensor } from '../src/index.js';
import { numberToBf16 } from '../src/float16.js';
import { Rng } from './helpers/random.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'bnbjs-kill-'));
const input = join(dir, 'in.safetensors');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A bf16 checkpoint of 16 Linear weights [2048, 4096] (256 MiB), with a NaN in the last one when asked. */
function writeInput(path: string, nanInLast = false): void {
  const rng = new Rng(8);
  const base = Uint16Array.from({ length: 1 << 16 }, () => numberToBf16(rng.normal()));
  const tensors: Record<string, Tensor> = {};
  for (let l = 0; l < 16; l++) {
    const data = new Uint16Array(2048 * 4096);
    for (let i = 0; i < data.length; i += base.length) data.set(base, i);
    data[l] = numberToBf16(l + 1); // every layer differs
    if (nanInLast && l === 15) data[data.length - 7] = 0x7fc0;
    tensors[`model.layers.${l}.mlp.up_proj.weight`] = tensor(data, [2048, 4096], 'bfloat16');
  }
  writeFileSync(path, serializeSafetensors(tensors, { metadata: { format: 'pt' } }));
}

beforeAll(() => writeInput(input));

/** Hidden temporaries of `name` in `where`. */
const temporaries = (where: string, name: string) =>
  readdirSync(where).filter((f) => f.startsWith(`.${name}.bnbjs-`) && f.endsWith('.tmp'));

function bnbjs(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

/**
 * Starts a conversion, stops it (SIGSTOP) the moment its temporary output holds data,
 * checks that the final path does not exist, then sends `signal`. A run that finished
 * between the look and the stop (a race on a fast machine) is discarded and retried.
 */
async function interrupt(
  args: string[],
  out: string,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const where = join(out, '..'),
    name = out.slice(where.length + 1);
  for (let attempt = 0; attempt < 5; attempt++) {
    rmSync(out, { recursive: true, force: true });
    const child = spawn(process.execPath, [cli, ...args], { stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      child.on('exit', (code, sig) => r({ code, signal: sig })),
    );
    let caught = false;
    for (let i = 0; i < 20_000 && child.exitCode === null && !caught; i++) {
      const [t] = temporaries(where, name);
      if (t !== undefined) {
        let size = 0;
        try {
          const p = join(where, t);
          // a folder output holds the weights under their own temporary name until they are complete
          size = statSync(p).isDirectory() ? Math.max(0, ...readdirSync(p).map((f) => statSync(join(p, f)).size)) : statSync(p).size;
        } catch {
          // renamed or removed meanwhile
        }
        if (size > 16 << 20) {
          child.kill('SIGSTOP');
          caught = temporaries(where, name).length > 0 && !existsSync(out);
          if (!caught) child.kill('SIGKILL');
        }
      }
      if (!caught) await new Promise((r) => setTimeout(r, 2));
    }
    if (!caught) {
      await exited;
      continue;
    }
    expect(existsSync(out), 'no output while the temporary is being written').toBe(false);
    child.kill(signal);
    if (signal !== 'SIGKILL') child.kill('SIGCONT');
    return exited;
  }
  throw new Error(`could not catch ${args.join(' ')} mid-write`);
}

describe('bnbjs CLI, interrupted or failing', () => {
  it('SIGKILL mid-write (file output): no output, one hidden temporary, removed by the next run', async () => {
    const out = join(dir, 'killed.safetensors');
    const r = await interrupt(['quantize', input, out, '--format', 'nf4'], out, 'SIGKILL');
    expect(r.signal).toBe('SIGKILL');
    expect(existsSync(out)).toBe(false);
    const left = temporaries(dir, 'killed.safetensors');
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(new RegExp(`^\\.killed\\.safetensors\\.bnbjs-[A-Za-z0-9_-]+-\\d+-[0-9a-z]+\\.tmp$`));
    const again = bnbjs('quantize', input, out, '--format', 'nf4', '--json');
    expect(again.status, again.stderr).toBe(0);
    expect(temporaries(dir, 'killed.safetensors')).toEqual([]); // the dead process's temporary is gone
    expect(readdirSync(dir).filter((f) => f.endsWith('.lock'))).toEqual([]); // and its lock
    expect(JSON.parse(bnbjs('inspect', out, '--json').stdout).layers).toHaveLength(16);
  }, 120_000);

  it('SIGKILL mid-write (folder output): no output folder, only a hidden temporary folder', async () => {
    const folder = join(dir, 'folder-in');
    rmSync(folder, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', folder]);
    writeFileSync(join(folder, 'model.safetensors'), readFileSync(input));
    writeFileSync(join(folder, 'config.json'), '{"model_type": "llama", "dtype": "bfloat16"}');
    const out = join(dir, 'folder-out');
    const r = await interrupt(['quantize', folder, out, '--format', 'fp4', '--double-quant'], out, 'SIGKILL');
    expect(r.signal).toBe('SIGKILL');
    expect(existsSync(out)).toBe(false);
    expect(temporaries(dir, 'folder-out')).toHaveLength(1);
    rmSync(folder, { recursive: true, force: true });
  }, 120_000);

  it('SIGTERM and SIGINT mid-write: the temporary is removed too, exit 128 + signal', async () => {
    for (const [signal, status] of [
      ['SIGTERM', 143],
      ['SIGINT', 130],
    ] as const) {
      const out = join(dir, `term-${signal}.safetensors`);
      const r = await interrupt(['dequantize', input, out, '--dtype', 'fp32', '--allow-empty'], out, signal);
      expect(r.code, signal).toBe(status);
      expect(existsSync(out)).toBe(false);
      expect(temporaries(dir, `term-${signal}.safetensors`), signal).toEqual([]);
    }
  }, 120_000);

  it('a run that fails half-way (NaN in the last layer) exits 1 and leaves nothing', () => {
    const bad = join(dir, 'nan.safetensors');
    writeInput(bad, true);
    const out = join(dir, 'never.safetensors');
    const r = bnbjs('quantize', bad, out, '--format', 'nf4', '--json');
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout).error).toMatchObject({
      code: 'E_NON_FINITE',
      message: expect.stringMatching(/model\.layers\.15\.mlp\.up_proj\.weight: A has a non-finite value \(NaN\) at flat index 8388601/),
    });
    expect(existsSync(out)).toBe(false);
    expect(temporaries(dir, 'never.safetensors')).toEqual([]);
    rmSync(bad);
  }, 120_000);

  it('never overwrites without --force: exit 3, the existing output byte for byte unchanged', () => {
    const out = join(dir, 'existing.safetensors');
    writeFileSync(out, 'precious');
    for (const args of [
      ['quantize', input, out, '--format', 'fp4'],
      ['dequantize', input, out, '--allow-empty'],
    ]) {
      const r = bnbjs(...args);
      expect(r.status).toBe(3);
      expect(r.stderr).toMatch(/exists: pass force \(--force\) to replace it \[E_EXISTS\]/);
      expect(readFileSync(out, 'utf8')).toBe('precious');
    }
    expect(temporaries(dir, 'existing.safetensors')).toEqual([]);
    const forced = bnbjs('quantize', input, out, '--format', 'fp4', '--force');
    expect(forced.status, forced.stderr).toBe(0);
    expect(readFileSync(out).subarray(0, 8).readBigUInt64LE()).toBeGreaterThan(0n);
  }, 120_000);

  it('--force on a folder swaps the old output aside and removes it: no leftovers', () => {
    const small = join(dir, 'small-in');
    mkdirSync(small, { recursive: true });
    const W = tensor(
      Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i)),
      [64, 64],
    );
    writeFileSync(join(small, 'model.safetensors'), serializeSafetensors({ 'model.layers.0.mlp.up_proj.weight': W }));
    writeFileSync(join(small, 'config.json'), '{"model_type": "llama"}');
    const out = join(dir, 'small-out');
    expect(bnbjs('quantize', small, out, '--format', 'nf4').status).toBe(0);
    writeFileSync(join(out, 'stale.txt'), 'from the old output');
    const r = bnbjs('quantize', small, out, '--format', 'int8', '--force');
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(temporaries(dir, 'small-out')).toEqual([]);
  });

  it('tensor names with terminal escapes or bidirectional overrides are printed escaped', () => {
    const path = join(dir, 'hostile.safetensors');
    const name = 'model.\u001b[2J\u001b]0;owned\u0007layers.\u202eweight';
    writeFileSync(path, serializeSafetensors({ [name]: tensor(new Float32Array(4)) }));
    const r = bnbjs('inspect', path);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/[\u001b\u0007\u202e]/);
    expect(r.stdout).toContain('model.\\u001b[2J\\u001b]0;owned\\u0007layers.\\u202eweight');
  });
});
