// config.json as transformers writes and reads it: our quantization_config against the
// one transformers wrote for the same settings (../shared/models), the input's number
// lexemes kept, Python's json.dumps layout, and transformers' type rules for every
// BitsAndBytesConfig field (the rules llm_int8_threshold: 6 broke).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeSafetensors, tensor } from '../src/index.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { bitsAndBytesConfig, configText } from '../src/checkpoint/config.js';
import { JsonValue, parseJson } from '../src/json/parse.js';
import { PyJson } from '../src/json/dumps.js';
import { SHARED } from './helpers/golden.js';
import { bitsAndBytesConfigErrors, isPyFloat } from './helpers/transformers-rules.js';

const models = `${SHARED}/models`;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const tree = (text: string) =>
  parseJson(text, { code: 'E_CKPT_FORMAT', what: 'config', expected: 'JSON', python: true }) as Map<string, JsonValue>;
const read = (dir: string) => readFileSync(join(dir, 'config.json'), 'utf8');
const python = spawnSync('python3', ['-c', 'print(1)'], { encoding: 'utf8' }).status === 0;

/** Python's json.loads then json.dumps(indent=2, sort_keys=True) + "\n", as transformers writes config.json. */
function pythonRewrite(text: string): string {
  const r = spawnSync(
    'python3',
    ['-c', 'import json,sys; sys.stdout.write(json.dumps(json.loads(sys.stdin.read()), indent=2, sort_keys=True) + "\\n")'],
    { input: text, encoding: 'utf8' },
  );
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('quantization_config as transformers writes it', () => {
  it('nf4 + double quant and int8: config.json byte for byte what transformers + bitsandbytes wrote for the same model', async () => {
    for (const [format, doubleQuant, theirs] of [
      ['nf4', true, 'tiny-llama-nf4-dq'],
      ['int8', false, 'tiny-llama-int8'],
    ] as const) {
      const out = join(tmp, `same-${format}`);
      await quantizeCheckpoint(`${models}/tiny-llama-bf16`, out, { format, doubleQuant });
      const ours = tree(read(out)),
        want = tree(read(`${models}/${theirs}`));
      // field by field, lexeme by lexeme (6.0 is not 6)
      const q = ours.get('quantization_config') as Map<string, JsonValue>,
        w = want.get('quantization_config') as Map<string, JsonValue>;
      expect([...q.keys()]).toEqual([...w.keys()]);
      for (const [k, v] of w)
        expect(configText(new Map([[k, q.get(k) as PyJson]])), `${format} ${k}`).toBe(configText(new Map([[k, v as PyJson]])));
      expect(read(out)).toBe(read(`${models}/${theirs}`));
    }
  });

  it("every option combination passes transformers' BitsAndBytesConfig type rules", async () => {
    const combos: Parameters<typeof bitsAndBytesConfig>[0][] = [];
    for (const format of ['nf4', 'fp4', 'int8'] as const) {
      for (const doubleQuant of [false, true]) {
        for (const storage of ['uint8', 'float16', 'bfloat16', 'float32']) {
          for (const skip of [null, ['model.layers.0.mlp.up_proj']])
            combos.push({ format, doubleQuant, storage, computeDType: 'bfloat16', skip });
        }
      }
    }
    for (const c of combos) {
      const text = configText(new Map([['quantization_config', bitsAndBytesConfig(c)]]));
      expect(bitsAndBytesConfigErrors(tree(text).get('quantization_config')), JSON.stringify(c)).toEqual([]);
    }
    // and on what the CLI path writes, through the file
    const out = join(tmp, 'rules');
    await quantizeCheckpoint(`${models}/tiny-llama-bf16`, out, {
      format: 'fp4',
      storage: 'bfloat16',
      skip: 'down_proj',
      computeDType: 'float16',
    });
    const q = tree(read(out)).get('quantization_config');
    expect(bitsAndBytesConfigErrors(q)).toEqual([]);
    expect(((q as Map<string, JsonValue>).get('llm_int8_skip_modules') as string[]).sort()).toEqual([
      'model.layers.0.mlp.down_proj',
      'model.layers.1.mlp.down_proj',
    ]);
  });

  it('the rules catch what transformers refuses (the int 6 of the first release among them)', () => {
    const q = (fields: string) => tree(`{"quantization_config": {"quant_method": "bitsandbytes", ${fields}}}`).get('quantization_config');
    expect(bitsAndBytesConfigErrors(q('"llm_int8_threshold": 6'))).toEqual(['llm_int8_threshold must be a float']);
    expect(bitsAndBytesConfigErrors(q('"llm_int8_threshold": 6.0'))).toEqual([]);
    expect(bitsAndBytesConfigErrors(q('"load_in_4bit": 1'))).toEqual(['load_in_4bit must be a boolean']);
    expect(bitsAndBytesConfigErrors(q('"llm_int8_skip_modules": "lm_head"'))).toEqual(['llm_int8_skip_modules must be a list of strings']);
    expect(bitsAndBytesConfigErrors(q('"bnb_4bit_quant_storage": "int4"'))).toEqual(['`bnb_4bit_quant_storage` must be a valid string']);
    expect(bitsAndBytesConfigErrors(q('"load_in_4bit": true, "load_in_8bit": true'))).toEqual([
      'load_in_4bit and load_in_8bit are both True',
    ]);
    expect(isPyFloat(tree('{"x": 1e-05}').get('x'))).toBe(true);
  });
});

describe('config.json fields copied from the input', () => {
  const input = join(tmp, 'odd-config');
  mkdirSync(input, { recursive: true });
  writeFileSync(
    join(input, 'model.safetensors'),
    serializeSafetensors({
      'model.layers.0.mlp.up_proj.weight': tensor(
        Float32Array.from({ length: 64 * 64 }, (_, i) => Math.cos(i)),
        [64, 64],
      ),
    }),
  );
  // lexemes JSON.parse + JSON.stringify would rewrite, keys out of order, a duplicate (Python keeps the last), non-ASCII text
  const text =
    '{"rope_theta": 500000.0, "rms_norm_eps": 1e-05, "attention_dropout": 0.0, "max_position_embeddings": 131072, ' +
    '"big": 12345678901234567890, "tiny": 5e-324, "neg_zero": -0.0, "huge": 1.5e+300, "inf": Infinity, "nan": NaN, ' +
    '"rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "type": "llama3"}, "eos_token_id": [128001, 128008], ' +
    '"name": "caf\\u00e9 \\ud83d\\ude00", "dtype": "float32", "dup": 1, "dup": 2.50, "model_type": "llama"}';
  writeFileSync(join(input, 'config.json'), text);
  const lexemes = [
    '500000.0',
    '1e-05',
    '0.0',
    '131072',
    '12345678901234567890',
    '5e-324',
    '-0.0',
    '1.5e+300',
    'Infinity',
    'NaN',
    '8.0',
    '1.0',
    '2.50',
  ];

  it('quantize and dequantize keep every number as it was written, and add only quantization_config', async () => {
    await quantizeCheckpoint(input, join(tmp, 'odd-q'), { format: 'nf4' });
    await dequantizeCheckpoint(join(tmp, 'odd-q'), join(tmp, 'odd-d'));
    const q = read(join(tmp, 'odd-q')),
      d = read(join(tmp, 'odd-d'));
    for (const l of lexemes) {
      expect(q, l).toMatch(new RegExp(`: ${l.replace(/[.+]/g, '\\$&')}[,\\n]`));
      expect(d, l).toMatch(new RegExp(`: ${l.replace(/[.+]/g, '\\$&')}[,\\n]`));
    }
    expect(q).toContain('"dup": 2.50');
    expect(q).not.toContain('"dup": 1');
    expect(q).toContain('"name": "caf\\u00e9 \\ud83d\\ude00"'); // ensure_ascii, as Python writes it
    const qt = tree(q),
      dt = tree(d);
    expect([...qt.keys()]).toEqual([...qt.keys()].sort()); // sort_keys
    qt.delete('quantization_config');
    expect(configText(qt as Map<string, PyJson>)).toBe(d);
    expect(dt.has('quantization_config')).toBe(false);
  });

  it.skipIf(!python)("the layout is Python's json.dumps(indent=2, sort_keys=True) byte for byte", async () => {
    // Python rewrites 2.50 as 2.5, 1.5e+300 as 1.5e+300, Infinity as Infinity: compare on lexemes repr keeps
    const plain = join(tmp, 'plain-config');
    mkdirSync(plain, { recursive: true });
    writeFileSync(join(plain, 'model.safetensors'), readFileSync(join(input, 'model.safetensors')));
    writeFileSync(
      join(plain, 'config.json'),
      read(`${models}/tiny-llama-bf16`).replace(
        '"vocab_size": 512',
        '"vocab_size": 512, "rms": 1e-05, "theta": 500000.0, "u": "\\u00e9", "e": [], "o": {}',
      ),
    );
    await quantizeCheckpoint(plain, join(tmp, 'plain-q'), { format: 'int8' });
    const ours = read(join(tmp, 'plain-q'));
    expect(pythonRewrite(ours)).toBe(ours);
  });
});
