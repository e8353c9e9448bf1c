// What a new user trips over on the command line: no command, a mistyped option, options
// a format does not take, nothing to dequantize, an output inside its input, a file that
// is not a checkpoint, and the progress line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { ProgressEvent } from '../src/checkpoint/common.js';
import { bytesText, durationText, progressLine } from '../src/cli/progress.js';
import { nearest } from '../src/cli/usage.js';
import { SHARED } from './helpers/golden.js';
import { rejection } from './helpers/util.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const models = `${SHARED}/models`;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-ux-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function bnbjs(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of the tiny bf16 model in a folder of its own. */
function model(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(`${models}/tiny-llama-bf16`)) writeFileSync(join(dir, f), readFileSync(`${models}/tiny-llama-bf16/${f}`));
  return dir;
}

describe('usage', () => {
  it('no command: exit 2 and the help on stderr', () => {
    const r = bnbjs();
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^bnbjs: no command given \[E_USAGE\]\nUsage: bnbjs <command>/);
  });

  it("an unknown option names the nearest one and prints only that command's usage line", () => {
    const r = bnbjs('quantize', 'a', 'b', '--format', 'nf4', '--dobule-quant');
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe('bnbjs: unknown option --dobule-quant (did you mean --double-quant?) [E_USAGE]');
    expect(lines[1]).toMatch(/^usage: bnbjs quantize <in> <out> --format nf4\|fp4\|int8 /);
    expect(bnbjs('dequantize', 'a', 'b', '--max-shard').stderr).toMatch(
      /unknown option --max-shard \(did you mean --max-shard-size\?\)[^\n]*\nusage: bnbjs dequantize /,
    );
    expect(bnbjs('inspect', 'x', '--backend').stderr).toMatch(/did you mean --backends\?/);
    const cmd = bnbjs('quantise', 'a', 'b');
    expect(cmd.status).toBe(2);
    expect(cmd.stderr).toMatch(/unknown command "quantise" \(did you mean quantize\?\)/);
    expect(
      nearest(
        'forse',
        ['--force', '--format'].map((o) => o.slice(2)),
      ),
    ).toBe('force');
  });

  it('int8 refuses --blocksize, --double-quant and --storage (CLI: exit 2; library: E_ARGUMENT)', async () => {
    for (const extra of [['--blocksize', '64'], ['--double-quant'], ['--storage', 'uint8']]) {
      const r = bnbjs('quantize', `${models}/tiny-llama-bf16`, join(tmp, 'int8-x'), '--format', 'int8', ...extra);
      expect(r.status, extra.join(' ')).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`--format int8 takes no ${extra[0]}: LLM.int8 quantizes whole rows`));
    }
    for (const opt of [{ blocksize: 64 }, { doubleQuant: true }, { storage: 'uint8' as const }]) {
      expect(
        await rejection(() => quantizeCheckpoint(`${models}/tiny-llama-bf16`, join(tmp, 'int8-y'), { format: 'int8', ...opt })),
      ).toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/is not accepted with format 'int8'/) });
    }
    expect(existsSync(join(tmp, 'int8-x')) || existsSync(join(tmp, 'int8-y'))).toBe(false);
  });
});

describe('inputs and outputs a user gets wrong', () => {
  it('dequantize of a model with no quantized layer is an error unless --allow-empty', async () => {
    const r = bnbjs('dequantize', `${models}/tiny-llama-bf16`, join(tmp, 'empty-out'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /has no quantized layers .*: nothing to dequantize \(pass allowEmpty, --allow-empty, to copy it anyway\) \[E_CKPT_FORMAT\]/,
    );
    expect(existsSync(join(tmp, 'empty-out'))).toBe(false);
    const ok = bnbjs('dequantize', `${models}/tiny-llama-bf16`, join(tmp, 'empty-out'), '--allow-empty', '--json');
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).layers).toBe(0);
    expect(
      readFileSync(join(tmp, 'empty-out', 'model.safetensors')).equals(readFileSync(`${models}/tiny-llama-bf16/model.safetensors`)),
    ).toBe(true);
    expect((await rejection(() => dequantizeCheckpoint(`${models}/tiny-llama-bf16`, join(tmp, 'empty-2')))).code).toBe('E_CKPT_FORMAT');
  });

  it('an output that is, contains or is inside the input is refused, with or without --force, and the input stays intact', () => {
    const m = model('m');
    writeFileSync(join(m, 'notes.txt'), 'mine');
    const before = readdirSync(m).sort();
    symlinkSync(m, join(tmp, 'm-link'));
    const cases: [string, string, RegExp][] = [
      [m, join(m, 'nf4'), /is inside the input/],
      [m, m, /is the input/],
      [join(m, 'model.safetensors'), m, /contains the input/],
      [join(m, 'model.safetensors'), join(m, 'model.safetensors'), /is the input/],
      [m, join(tmp, 'm-link', 'out'), /is inside the input .*after following symbolic links/],
      [join(tmp, 'm-link'), join(m, 'sub', 'deeper'), /is inside the input/],
    ];
    for (const [input, output, why] of cases) {
      for (const force of [[], ['--force']]) {
        const r = bnbjs('quantize', input, output, '--format', 'nf4', ...force);
        expect(r.status, `${input} -> ${output} ${force}`).toBe(1);
        expect(r.stderr).toMatch(why);
        expect(r.stderr).toMatch(/choose an output outside it \[E_ARGUMENT\]/);
      }
    }
    expect(readdirSync(m).sort()).toEqual(before);
    expect(readFileSync(join(m, 'model.safetensors')).equals(readFileSync(`${models}/tiny-llama-bf16/model.safetensors`))).toBe(true);
    // a sibling whose name starts with the input's is not inside it
    expect(bnbjs('quantize', m, `${m}2`, '--format', 'nf4').status).toBe(0);
  });

  it('a Hugging Face cache snapshot (every file a symbolic link into ../../blobs): weights and companions come through', async () => {
    const repo = join(tmp, 'hub', 'models--org--tiny');
    const snap = join(repo, 'snapshots', 'abc123');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(snap, { recursive: true });
    const files: [string, Buffer][] = [
      ...readdirSync(`${models}/tiny-llama-bf16`).map((f) => [f, readFileSync(`${models}/tiny-llama-bf16/${f}`)] as [string, Buffer]),
      ['tokenizer.json', Buffer.from('{"version": "1.0"}')],
    ];
    files.forEach(([name, data], i) => {
      writeFileSync(join(repo, 'blobs', `blob${i}`), data);
      symlinkSync(join('..', '..', 'blobs', `blob${i}`), join(snap, name));
    });
    const out = join(tmp, 'from-hub');
    await quantizeCheckpoint(snap, out, { format: 'nf4' });
    expect(readdirSync(out).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']);
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe('{"version": "1.0"}');
  });

  it('a README or config.json given as the checkpoint: an error that says what a checkpoint is', () => {
    const readme = join(tmp, 'README.md');
    writeFileSync(readme, '# My model\n\nWeights are in model.safetensors.\n');
    for (const path of [readme, join(`${models}/tiny-llama-bf16`, 'config.json')]) {
      const r = bnbjs('inspect', path);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /is not a checkpoint \(.*\): a checkpoint is a \.safetensors file, a \*\.safetensors\.index\.json naming its shards, or a model folder holding either \[E_CKPT_FORMAT\]/,
      );
      expect(r.stderr).not.toMatch(/header length/);
    }
  });
});

describe('progress', () => {
  it('bytes, throughput and time left', () => {
    expect(bytesText(512)).toBe('512 B');
    expect(bytesText(1536)).toBe('1.5 KiB');
    expect(bytesText(3 * 2 ** 30)).toBe('3.0 GiB');
    expect(durationText(7.4)).toBe('7s');
    expect(durationText(185)).toBe('3m05s');
    expect(durationText(3725)).toBe('1h02m');
    const p: ProgressEvent = {
      bytesDone: 2 ** 30,
      bytesTotal: 4 * 2 ** 30,
      tensorsDone: 10,
      tensorsTotal: 40,
      name: 'model.layers.3.mlp.up_proj.weight',
      seconds: 4,
    };
    expect(progressLine(p, 8)).toBe('[##......]  25% 1.0 GiB/4.0 GiB  256.0 MiB/s  ETA 12s  model.layers.3.mlp.up_proj.weight');
    expect(progressLine({ ...p, bytesDone: p.bytesTotal, seconds: 16 }, 8)).toMatch(
      /^\[########\] 100% 4\.0 GiB\/4\.0 GiB {2}256\.0 MiB\/s {2}ETA 0s/,
    );
  });

  it('onProgress is called after each input tensor with bytes that reach the total', async () => {
    const events: ProgressEvent[] = [];
    const r = await quantizeCheckpoint(`${models}/tiny-llama-bf16`, join(tmp, 'progress'), {
      format: 'nf4',
      onProgress: (e) => events.push(e),
    });
    expect(events).toHaveLength(21); // the input's tensors: 14 Linear weights, 5 norms, the embeddings and lm_head
    expect(events.at(-1)).toMatchObject({ bytesDone: r.bytesIn, bytesTotal: r.bytesIn, tensorsDone: r.tensors, tensorsTotal: r.tensors });
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.bytesDone).toBeGreaterThan(events[i - 1]!.bytesDone);
      expect(events[i]!.seconds).toBeGreaterThanOrEqual(events[i - 1]!.seconds);
    }
  });

  const script = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!script)('on a terminal the CLI draws the line (run under script(1) for a pseudo-terminal)', () => {
    const out = join(tmp, 'tty');
    const r = spawnSync(
      'script',
      ['-qfec', `${process.execPath} ${cli} quantize ${models}/tiny-llama-bf16 ${out} --format nf4`, '/dev/null'],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/\[#{24}\] 100% 3\.3 MiB\/3\.3 MiB {2}[0-9.]+ (KiB|MiB|GiB)\/s {2}ETA 0s/);
    expect(r.stdout).toMatch(/quantized 14 layers, \d+ tensors/);
  });
});
