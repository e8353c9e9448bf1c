// What reaches the terminal (#15, items 9 and 12): strings from a checkpoint (tensor
// names, quant_state fields, config.json values, metadata, file names) and from errors
// never reach stdout or stderr raw, in text or --json output, progress or errors; a
// failure is one line with an E_* code, exit 1 and no stack trace unless BNBJS_DEBUG is set.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor, quantize4bit, serializeSafetensors, tensor } from '../src/index.js';
import { Output, jsonText, printable } from '../src/cli/output.js';
import { ProgressEvent } from '../src/checkpoint/common.js';
import { progressLine } from '../src/cli/progress.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-output-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * One of each class the CLI escapes: CSI (clear screen), OSC with BEL (window title),
 * C1 CSI, DEL, a bidi override, an isolate and a mark, a zero-width space, the line
 * separator, a BOM and a tag character (invisible ASCII).
 */
const H = '\u001b[2J\u001b]0;title\u0007\u009b31m\u007f\u202e\u2066\u200f\u200b\u2028\ufeff\u{e0041}';
/** The same without the line separator, which a module name cannot hold (findLayers' patterns stop at line ends). */
const HN = H.replace('\u2028', '');
/** Any character that must not reach the terminal raw (line breaks the CLI writes itself aside). */
const RAW = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function bnbjs(args: string[], opts: { env?: Record<string, string>; node?: string[] } = {}): Run {
  const r = spawnSync(process.execPath, [...(opts.node ?? []), cli, ...args], { env: { ...process.env, BNBJS_DEBUG: '', ...opts.env } });
  // output must be valid UTF-8: a lone C1 byte would otherwise hide behind U+FFFD
  const utf8 = (b: Buffer) => new TextDecoder('utf-8', { fatal: true }).decode(b);
  return { status: r.status, stdout: utf8(r.stdout), stderr: utf8(r.stderr) };
}

/** stdout and stderr hold no raw control, format or separator character, only the CLI's own line breaks. */
function expectInert(r: Run): void {
  for (const text of [r.stdout, r.stderr]) {
    const bad = [...text.replaceAll('\n', '')].filter((c) => RAW.test(c));
    expect(bad.map((c) => c.codePointAt(0)!.toString(16))).toEqual([]);
  }
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** The escaped rendering of H (with or without the line separator), as text output shows it. */
const shownH = printable(H);
const shownHN = printable(HN);

/** A 4-bit layer (nf4, plain statistics) with its blob's JSON edited by `blob`. */
function layer4bit(module: string, blob: (json: Record<string, unknown>) => Record<string, unknown>): Record<string, Tensor> {
  const W = tensor(
    Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i)),
    [64, 64],
  );
  const [packed, state] = quantize4bit(W, { quantType: 'nf4' });
  const out: Record<string, Tensor> = { [`${module}.weight`]: packed };
  for (const [k, v] of Object.entries(state.asDict({ packed: true }))) {
    if (!k.startsWith('quant_state.')) out[`${module}.weight.${k}`] = v;
    else {
      const json = blob(JSON.parse(new TextDecoder().decode(v.data as Uint8Array)));
      const bytes = new TextEncoder().encode(JSON.stringify(json));
      out[`${module}.weight.${k}`] = tensor(bytes, [bytes.length], 'uint8');
    }
  }
  return out;
}

/** A model folder named with H, holding config.json with H in keys and values and one weights file named with H. */
function folder(name: string, tensors: Record<string, Tensor>, config: Record<string, unknown>): string {
  const dir = join(tmp, `${name}-${H}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: `llama${H}`, [`note${H}`]: [H, { deep: H }], ...config }));
  writeFileSync(join(dir, `weights-${H}.safetensors`), serializeSafetensors(tensors, { metadata: { format: 'pt', [`k${H}`]: `v${H}` } }));
  return dir;
}

const norm = { [`model.norm${H}.weight`]: tensor(new Float32Array(64).fill(1), [64]) };
const quantConfig = { quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4', [`x${H}`]: H } };
// a 4-bit checkpoint with hostile names whose blobs are sound, and one whose blob's dtype is hostile
const good4 = folder('good4', { ...layer4bit(`model.layers.0.${HN}.mlp.up_proj`, (j) => j), ...norm }, quantConfig);
const bad4 = folder(
  'bad4',
  { ...layer4bit(`model.layers.0.${HN}.mlp.up_proj`, (j) => ({ ...j, dtype: `float16${H}`, [`extra${H}`]: H })), ...norm },
  quantConfig,
);
// float checkpoints with hostile names, the second with a NaN in its weight (an error naming the tensor)
const floatWeight = (nan: boolean) =>
  tensor(
    Float32Array.from({ length: 64 * 64 }, (_, i) => (nan && i === 7 ? NaN : Math.cos(i))),
    [64, 64],
  );
const goodF = folder('goodF', { [`model.layers.0.${HN}.mlp.up_proj.weight`]: floatWeight(false), ...norm }, {});
const nanF = folder('nanF', { [`model.layers.0.${HN}.mlp.up_proj.weight`]: floatWeight(true), ...norm }, {});

describe('strings from a checkpoint are escaped in every output', () => {
  it("inspect: tensor names, the blob's dtype, config.json and the path escaped, and shown (not dropped)", () => {
    for (const dir of [good4, bad4]) {
      const r = bnbjs(['inspect', dir]);
      expect(r.status, r.stderr).toBe(0);
      expectInert(r);
      expect(r.stdout).toContain(`model.layers.0.${shownHN}.mlp.up_proj.weight  nf4  [64, 64]`);
      expect(r.stdout).toContain(`model.norm${shownH}.weight`);
      // quantization_config as JSON (C0 escaped by JSON.stringify, the same \u form), then escaped
      expect(r.stdout).toContain(`"x${shownH}":"${shownH}"`);
    }
    expect(bnbjs(['inspect', bad4]).stdout).toContain(`-> float16${shownH}`);
  });

  it('inspect --json: valid JSON, the same strings after parsing, nothing raw on the terminal', () => {
    const r = bnbjs(['inspect', bad4, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expectInert(r);
    const s = JSON.parse(r.stdout);
    expect(s.path).toBe(bad4);
    expect(s.files).toEqual([join(bad4, `weights-${H}.safetensors`)]);
    expect(s.layers[0]).toMatchObject({ name: `model.layers.0.${HN}.mlp.up_proj.weight`, dtype: `float16${H}` });
    expect(s.other.map((t: { name: string }) => t.name)).toEqual([`model.norm${H}.weight`]);
    expect(s.quantizationConfig[`x${H}`]).toBe(H);
  });

  it('dequantize: a report, or an E_* error quoting the hostile blob, escaped (text and --json)', () => {
    for (const json of [[], ['--json']]) {
      const ok = bnbjs(['dequantize', good4, join(tmp, `deq${json.length}-${H}`), ...json]);
      expect(ok.status, ok.stderr).toBe(0);
      expectInert(ok);
      if (json.length) expect(JSON.parse(ok.stdout).output).toBe(join(tmp, `deq${json.length}-${H}`));
      else expect(ok.stdout).toContain(`deq0-${shownH}`);
      const bad = bnbjs(['dequantize', bad4, join(tmp, `deq-bad-${H}`), ...json]);
      expect(bad.status).toBe(1);
      expectInert(bad);
      expect(bad.stderr).toMatch(
        /^bnbjs: .*quant_state.*expected "shape" \(non-negative integers\) and a float "dtype".* \[E_CKPT_QUANT_STATE\]\n$/,
      );
      if (json.length) expect(JSON.parse(bad.stdout).error.code).toBe('E_CKPT_QUANT_STATE');
    }
    expect(readdirSync(tmp).filter((f) => f.startsWith('deq-bad') || f.includes('.bnbjs-'))).toEqual([]);
  });

  it('quantize: a report, or an E_NON_FINITE error naming the hostile tensor, escaped (text and --json)', () => {
    for (const json of [[], ['--json']]) {
      const ok = bnbjs(['quantize', goodF, join(tmp, `q${json.length}-${H}`), '--format', 'nf4', ...json]);
      expect(ok.status, ok.stderr).toBe(0);
      expectInert(ok);
      const bad = bnbjs(['quantize', nanF, join(tmp, `q-bad-${H}`), '--format', 'nf4', ...json]);
      expect(bad.status).toBe(1);
      expectInert(bad);
      expect(bad.stderr).toContain(`bnbjs: model.layers.0.${shownHN}.mlp.up_proj.weight: `);
      expect(bad.stderr).toMatch(/\[E_NON_FINITE\]\n$/);
      if (json.length) expect(JSON.parse(bad.stdout).error.message).toContain(`model.layers.0.${HN}.mlp.up_proj.weight: `);
    }
  });

  it('an error quoting a hostile name read from the file (a 4-bit item without its blob), escaped', () => {
    const dir = join(tmp, 'orphan');
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors({ [`a${HN}.weight.absmax`]: tensor(new Float32Array(1)) }));
    const r = bnbjs(['inspect', dir]);
    expect(r.status).toBe(1);
    expectInert(r);
    expect(r.stderr).toBe(
      `bnbjs: a${shownHN}.weight.absmax: a 4-bit quantization item without its a${shownHN}.weight.quant_state.bitsandbytes__nf4|fp4 blob [E_CKPT_QUANT_STATE]\n`,
    );
    // a damaged file whose name carries H: the error names the file
    const damaged = join(tmp, 'damaged');
    mkdirSync(damaged);
    const bytes = serializeSafetensors({ w: tensor(new Float32Array(16)) });
    writeFileSync(join(damaged, `w-${H}.safetensors`), bytes.subarray(0, bytes.length - 4));
    for (const json of [[], ['--json']]) {
      const d = bnbjs(['inspect', damaged, ...json]);
      expect(d.status).toBe(1);
      expectInert(d);
      expect(d.stderr).toContain(printable(join(damaged, `w-${H}.safetensors`)));
      expect(d.stderr).toMatch(/\[E_ST_[A-Z_]+\]\n$/);
      if (json.length) expect(JSON.parse(d.stdout).error.message).toContain(join(damaged, `w-${H}.safetensors`));
    }
  });
});

describe('the output layer', () => {
  it('printable escapes every control, format and separator character, one \\u escape each', () => {
    expect(printable(H)).toBe('\\u001b[2J\\u001b]0;title\\u0007\\u009b31m\\u007f\\u202e\\u2066\\u200f\\u200b\\u2028\\ufeff\\u{e0041}');
    expect(printable('a\nb\tc\r\u0085\u061c\u00ad\u2029\ud800x')).toBe('a\\u000ab\\u0009c\\u000d\\u0085\\u061c\\u00ad\\u2029\\ud800x');
    expect(printable('plain ASCII, ünïcödé, 中文, emoji 😀, (\\u001b typed)')).toBe(
      'plain ASCII, ünïcödé, 中文, emoji 😀, (\\u001b typed)',
    );
  });

  it("jsonText: JSON.stringify's output with DEL, C1, format characters and separators \\u-escaped too, parsing back to the same value", () => {
    const value = { [`k${H}`]: [H, 1.5, null, { n: `x\n${H}` }], lone: '\ud800' };
    const text = jsonText(value);
    expect([...text.replaceAll('\n', '')].filter((c) => RAW.test(c))).toEqual([]);
    expect(JSON.parse(text)).toEqual(value);
    expect(text).toContain('\\u009b31m\\u007f\\u202e\\u2066\\u200f\\u200b\\u2028\\ufeff\\udb40\\udc41');
    expect(jsonText(undefined)).toBe('null');
  });

  it("progress: only the CLI's own line control (\\r, erase line) is raw; the tensor name is escaped", () => {
    const written: string[] = [];
    const tty = { isTTY: true, columns: 300, write: (s: string) => written.push(s) };
    const progress = new Output({ write: () => true }, tty).progress()!;
    const event: ProgressEvent = { bytesDone: 10, bytesTotal: 10, tensorsDone: 1, tensorsTotal: 1, name: `model.${H}.weight`, seconds: 1 };
    progress(event);
    expect(written[0]!.startsWith('\r\u001b[K')).toBe(true);
    expect([...written[0]!.slice(4)].filter((c) => RAW.test(c))).toEqual([]);
    expect(written[0]).toContain(`model.${shownH}.weight`);
    expect(written[1]).toBe('\n');
    expect(new Output({ write: () => true }, { write: () => true }).progress()).toBeUndefined(); // not a terminal
    // a narrow terminal: cut after escaping, by code points, so no escape or emoji is split into raw halves
    const half = { ...event, bytesDone: 5, name: `😀${H}` };
    const prefix = progressLine({ ...half, name: '' }).length;
    for (let k = 0; k < 30; k++) {
      const narrow: string[] = [];
      new Output({ write: () => true }, { isTTY: true, columns: prefix + k + 1, write: (s: string) => narrow.push(s) }).progress()!(half);
      expect(narrow).toHaveLength(1);
      const shown = [...narrow[0]!.slice(4)];
      expect(
        shown.filter((c) => RAW.test(c)),
        `cut at ${k}`,
      ).toEqual([]);
      expect(shown.join('')).toBe([...progressLine(half).replace(half.name, printable(half.name))].slice(0, prefix + k).join(''));
    }
  });
});

describe('internal errors', () => {
  // A preload (named with H, so that a stack would carry it) that breaks the CLI from
  // inside: the JSON.parse of package.json for --version fails in the way HOOK says.
  const hook = join(tmp, `hook-${H}.cjs`);
  writeFileSync(
    hook,
    `
const parse = JSON.parse;
const H = ${JSON.stringify(H)};
JSON.parse = function (text, reviver) {
  if (typeof text === 'string' && text.includes('"name": "bnbjs"')) {
    const e = new Error('boom ' + H);
    switch (process.env.HOOK) {
      case 'throw': throw e;
      case 'reject': Promise.reject(e); break;
      case 'proxy': throw new Proxy({}, { get() { throw new Error('get'); }, getPrototypeOf() { throw new Error('proto'); } });
      case 'string': throw 'a string ' + H;
      case 'warn': process.emitWarning('careful ' + H); break;
      case 'syscall': throw Object.assign(new Error("EACCES: permission denied, open '/tmp/.x.bnbjs-1-2.tmp" + H + "'"), { code: 'EACCES', syscall: 'open', errno: -13 });
    }
  }
  return parse.call(this, text, reviver);
};
`,
  );
  const broken = (mode: string, env: Record<string, string> = {}) =>
    bnbjs(['--version'], { node: ['--require', hook], env: { HOOK: mode, ...env } });

  it('an unexpected exception: E_INTERNAL, exit 1, one escaped line, no stack', () => {
    const r = broken('throw');
    expect(r.status).toBe(1);
    expectInert(r);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `bnbjs: internal error: boom ${shownH} (please report it, with the stack BNBJS_DEBUG=1 prints: see SECURITY.md) [E_INTERNAL]\n`,
    );
    const json = bnbjs(['--version', '--json'], { node: ['--require', hook], env: { HOOK: 'throw' } });
    expect(json.status).toBe(1);
    expectInert(json);
    expect(JSON.parse(json.stdout).error).toEqual({
      code: 'E_INTERNAL',
      message: `internal error: boom ${H} (please report it, with the stack BNBJS_DEBUG=1 prints: see SECURITY.md)`,
    });
  });

  it('a rejection nobody awaited, a thrown string, a thrown proxy that throws on every access: the same one line', () => {
    const rejected = broken('reject');
    expect(rejected.status).toBe(1);
    expectInert(rejected);
    expect(rejected.stderr).toMatch(/^bnbjs: internal error: boom .* \[E_INTERNAL\]\n$/);
    const thrown = broken('string');
    expect(thrown.status).toBe(1);
    expectInert(thrown);
    expect(thrown.stderr).toBe(
      `bnbjs: internal error: a string ${shownH} (please report it, with the stack BNBJS_DEBUG=1 prints: see SECURITY.md) [E_INTERNAL]\n`,
    );
    const proxy = broken('proxy');
    expect(proxy.status).toBe(1);
    expectInert(proxy);
    expect(proxy.stderr).toBe('bnbjs: internal error: a value that cannot be shown (please report it: see SECURITY.md) [E_INTERNAL]\n');
  });

  it("BNBJS_DEBUG=1 adds the stack, escaped like everything else (the hook's file name in it)", () => {
    const r = broken('throw', { BNBJS_DEBUG: '1' });
    expect(r.status).toBe(1);
    for (const text of [r.stdout, r.stderr]) expect([...text.replaceAll('\n', '')].filter((c) => RAW.test(c))).toEqual([]);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toBe(`bnbjs: internal error: boom ${shownH} (please report it: see SECURITY.md) [E_INTERNAL]`);
    expect(lines[1]).toBe(`Error: boom ${shownH}`);
    expect(lines[2]).toContain(`hook-${shownH}.cjs`);
    expect(lines.filter((l) => /^\s+at /.test(l)).length).toBeGreaterThan(1);
    for (const off of ['', '0']) expect(broken('throw', { BNBJS_DEBUG: off }).stderr.split('\n')).toHaveLength(2);
  });

  it('a warning from Node is one escaped line; the command still succeeds', () => {
    const r = broken('warn');
    expect(r.status, r.stderr).toBe(0);
    expectInert(r);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(r.stderr).toBe(`bnbjs: warning: Warning: careful ${shownH}\n`);
  });

  it("a system error that reached the top unwrapped: E_IO with the system's reason, not the (temporary) path, exit 1", () => {
    const r = broken('syscall');
    expect(r.status).toBe(1);
    expectInert(r);
    expect(r.stderr).toBe('bnbjs: cannot run: permission denied (EACCES) [E_IO]\n');
  });
});
