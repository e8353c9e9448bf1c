// Issue #15, case 16: bounded cost. A safetensors header's shapes are bounded (rank,
// dimensions in all, metadata entries, JSON values), refused as the text is read; the
// thread count is capped and a lower count ends the surplus workers; a memory limit set
// after the memory grew bounds what ops use from then on. (bench/header-bound.mjs
// measures the header parse; no timing is asserted here.)
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  int8DoubleQuant,
  numThreads,
  parseHeader,
  quantize4bit,
  setNumThreads,
  tensor,
  threadStats,
  wasmTensor,
} from '../src/index.js';
import { MAX_HEADER_VALUES, MAX_METADATA_ENTRIES, MAX_SHAPE_DIMS, MAX_SHAPE_ENTRIES, MAX_TENSORS } from '../src/io/safetensors/header.js';
import { maxThreads, setParallelThreshold, threadHost } from '../src/backend/wasm/threads/config.js';
import { poolFor } from '../src/backend/wasm/threads/pool.js';
import { MAX_WASM_BYTES, setWasmMemoryLimit } from '../src/backend/wasm/runtime/memory.js';
import { resetWasm, wasm } from '../src/backend/wasm/runtime/instances.js';
import { sharedKernelMemory } from '../src/backend/wasm/threads/shared.js';
import { Rng, randn } from './helpers/random.js';
import { error, onWasmBackend } from './helpers/util.js';

const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const enc = (s: string) => new TextEncoder().encode(s);
/** A header of `count` U8 tensors of shape `shape` (1 byte each), and its file size. */
function header(count: number, shape: number[], extra = ''): [Uint8Array, number] {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) parts.push(`"t${i}":{"dtype":"U8","shape":[${shape.join(',')}],"data_offsets":[${i},${i + 1}]}`);
  const h = enc(`{${extra}${parts.join(',')}}`);
  return [h, 8 + h.length + count];
}

describe('safetensors header bounds', () => {
  it(`a shape of more than ${MAX_SHAPE_DIMS} dimensions is E_ST_SHAPE, refused at that tensor; ${MAX_SHAPE_DIMS} are accepted`, () => {
    const ones = (n: number) => Array<number>(n).fill(1);
    const [ok, okSize] = header(100, ones(MAX_SHAPE_DIMS));
    expect(parseHeader(ok, okSize).tensors[99]!.shape).toEqual(ones(MAX_SHAPE_DIMS));
    // the file: 1000-dimension shapes (45k of them made it 93 MB; a few show the same)
    const [bad, badSize] = header(500, ones(1000));
    const copy = Buffer.from(bad);
    expect(error(() => parseHeader(bad, badSize))).toMatchObject({
      code: 'E_ST_SHAPE',
      message: `tensor "t0": shape has more than ${MAX_SHAPE_DIMS} dimensions: expected at most ${MAX_SHAPE_DIMS}`,
    });
    expect(Buffer.from(bad).equals(copy)).toBe(true);
    // a long array elsewhere in an entry, or in data_offsets: the entry's own code
    const [, size] = header(1, [1]);
    const offsets = enc(`{"t0":{"dtype":"U8","shape":[1],"data_offsets":[${ones(65).join(',')}]}}`);
    expect(error(() => parseHeader(offsets, size + 200))).toMatchObject({
      code: 'E_ST_HEADER_JSON',
      message: expect.stringMatching(/tensor "t0": data_offsets holds more than 64 items/),
    });
  });

  it(`more than ${MAX_SHAPE_ENTRIES} dimensions in all is E_ST_SHAPE (${MAX_SHAPE_ENTRIES / MAX_TENSORS} per tensor at ${MAX_TENSORS} tensors)`, () => {
    const per = MAX_SHAPE_DIMS,
      count = MAX_SHAPE_ENTRIES / per + 1;
    const [h, size] = header(count, Array<number>(per).fill(1));
    expect(error(() => parseHeader(h, size))).toMatchObject({
      code: 'E_ST_SHAPE',
      message: expect.stringMatching(new RegExp(`more than ${MAX_SHAPE_ENTRIES} dimensions in all \\(at tensor "t${count - 1}"\\)`)),
    });
    const [fits, fitsSize] = header(count - 1, Array<number>(per).fill(1));
    expect(parseHeader(fits, fitsSize).tensors.length).toBe(count - 1);
  });

  it(`__metadata__ of more than ${MAX_METADATA_ENTRIES} entries is E_ST_METADATA`, () => {
    const meta = (n: number) => `"__metadata__":{${Array.from({ length: n }, (_, i) => `"k${i}":""`).join(',')}},`;
    const [h, size] = header(1, [1], meta(MAX_METADATA_ENTRIES + 1));
    expect(error(() => parseHeader(h, size))).toMatchObject({
      code: 'E_ST_METADATA',
      message: `__metadata__ has more than ${MAX_METADATA_ENTRIES} entries: expected at most ${MAX_METADATA_ENTRIES}`,
    });
    const [ok, okSize] = header(1, [1], meta(MAX_METADATA_ENTRIES));
    expect(Object.keys(parseHeader(ok, okSize).metadata!).length).toBe(MAX_METADATA_ENTRIES);
  });

  it(`more than ${MAX_HEADER_VALUES} JSON values in all is E_ST_HEADER_JSON (nested arrays within the rank limit)`, () => {
    const a64 = `[${Array(64).fill(0).join(',')}]`;
    const a4096 = `[${Array(64).fill(a64).join(',')}]`;
    const a262144 = `[${Array(64).fill(a4096).join(',')}]`;
    const huge = `[${Array(64).fill(a262144).join(',')}]`; // 64^4 numbers, 64^3 + 64^2 + 64 + 1 arrays
    const text = `{"t0":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":${huge}}}`;
    const h = enc(text);
    expect(error(() => parseHeader(h, 8 + h.length + 1))).toMatchObject({
      code: 'E_ST_HEADER_JSON',
      message: `the header holds more than ${MAX_HEADER_VALUES} JSON values: expected at most ${MAX_HEADER_VALUES}`,
    });
  });

  it('entry errors keep their order and codes: a syntax error anywhere comes first, else the first bad entry', () => {
    const good = '"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
    const badDtype = '"b":{"dtype":"X","shape":[1],"data_offsets":[1,2]}';
    const badShape = '"c":{"dtype":"U8","shape":[-1],"data_offsets":[2,3]}';
    expect(error(() => parseHeader(enc(`{${good},${badDtype},${badShape}}`), 200))).toMatchObject({
      code: 'E_ST_DTYPE',
      message: expect.stringMatching(/^tensor "b"/),
    });
    expect(error(() => parseHeader(enc(`{${good},${badShape},${badDtype}}`), 200))).toMatchObject({
      code: 'E_ST_SHAPE',
      message: expect.stringMatching(/^tensor "c"/),
    });
    expect(error(() => parseHeader(enc(`{${good},${badDtype},${badShape},}`), 200))).toMatchObject({ code: 'E_ST_HEADER_JSON' });
    expect(error(() => parseHeader(enc(`{${good},${good}}`), 200))).toMatchObject({
      code: 'E_ST_HEADER_JSON',
      message: expect.stringMatching(/duplicate key "a"/),
    });
  });
});

describe('the thread count', () => {
  onWasmBackend();
  const host = threadHost();
  if (host === null) console.log('hardening-bounds: thread tests skipped, this runtime cannot start worker threads');
  afterAll(() => {
    setNumThreads(2);
    setParallelThreshold(1 << 20);
  });

  it(`is at most maxThreads() = ${maxThreads()} here (twice the logical processors, at least 8): more is E_ARGUMENT and changes nothing`, () => {
    expect(maxThreads()).toBe(Math.min(256, Math.max(8, 2 * availableParallelism())));
    setNumThreads(2);
    for (const n of [maxThreads() + 1, 256, 257, 2 ** 31]) {
      expect(error(() => setNumThreads(n))).toMatchObject({
        code: 'E_ARGUMENT',
        message: expect.stringMatching(new RegExp(`^numThreads = ${n} is not accepted: expected an integer from 1 to ${maxThreads()}`)),
      });
    }
    expect(numThreads()).toBe(host === null ? 1 : 2);
    setNumThreads(maxThreads());
    setNumThreads(2);
  });

  it.skipIf(host === null)(
    'a lower count ends the surplus workers (their threads exit), a higher one starts new ones; the bytes never change',
    async () => {
      const m = sharedKernelMemory()!;
      setParallelThreshold(0);
      const A = tensor(randn(new Rng(1516), 1 << 16));
      setNumThreads(1);
      const [want] = quantize4bit(A, { quantType: 'nf4' });
      const settle = async (workers: number) => {
        for (const end = Date.now() + 30_000; threadStats().workers !== workers && Date.now() < end;)
          await new Promise((r) => setTimeout(r, 10));
        return threadStats().workers;
      };
      setNumThreads(4);
      const pool = poolFor(m, 4);
      expect(pool.queue.awaitReady(3, 30_000)).toBe(true);
      expect(bytes(quantize4bit(A, { quantType: 'nf4' })[0]).equals(bytes(want))).toBe(true);
      const retiredBefore = pool.retired.length;
      setNumThreads(2); // at once, not at the next op
      expect(pool.workerCount()).toBe(1);
      expect(await settle(1)).toBe(1);
      const exits = pool.retired.slice(retiredBefore);
      expect(exits.length).toBe(2); // Node's worker_threads report their exit
      await Promise.all(exits); // the threads have ended
      expect(bytes(quantize4bit(A, { quantType: 'nf4' })[0]).equals(bytes(want))).toBe(true);
      setNumThreads(4);
      poolFor(m, 4);
      expect(pool.queue.awaitReady(3, 30_000)).toBe(true); // new workers in the retired slots
      expect(bytes(quantize4bit(A, { quantType: 'nf4' })[0]).equals(bytes(want))).toBe(true);
      setNumThreads(1);
      expect(await settle(0)).toBe(0);
      await Promise.all(pool.retired);
      expect(bytes(quantize4bit(A, { quantType: 'nf4' })[0]).equals(bytes(want))).toBe(true);
    },
  );

  it('BNBJS_NUM_THREADS past maxThreads() is E_ARGUMENT', () => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import * as b from ${JSON.stringify(dist)};\ntry { b.numThreads(); console.log('accepted'); } catch (e) { console.log(e.code, e.message); }`,
      ],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BNBJS_NUM_THREADS: '256' } },
    );
    const max = Math.min(256, Math.max(8, 2 * availableParallelism()));
    expect(r.stdout.trim()).toBe(
      max < 256
        ? `E_ARGUMENT BNBJS_NUM_THREADS = 256 is not accepted: expected an integer from 1 to ${max} (maxThreads(): twice this machine's logical processors, at least 8)`
        : 'accepted',
    );
  });
});

describe('setWasmMemoryLimit', () => {
  onWasmBackend();
  afterAll(() => setWasmMemoryLimit(MAX_WASM_BYTES));

  it('below the memory already grown: no grow past it (E_OUT_OF_MEMORY, the input intact); what fits the memory there still runs', () => {
    setNumThreads(1);
    const m = wasm();
    // grow the private memory: int8DoubleQuant's column pass of a 4096 x 4096 float16 matrix
    const H = tensor(
      Uint16Array.from({ length: 4096 * 4096 }, (_, i) => 0x3c00 + (i % 1000)),
      [4096, 4096],
      'float16',
    );
    const wantH = int8DoubleQuant(H);
    const grown = m.stats().bytes;
    setWasmMemoryLimit(grown - (4 << 20));
    const before = Buffer.from(bytes(H));
    // more than there is: refused, nothing grew
    expect(error(() => m.scratch(grown))).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(
        new RegExp(`could not grow to \\d+ bytes: the limit is ${grown - (4 << 20)} bytes \\(setWasmMemoryLimit\\)`),
      ),
    });
    expect(m.stats().bytes).toBe(grown);
    // the memory already there cannot shrink, and stays usable: the same op, the same bits
    int8DoubleQuant(H).forEach((t, i) =>
      expect(t === null ? wantH[i] === null : bytes(t).equals(bytes(wantH[i]!)), `output ${i}`).toBe(true),
    );
    expect(bytes(H).equals(before)).toBe(true);
    expect(m.stats().bytes).toBe(grown);
    setWasmMemoryLimit(MAX_WASM_BYTES);
  });

  it('a wasmTensor that needs the shared memory to grow past the limit is E_OUT_OF_MEMORY, the other tensors intact', () => {
    const shared = sharedKernelMemory();
    if (shared === null) return void console.log('hardening-bounds: no shared kernel memory, wasmTensor test skipped');
    const keep = wasmTensor(tensor(Uint8Array.from({ length: 4096 }, (_, i) => i & 255)));
    const have = shared.stats().bytes;
    setWasmMemoryLimit(have + (1 << 20));
    expect(error(() => wasmTensor([4 << 20], 'uint8'))).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(/resident tensors would hold/),
    });
    expect(shared.stats().bytes).toBe(have);
    expect([...keep.data].every((v, i) => v === (i & 255))).toBe(true);
    const small = wasmTensor([1024], 'uint8');
    small.dispose();
    keep.dispose();
    setWasmMemoryLimit(MAX_WASM_BYTES);
  });

  it('a limit that is not a whole number of pages never lets a grow pass it', () => {
    setNumThreads(1);
    const m = wasm();
    const have = m.stats().bytes,
      page = 65536;
    const [base] = m.scratch(0); // where scratch starts
    const limit = have + page + 100; // one page and 100 bytes more than there is
    setWasmMemoryLimit(limit);
    // ends within the limit but in its last, partial page: a grow would take the whole page, past the limit
    expect(error(() => m.scratch(have + page + 64 - base!))).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(new RegExp(`the limit is ${have + page} bytes`)),
    });
    expect(m.stats().bytes).toBe(have);
    m.scratch(have + page - 64 - base!); // a whole page more: fits
    expect(m.stats().bytes).toBe(have + page);
    expect(m.stats().bytes).toBeLessThanOrEqual(limit);
    setWasmMemoryLimit(MAX_WASM_BYTES);
  });

  it('a new kernel instance whose memory would start above the limit is refused; raising the limit, the same bits', () => {
    setNumThreads(2);
    const A = tensor(randn(new Rng(16), 4096), [64, 64]);
    const [want] = quantize4bit(A, { quantType: 'nf4' });
    resetWasm(); // the next op instantiates the kernels afresh
    setWasmMemoryLimit(65536); // the modules start with 2 pages
    expect(error(() => quantize4bit(A, { quantType: 'nf4' }))).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(/a new WebAssembly kernel instance starts with 131072 bytes of memory: the limit is 65536 bytes/),
    });
    expect(error(() => wasmTensor([16], 'uint8'))).toMatchObject({ code: 'E_OUT_OF_MEMORY' });
    setWasmMemoryLimit(MAX_WASM_BYTES);
    expect(bytes(quantize4bit(A, { quantType: 'nf4' })[0]).equals(bytes(want))).toBe(true);
  });
});
