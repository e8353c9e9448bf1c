// The format boundary (src/io/source.ts, src/io/sink.ts): the conversions read a
// TensorSource and write a TensorSink, so a file's bytes in memory, a Map of tensors
// (test/helpers/map-source.ts, one module) or a temporary folder work as well as paths,
// and give the very bytes that quantizeCheckpoint and dequantizeCheckpoint write.
// The in-memory module never loads the file module: the Node entry registers paths.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BnbError, parseSafetensors } from '../src/index.js';
import type { StoredTensor, TensorSource } from '../src/io/source.js';
import { createSink, openSource } from '../src/io/open.js';
import { openSafetensorsBytes } from '../src/io/safetensors/memory-source.js';
import { MemorySink } from '../src/io/safetensors/memory-sink.js';
import { quantizeCheckpoint, quantizeSource } from '../src/checkpoint/quantize.js';
import { dequantizeCheckpoint, dequantizeSource } from '../src/checkpoint/dequantize.js';
import { inspectCheckpoint, summarize } from '../src/checkpoint/inspect.js';
import { MapSource } from './helpers/map-source.js';
import { rejection } from './helpers/util.js';

const MODEL = new URL('../models/tiny-llama-bf16/model.safetensors', import.meta.url).pathname;
const ROOT = new URL('../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-boundary-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const modelBytes = readFileSync(MODEL);
const input = join(tmp, 'model.safetensors'); // a file input: a file output, no config.json
copyFileSync(MODEL, input);

/** The tensors of a safetensors file as a Map, in the file's order. */
const mapOf = (bytes: Uint8Array) => new Map<string, StoredTensor>(Object.entries(parseSafetensors(bytes).tensors));

/** What quantizeCheckpoint writes for the file input (file to file). */
async function quantizedFile(name: string, opts: Parameters<typeof quantizeCheckpoint>[2]): Promise<Buffer> {
  const out = join(tmp, `${name}.safetensors`);
  if (!existsSync(out)) await quantizeCheckpoint(input, out, opts);
  return readFileSync(out);
}

async function intoMemory(run: (sink: MemorySink) => Promise<unknown>): Promise<Uint8Array> {
  const sink = new MemorySink();
  await run(sink);
  return sink.bytes();
}

describe('conversions through TensorSource and TensorSink', () => {
  for (const [name, opts] of [
    ['nf4-dq', { format: 'nf4', doubleQuant: true }],
    ['fp4', { format: 'fp4', blocksize: 128 }],
    ['int8', { format: 'int8' }],
  ] as const) {
    it(`quantize (${name}): a file's bytes in memory into a MemorySink give the bytes quantizeCheckpoint writes`, async () => {
      const want = await quantizedFile(name, opts);
      const r = await intoMemory((sink) => quantizeSource(openSafetensorsBytes(new Uint8Array(modelBytes)), sink, opts));
      expect(Buffer.from(r).equals(want)).toBe(true);
      expect(readFileSync(MODEL).equals(modelBytes)).toBe(true);
    });
  }

  it('dequantize: bytes in memory into a MemorySink give the bytes dequantizeCheckpoint writes', async () => {
    for (const name of ['nf4-dq', 'int8'] as const) {
      const quantized = await quantizedFile(name, name === 'int8' ? { format: 'int8' } : { format: 'nf4', doubleQuant: true });
      const out = join(tmp, `${name}-back.safetensors`);
      await dequantizeCheckpoint(join(tmp, `${name}.safetensors`), out, { dtype: 'bfloat16' });
      const r = await intoMemory((sink) => dequantizeSource(openSafetensorsBytes(quantized), sink, { dtype: 'bfloat16' }));
      expect(Buffer.from(r).equals(readFileSync(out)), name).toBe(true);
    }
  });

  it('a temporary folder as the sink (createSink, sharded): the shards hold what the MemorySink holds', async () => {
    const opts = { format: 'nf4' } as const;
    const dir = join(tmp, 'sharded');
    mkdirSync(dir);
    const sink = createSink({ dir }, { output: dir, maxShardSize: 1_000_000, force: false });
    const report = await quantizeSource(openSafetensorsBytes(modelBytes), sink, opts);
    const names = readdirSync(dir).sort();
    expect(names.length).toBeGreaterThan(2);
    expect(names).toContain('model.safetensors.index.json');
    expect(sink.files.map((f) => f.slice(dir.length + 1))).toEqual(names.filter((n) => n.endsWith('.safetensors')));
    const folder = await openSource(dir);
    const memory = openSafetensorsBytes(await intoMemory((s) => quantizeSource(openSafetensorsBytes(modelBytes), s, opts)));
    try {
      expect(folder.names().sort()).toEqual(memory.names().sort());
      expect(report.tensors).toBe(memory.names().length);
      for (const n of memory.names()) expect(Buffer.from(await folder.readBytes(n)).equals(await memory.readBytes(n)), n).toBe(true);
    } finally {
      await folder.close();
    }
  });

  it('inspect: summarize(source) of bytes in memory is what inspectCheckpoint says of the file, without files', async () => {
    const file = join(tmp, 'nf4-dq.safetensors');
    await quantizedFile('nf4-dq', { format: 'nf4', doubleQuant: true });
    const fromFile = await inspectCheckpoint(file);
    const fromBytes = await summarize(openSafetensorsBytes(readFileSync(file)), null, file);
    expect(fromBytes).toEqual({ ...fromFile, files: [] });
    expect(fromFile.files).toEqual([file]);
  });
});

describe('a new source is one module: a Map of tensors (test/helpers/map-source.ts)', () => {
  it('quantizes and dequantizes to the bytes the file conversions write, reading blobs through read()', async () => {
    const source = new MapSource(mapOf(modelBytes));
    expect((source as TensorSource).readBytes).toBeUndefined();
    const q = await intoMemory((sink) => quantizeSource(source, sink, { format: 'nf4', doubleQuant: true }));
    expect(Buffer.from(q).equals(await quantizedFile('nf4-dq', { format: 'nf4', doubleQuant: true }))).toBe(true);
    const out = join(tmp, 'map-back.safetensors');
    await dequantizeCheckpoint(join(tmp, 'nf4-dq.safetensors'), out);
    const back = await intoMemory((sink) => dequantizeSource(new MapSource(mapOf(q)), sink));
    expect(Buffer.from(back).equals(readFileSync(out))).toBe(true);
    expect(source.closed).toBe(false); // the caller's to close
  });

  it('what a conversion refuses, it refuses before the sink is planned', async () => {
    const sink = new MemorySink();
    const floats = mapOf(modelBytes);
    const noWeights = new MapSource(new Map([...floats].filter(([n]) => !n.endsWith('_proj.weight'))));
    const e = await rejection(() => quantizeSource(noWeights, sink, { format: 'nf4' }));
    expect(e.code).toBe('E_CKPT_FORMAT');
    expect(e.message).toBe('the source has no float Linear weights to quantize');
    expect((await rejection(() => dequantizeSource(new MapSource(floats), sink))).code).toBe('E_CKPT_FORMAT');
    // options about paths belong to the path functions
    for (const key of ['force', 'maxShardSize', 'trustIndex']) {
      const bad = await rejection(() =>
        quantizeSource(new MapSource(floats), sink, { format: 'nf4', [key]: key === 'maxShardSize' ? '5GB' : true } as never),
      );
      expect(bad.code).toBe('E_ARGUMENT');
      expect(bad.message).toContain(`quantizeSource option ${key}`);
    }
    expect(
      (await rejection(() => quantizeSource(new MapSource(floats), sink, { format: 'nf4', computeDType: 'float16' } as never))).code,
    ).toBe('E_ARGUMENT');
    // still unplanned: it takes a plan now
    await sink.plan([{ name: 'x', dtype: 'U8', shape: [1] }], null);
    await sink.abort();
  });

  it('a source failing mid-conversion: the folder sink is aborted, nothing is left in the folder', async () => {
    const floats = mapOf(modelBytes);
    const last = [...floats.keys()].at(-1)!;
    class Failing extends MapSource {
      override async read(name: string): Promise<StoredTensor> {
        if (name === last) throw new BnbError('E_IO', 'the network went away');
        return super.read(name);
      }
    }
    const dir = join(tmp, 'aborted');
    mkdirSync(dir);
    const sink = createSink({ dir }, { output: dir, maxShardSize: 1_000_000, force: false });
    const e = await rejection(() => quantizeSource(new Failing(floats), sink, { format: 'nf4' }));
    expect(e.message).toBe('the network went away');
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('the in-memory module and the file module', () => {
  /** Every module dist/`entry` reaches through static imports (relative ones). */
  function reached(entry: string): Set<string> {
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|^import\s+'(\.[^']+)'/gm))
        visit(resolve(dirname(file), m[1] ?? m[2]!));
    };
    visit(join(ROOT, 'dist', entry));
    return seen;
  }

  it.skipIf(!existsSync(join(ROOT, 'dist/core.js')))(
    'the shared API reaches no file module, and no module imports through a computed name',
    () => {
      const core = [...reached('core.js')].map((f) => f.slice(join(ROOT, 'dist').length + 1));
      expect(core).toContain('io/safetensors/whole.js');
      expect(core.filter((f) => /^io\/(open|files|lock|swap|temp)\.js$|^io\/safetensors\/(file|sharded)-/.test(f))).toEqual([]);
      for (const f of reached('node.js')) expect(readFileSync(f, 'utf8'), f).not.toMatch(/\bimport\(/);
    },
  );

  it.skipIf(!existsSync(join(ROOT, 'dist/index.js')))(
    'paths: the Node entry reads them, the inline entry (no file support) says where to get it',
    () => {
      const run = (entry: string) =>
        spawnSync(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `
      const b = await import(${JSON.stringify(join(ROOT, 'dist', entry))});
      try { console.log(JSON.stringify(Object.keys((await b.readSafetensors(${JSON.stringify(MODEL)})).tensors).length)); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }
      try { await b.writeSafetensors(${JSON.stringify(join(tmp, `w-${entry}`))}, { a: b.tensor([1]) }); console.log('"written"'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`,
          ],
          { encoding: 'utf8' },
        );
      const [read, write] = run('inline.js')
        .stdout.trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(read.code).toBe('E_IO');
      expect(read.message).toContain('bnbjs/node');
      expect(write.code).toBe('E_IO');
      expect(existsSync(join(tmp, 'w-inline.js'))).toBe(false);
      expect(
        run('index.js')
          .stdout.trim()
          .split('\n')
          .map((l) => JSON.parse(l)),
      ).toEqual([Object.keys(parseSafetensors(modelBytes).tensors).length, 'written']);
    },
  );
});
