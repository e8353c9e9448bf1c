// A string in a quant_state blob is a string (#15, item 11). The blob used to be read by
// rewriting Python's NaN/Infinity into marker strings ("\u0000pyfloat:...") that were
// turned back into numbers, so a file's own string carrying the marker became a number
// (hex included: "\u0000pyfloat:0x40" was blocksize 64), and the checkpoint readers turned
// "NaN" inside strings into "0". Blobs are now read by the lexeme-preserving JSON parser:
// numbers are JsonNumber tokens, strings stay strings and are refused where a number belongs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { QuantState, Tensor, quantize4bit, serializeSafetensors, tensor } from '../src/index.js';
import { pyLoads, toPlain } from '../src/json/parse.js';
import { inspectCheckpoint } from '../src/checkpoint/inspect.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { error, rejection } from './helpers/util.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-blob-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const KEY = 'quant_state.bitsandbytes__nf4';
const W = tensor(
  Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i)),
  [64, 64],
);
const [packed, plain] = quantize4bit(W, { quantType: 'nf4' });
const [, nested] = quantize4bit(W, { quantType: 'nf4', compressStatistics: true });
const blobText = (s: QuantState) => new TextDecoder().decode(s.asDict({ packed: true })[KEY]!.data as Uint8Array);
const encode = (text: string) => {
  const b = new TextEncoder().encode(text);
  return tensor(b, [b.length], 'uint8');
};
/** The state's packed dict with its blob's text edited. */
const withBlob = (s: QuantState, edit: (text: string) => string) => ({ ...s.asDict({ packed: true }), [KEY]: encode(edit(blobText(s))) });

/** The JSON escape of the old marker as a file would carry it, and the string it stands for. */
const MARK = '\\u0000pyfloat:';
const MARKED = '\u0000pyfloat:';

describe('QuantState.fromDict', () => {
  it("bnb's own blobs, NaN offset included, still read as before", () => {
    expect(blobText(plain)).toBe('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 64]}');
    expect(QuantState.fromDict(plain.asDict({ packed: true })).equals(plain)).toBe(true);
    expect(QuantState.fromDict(nested.asDict({ packed: true })).equals(nested)).toBe(true);
    // Python writes NaN and Infinity bare; they are floats there and numbers here
    // (non-finite statistics are read only when allowNonFinite asks for them)
    const inf = withBlob(nested, (t) => t.replace(/"nested_offset": [^,}]+/, '"nested_offset": -Infinity'));
    expect(QuantState.fromDict(inf, { allowNonFinite: true }).offset).toBe(-Infinity);
    expect(error(() => QuantState.fromDict(inf)).code).toBe('E_STATE');
    const nan = withBlob(nested, (t) => t.replace(/"nested_offset": [^,}]+/, '"nested_offset": NaN'));
    expect(QuantState.fromDict(nan, { allowNonFinite: true }).offset).toBeNaN();
  });

  it('a string carrying the old float marker is a string: refused where a number belongs, with E_STATE', () => {
    const cases: [QuantState, string, RegExp, string][] = [
      [
        plain,
        `"blocksize": "${MARK}0x40"`,
        /"blocksize": 64/,
        `blocksize = ${JSON.stringify(`${MARKED}0x40`)} is not accepted: expected a positive integer`,
      ],
      [plain, `"blocksize": "${MARK}64"`, /"blocksize": 64/, `blocksize = ${JSON.stringify(`${MARKED}64`)} is not accepted`],
      [plain, `"shape": ["${MARK}64", 64]`, /"shape": \[64, 64\]/, `shape = [${JSON.stringify(`${MARKED}64`)}, 64] is not accepted`],
      [plain, `"dtype": "${MARK}NaN"`, /"dtype": "float32"/, `dtype = ${JSON.stringify(`${MARKED}NaN`)} is not accepted`],
      [
        nested,
        `"nested_offset": "${MARK}0x1"`,
        /"nested_offset": [^,}]+/,
        `nested_offset = ${JSON.stringify(`${MARKED}0x1`)} is not accepted: expected a number`,
      ],
      [
        nested,
        `"nested_blocksize": "${MARK}256"`,
        /"nested_blocksize": 256/,
        `nested_blocksize = ${JSON.stringify(`${MARKED}256`)} is not accepted`,
      ],
    ];
    for (const [state, field, at, message] of cases) {
      const e = error(() => QuantState.fromDict(withBlob(state, (t) => t.replace(at, field))));
      expect(e.code, field).toBe('E_STATE');
      expect(e.message).toContain(message);
    }
  });

  it('NaN and Infinity inside strings stay in the strings (the old rewrite broke the JSON or the string)', () => {
    for (const dtype of ['a: NaN}', 'x, "y": Infinity}', 'NaN', '-Infinity']) {
      const e = error(() =>
        QuantState.fromDict(withBlob(plain, (t) => t.replace('"dtype": "float32"', `"dtype": ${JSON.stringify(dtype)}`))),
      );
      expect(e.code, dtype).toBe('E_STATE');
      expect(e.message).toBe(`dtype = ${JSON.stringify(dtype)} is not accepted: expected one of float32, float16, bfloat16`);
    }
  });

  it('malformed blobs: E_STATE from the strict parser (no JavaScript-only leniency such as lone surrogates)', () => {
    for (const text of [
      '{"quant_type": "nf4", ',
      '{"quant_type": "nf4"} x',
      '{"dtype": "\\ud800"}',
      "{'quant_type': 'nf4'}",
      '{"blocksize": 0x40}',
    ]) {
      const e = error(() => QuantState.fromDict({ ...plain.asDict({ packed: true }), [KEY]: encode(text) }));
      expect(e.code, text).toBe('E_STATE');
      expect(e.message).toMatch(new RegExp(`^${KEY} is not valid JSON: `));
    }
  });
});

describe('pyLoads', () => {
  it('strings round-trip as strings, whatever they hold; bare NaN and Infinity are numbers', () => {
    const text = `{"a": "${MARK}0x40", "b": NaN, "c": [Infinity, -Infinity, "NaN", "${MARK}-Infinity"], "d": 1e-05}`;
    expect(toPlain(pyLoads(text, 'E_STATE', 'blob', 'a JSON object'))).toEqual({
      a: `${MARKED}0x40`,
      b: NaN,
      c: [Infinity, -Infinity, 'NaN', `${MARKED}-Infinity`],
      d: 1e-5,
    });
  });
});

describe('the checkpoint readers (inspect, dequantize)', () => {
  /** A folder holding one nf4 layer whose blob text is edited. */
  function checkpoint(name: string, edit: (text: string) => string): string {
    const dir = join(tmp, name);
    mkdirSync(dir);
    const items: Record<string, Tensor> = { 'model.layers.0.mlp.up_proj.weight': packed };
    for (const [k, v] of Object.entries(withBlob(plain, edit))) items[`model.layers.0.mlp.up_proj.weight.${k}`] = v;
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(items));
    return dir;
  }

  it("inspect reports the blob's strings as strings, not as numbers", async () => {
    const dir = checkpoint('marked', (t) =>
      t.replace('"blocksize": 64', `"blocksize": "${MARK}0x40"`).replace('"dtype": "float32"', '"dtype": "NaN"'),
    );
    const [l] = (await inspectCheckpoint(dir)).layers;
    expect(l!.blocksize).toBe(`${MARKED}0x40`);
    expect(l!.dtype).toBe('NaN');
  });

  it('inspect refuses a blob whose shape is not integers (E_CKPT_QUANT_STATE), in the library and the CLI (no TypeError)', async () => {
    for (const [i, shape] of [`["${MARK}64", 64]`, '"64x64"', '{"0": 64}', '[64, 1.5]', '[-1]'].entries()) {
      const dir = checkpoint(`bad-shape-${i}`, (t) => t.replace('"shape": [64, 64]', `"shape": ${shape}`));
      const e = await rejection(() => inspectCheckpoint(dir));
      expect(e.code, shape).toBe('E_CKPT_QUANT_STATE');
      expect(e.message).toMatch(
        /^model\.layers\.0\.mlp\.up_proj\.weight\.quant_state\.bitsandbytes__nf4: "shape" = .* is not accepted: expected an array of non-negative integers$/,
      );
      for (const json of [[], ['--json']]) {
        const r = spawnSync(process.execPath, [cli, 'inspect', dir, ...json], { encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr).toMatch(/"shape" = .* \[E_CKPT_QUANT_STATE\]\n$/);
      }
    }
  });

  it('dequantize refuses a blob whose shape or blocksize is a marked string (E_CKPT_QUANT_STATE, E_STATE), writing nothing', async () => {
    const shape = checkpoint('marked-shape', (t) => t.replace('"shape": [64, 64]', `"shape": ["${MARK}64", 64]`));
    const before = readFileSync(join(shape, 'model.safetensors'));
    const e = await rejection(() => dequantizeCheckpoint(shape, join(tmp, 'out-shape')));
    expect(e.code).toBe('E_CKPT_QUANT_STATE');
    expect(e.message).toMatch(/expected "shape" \(non-negative integers\) and a float "dtype"/);
    const blocksize = checkpoint('marked-blocksize', (t) => t.replace('"blocksize": 64', `"blocksize": "${MARK}0x40"`));
    const e2 = await rejection(() => dequantizeCheckpoint(blocksize, join(tmp, 'out-blocksize')));
    expect(e2.code).toBe('E_STATE');
    expect(e2.message).toContain(`model.layers.0.mlp.up_proj: blocksize = ${JSON.stringify(`${MARKED}0x40`)} is not accepted`);
    expect(readFileSync(join(shape, 'model.safetensors')).equals(before)).toBe(true);
    expect(() => readFileSync(join(tmp, 'out-shape'))).toThrow();
    expect(() => readFileSync(join(tmp, 'out-blocksize'))).toThrow();
  });
});
