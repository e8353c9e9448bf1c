// An output that is, contains or lies inside its input is refused (E_ARGUMENT), with
// force or without, for quantize and dequantize, for a folder input and a file input,
// given directly, through symbolic links, and through `link/..` (which the kernel
// resolves after following `link`, where path.resolve drops both). After every refusal
// every entry below the test's root (the input's bytes, the links, the other folders)
// is what it was: `quantize P/model.safetensors P --force` once replaced P.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { copyModel, snapshot } from './helpers/folders.js';
import { rejection } from './helpers/util.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'bnbjs-overlap-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// root/T/P: a float model (quantize's input); root/T/Q: an NF4 one (dequantize's input);
// each with a file of the user's and a sub-folder. Links: root/LT -> T, root/LP -> P,
// root/LQ -> Q, root/LF -> P/model.safetensors, root/LG -> Q/model.safetensors, and
// root/L -> T/spare, so that root/L/../P is T/P to the kernel and root/P to path.resolve.
const T = join(root, 'T');
const P = copyModel('tiny-llama-bf16', join(T, 'P'));
const Q = copyModel('tiny-llama-nf4-dq', join(T, 'Q'));
for (const m of [P, Q]) {
  writeFileSync(join(m, 'notes.txt'), 'mine');
  mkdirSync(join(m, 'sub'));
  writeFileSync(join(m, 'sub', 'keep.txt'), 'keep');
}
mkdirSync(join(T, 'spare'));
symlinkSync(T, join(root, 'LT'));
symlinkSync(P, join(root, 'LP'));
symlinkSync(Q, join(root, 'LQ'));
symlinkSync(join(P, 'model.safetensors'), join(root, 'LF'));
symlinkSync(join(Q, 'model.safetensors'), join(root, 'LG'));
symlinkSync(join(T, 'spare'), join(root, 'L'));
// an output name that is a link into the input
symlinkSync(join(P, 'sub'), join(root, 'into-P'));
symlinkSync(join(Q, 'sub'), join(root, 'into-Q'));

type How = 'is' | 'is inside' | 'contains';

/** [input, output, how] for a model folder M reached also through link LM, and its weights through LW. */
function cases(M: string, LM: string, LW: string, into: string): [string, string, How][] {
  const W = join(M, 'model.safetensors');
  const name = basename(M);
  return [
    // folder input
    [M, M, 'is'],
    [M, join(M, 'out'), 'is inside'],
    [M, W, 'is inside'], // quantize m m/model.safetensors --force
    [M, join(M, 'sub', 'deeper', 'x'), 'is inside'],
    [M, T, 'contains'],
    [M, root, 'contains'],
    [LM, M, 'is'],
    [M, LM, 'is'],
    [M, join(LM, 'out'), 'is inside'],
    [M, join(root, 'LT'), 'contains'],
    [M, into, 'is inside'],
    [M, `${root}/L/../${name}`, 'is'],
    [M, `${root}/L/../${name}/out`, 'is inside'],
    [`${root}/L/../${name}`, M, 'is'],
    // file input
    [W, W, 'is'],
    [W, M, 'contains'], // quantize P/model.safetensors P --force
    [W, T, 'contains'],
    [W, join(W, 'x.safetensors'), 'is inside'],
    [LW, W, 'is'],
    [W, LW, 'is'],
    [W, LM, 'contains'],
    [W, `${root}/L/../${name}/model.safetensors`, 'is'],
    [W, `${root}/L/../${name}`, 'contains'],
  ];
}

const convert = {
  quantize: (input: string, output: string, force: boolean) => quantizeCheckpoint(input, output, { format: 'nf4', force }),
  dequantize: (input: string, output: string, force: boolean) => dequantizeCheckpoint(input, output, { force }),
};

describe('an output that overlaps its input is refused and nothing below the root changes', () => {
  for (const [command, M, LM, LW, into] of [
    ['quantize', P, join(root, 'LP'), join(root, 'LF'), join(root, 'into-P')],
    ['dequantize', Q, join(root, 'LQ'), join(root, 'LG'), join(root, 'into-Q')],
  ] as const) {
    it(`${command}: every case, with force and without (library)`, async () => {
      const before = snapshot(root);
      for (const [input, output, how] of cases(M, LM, LW, into)) {
        for (const force of [false, true]) {
          const e = await rejection(() => convert[command](input, output, force));
          expect(e.code, `${input} -> ${output} force ${force}: ${e.message}`).toBe('E_ARGUMENT');
          expect(e.message).toMatch(
            new RegExp(
              `^output = ${JSON.stringify(output).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} ${how} the input .*: choose an output outside it$`,
            ),
          );
          expect(snapshot(root), `${input} -> ${output} force ${force}`).toEqual(before);
        }
      }
      // not a test that cannot fail: beside the input (a name that starts with the input's too) it converts
      const r = await convert[command](M, `${M}2`, false);
      expect(r.tensors).toBeGreaterThan(0);
      expect(existsSync(join(`${M}2`, 'model.safetensors'))).toBe(true);
      expect(readFileSync(join(`${M}2`, 'notes.txt'), 'utf8')).toBe('mine');
      rmSync(`${M}2`, { recursive: true });
      expect(snapshot(root)).toEqual(before);
    });
  }

  it('the CLI: exit 1, E_ARGUMENT, the input intact (the cases of issue #15 and link/..)', () => {
    const before = snapshot(root);
    for (const [command, M, extra] of [
      ['quantize', P, ['--format', 'nf4']],
      ['dequantize', Q, []],
    ] as const) {
      const W = join(M, 'model.safetensors');
      for (const [input, output] of [
        [W, M],
        [M, W],
        [M, `${root}/L/../${basename(M)}`],
        [M, join(root, 'LT')],
      ]) {
        for (const force of [[], ['--force']]) {
          const r = spawnSync(process.execPath, [cli, command, input!, output!, ...extra, ...force], { encoding: 'utf8' });
          expect(r.status, `${command} ${input} ${output} ${force}: ${r.stderr}`).toBe(1);
          expect(r.stderr).toMatch(
            /^bnbjs: output = .* (is|is inside|contains) the input .*: choose an output outside it \[E_ARGUMENT\]\n$/,
          );
          expect(snapshot(root)).toEqual(before);
        }
      }
    }
  });
});
