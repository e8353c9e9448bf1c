// Names a user gives (#15, item 10) are looked up as own properties, never through
// Object.prototype: "toString", "constructor", "__proto__", "hasOwnProperty" and "valueOf"
// are refused like any unknown name, and integer dtypes are not compute dtypes. Each
// refusal has its exact code, writes nothing and leaves the input intact.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  QuantState,
  dequantize4bit,
  dequantizeFp8,
  get4bitType,
  int8MmDequant,
  itemsize,
  quantize4bit,
  setForcedBackend,
  setWasmBuild,
  tensor,
  toDevice,
} from '../src/index.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { SHARED } from './helpers/golden.js';
import { error, rejection } from './helpers/util.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-names-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const NAMES = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf', 'int8', 'uint8'] as const;

/** A copy of a shared model in a folder of its own. */
function model(from: string, name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const f of readdirSync(`${SHARED}/models/${from}`)) writeFileSync(join(dir, f), readFileSync(`${SHARED}/models/${from}/${f}`));
  return dir;
}
const float = model('tiny-llama-bf16', 'float');
const nf4 = model('tiny-llama-nf4-dq', 'nf4');

/** Every file of the scratch folder and its SHA-256: inputs intact, no output or temporary appeared. */
function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${rel}${e.name}/`);
      else
        out[`${rel}${e.name}`] = createHash('sha256')
          .update(readFileSync(join(dir, e.name)))
          .digest('hex');
    }
  };
  walk(tmp, '');
  return out;
}

function bnbjs(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the CLI: every option that takes a name', () => {
  // [command, option, what the message says is accepted, the names it does accept]
  const options: [string, string, RegExp, readonly string[]][] = [
    ['quantize', '--format', /expected one of nf4, fp4, int8/, ['int8']],
    ['quantize', '--storage', /expected one of uint8, float16, bfloat16, float32/, ['uint8']],
    ['quantize', '--compute-dtype', /expected bf16, fp16 or fp32 \(or bfloat16, float16, float32, f16, f32\)/, []],
    ['quantize', '--blocksize', /expected one of 32, 64, 128, 256, 512, 1024, 2048, 4096/, []],
    ['quantize', '--max-shard-size', /expected bytes or a size such as 5GB, 500MB or 2GiB/, []],
    ['dequantize', '--dtype', /expected bf16, fp16 or fp32 \(or bfloat16, float16, float32, f16, f32\)/, []],
    ['dequantize', '--max-shard-size', /expected bytes or a size such as 5GB, 500MB or 2GiB/, []],
  ];

  it.each(options)(
    '%s %s <name>: E_USAGE naming the option, the value and the accepted list; exit 2, nothing written',
    (command, option, accepted, valid) => {
      const input = command === 'quantize' ? float : nf4;
      const before = snapshot();
      for (const name of NAMES.filter((n) => !valid.includes(n))) {
        const extra = command === 'quantize' && option !== '--format' ? ['--format', 'nf4'] : [];
        const r = bnbjs(command, input, join(tmp, 'out'), ...extra, option, name);
        expect(r.status, `${option} ${name}: ${r.stderr}`).toBe(2);
        expect(r.stdout).toBe('');
        const [line, usage, ...rest] = r.stderr.split('\n');
        expect(line).toMatch(new RegExp(`^bnbjs: ${option} ${name}: ${accepted.source} \\[E_USAGE\\]$`));
        expect(usage).toMatch(new RegExp(`^usage: bnbjs ${command} `));
        expect(rest).toEqual(['']);
      }
      expect(snapshot()).toEqual(before);
      expect(existsSync(join(tmp, 'out'))).toBe(false);
    },
  );

  it('a command named like an Object.prototype member is an unknown command (exit 2)', () => {
    for (const name of NAMES) {
      const r = bnbjs(name, float, join(tmp, 'out'));
      expect(r.status, name).toBe(2);
      expect(r.stderr).toMatch(
        new RegExp(`^bnbjs: unknown command "${name}" \\(did you mean [a-z]+\\?\\) \\[E_USAGE\\]\\nUsage: bnbjs <command>`),
      );
    }
    expect(existsSync(join(tmp, 'out'))).toBe(false);
  });
});

describe('the library: every option that takes a name', () => {
  it('quantizeCheckpoint and dequantizeCheckpoint: exact codes, nothing written, the input intact', async () => {
    const before = snapshot();
    const out = join(tmp, 'lib-out');
    for (const name of NAMES) {
      const cases: [string, () => Promise<unknown>, string][] = [
        ['format', () => quantizeCheckpoint(float, out, { format: name as 'nf4' }), 'E_ARGUMENT'],
        ['storage', () => quantizeCheckpoint(float, out, { format: 'nf4', storage: name as 'uint8' }), 'E_DTYPE'],
        ['computeDType', () => quantizeCheckpoint(float, out, { format: 'nf4', computeDType: name as 'float16' }), 'E_DTYPE'],
        ['computeDType', () => quantizeCheckpoint(float, out, { format: 'int8', computeDType: name as 'float16' }), 'E_DTYPE'],
        ['maxShardSize', () => quantizeCheckpoint(float, out, { format: 'nf4', maxShardSize: name }), 'E_ARGUMENT'],
        ['dtype', () => dequantizeCheckpoint(nf4, out, { dtype: name as 'float16' }), 'E_DTYPE'],
        ['maxShardSize', () => dequantizeCheckpoint(nf4, out, { maxShardSize: name }), 'E_ARGUMENT'],
      ];
      for (const [option, f, code] of cases) {
        if ((option === 'format' && name === 'int8') || (option === 'storage' && name === 'uint8')) continue; // accepted names
        const e = await rejection(f);
        expect(e.code, `${option} = ${name}`).toBe(code);
        expect(e.message).toContain(`${option} = ${JSON.stringify(name)} is not accepted: expected`);
      }
    }
    const e = await rejection(() => quantizeCheckpoint(float, out, { format: 'nf4', computeDType: 'int8' as 'float16' }));
    expect(e.message).toBe(
      `computeDType = "int8" is not accepted: expected one of float32, float16, bfloat16 (bnb_4bit_compute_dtype, the dtype bitsandbytes' 4-bit layers compute in)`,
    );
    expect(snapshot()).toEqual(before);
  });

  it('flags are booleans (a truthy "yes" does not force a replacement), onProgress a function, skip a pattern', async () => {
    const out = join(tmp, 'lib-flags');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    const before = snapshot();
    for (const [opts, argument] of [
      [{ format: 'nf4', force: 'yes' }, 'force'],
      [{ format: 'nf4', doubleQuant: 'constructor' }, 'doubleQuant'],
      [{ format: 'nf4', onProgress: 'toString' }, 'onProgress'],
      [{ format: 'nf4', skip: 42 }, 'skip'],
    ] as const) {
      const e = await rejection(() => quantizeCheckpoint(float, out, opts as never));
      expect(e.code).toBe('E_ARGUMENT');
      expect(e.message).toMatch(new RegExp(`^${argument} = `));
    }
    expect((await rejection(() => dequantizeCheckpoint(nf4, out, { allowEmpty: 'no' as never }))).code).toBe('E_ARGUMENT');
    expect((await rejection(() => dequantizeCheckpoint(nf4, out, null as never))).code).toBe('E_ARGUMENT');
    expect(snapshot()).toEqual(before);
  });

  it('ops, states and settings: exact codes for every name', () => {
    const A = tensor(
      Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)),
      [64],
    );
    const [q, s] = quantize4bit(A, { quantType: 'nf4' });
    const W8 = tensor(new Uint8Array(256), [16, 16], 'float8_e4m3fn'),
      S8 = tensor(new Float32Array([1]), [1, 1]);
    const I32 = tensor(new Int32Array(4), [2, 2], 'int32'),
      stats = tensor(new Float32Array(2), [2]);
    const cases: [string, (n: string) => unknown, string, readonly string[]][] = [
      ['quantize4bit quantType', (n) => quantize4bit(A, { quantType: n as 'nf4' }), 'E_QUANT_TYPE', []],
      ['quantize4bit quantStorage', (n) => quantize4bit(A, { quantStorage: n as 'uint8' }), 'E_DTYPE', ['uint8']],
      [
        'dequantize4bit quantType',
        (n) => dequantize4bit(q, { absmax: s.absmax, shape: [64], blocksize: 64, quantType: n as 'nf4' }),
        'E_QUANT_TYPE',
        [],
      ],
      [
        'dequantize4bit dtype',
        (n) => dequantize4bit(q, { absmax: s.absmax, shape: [64], blocksize: 64, quantType: 'nf4', dtype: n as 'float32' }),
        'E_DTYPE',
        [],
      ],
      ['get4bitType', (n) => get4bitType(n as 'nf4'), 'E_QUANT_TYPE', []],
      ['itemsize', (n) => itemsize(n as 'uint8'), 'E_DTYPE', ['int8', 'uint8']],
      ['tensor dtype', (n) => tensor(new Uint8Array(4), [4], n as 'uint8'), 'E_DTYPE', ['uint8']],
      ['QuantState.fromDict dtype', (n) => QuantState.fromDict({ ...s.asDict(), dtype: n }), 'E_STATE', []],
      ['QuantState.fromDict quant_type', (n) => QuantState.fromDict({ ...s.asDict(), quant_type: n }), 'E_QUANT_TYPE', []],
      ['dequantizeFp8 dtype', (n) => dequantizeFp8(W8, S8, { dtype: n as 'float32', blockSize: 16 }), 'E_DTYPE', []],
      ['int8MmDequant dtype', (n) => int8MmDequant(I32, stats, stats, { dtype: n as 'float32' }), 'E_DTYPE', []],
      ['toDevice', (n) => toDevice(A, n), 'E_DEVICE', []],
      ['setWasmBuild', (n) => setWasmBuild(n as 'simd'), 'E_ARGUMENT', []],
      ['setForcedBackend', (n) => setForcedBackend(n as 'wasm'), 'E_ARGUMENT', []],
    ];
    for (const [what, f, code, valid] of cases) {
      for (const name of NAMES) {
        if (valid.includes(name)) expect(() => f(name), `${what} ${name}`).not.toThrow();
        else expect(error(() => f(name)).code, `${what} ${name}`).toBe(code);
      }
    }
    expect(itemsize('int8')).toBe(1);
  });
});
