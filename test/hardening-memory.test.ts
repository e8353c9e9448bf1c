// WebAssembly memory: a failed grow is a clear E_OUT_OF_MEMORY and the runtime stays
// usable; no op leaks wasm memory (or JS memory) across 10,000 calls.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  quantize4bit,
  quantizeBlockwise,
  tensor,
} from '../src/index.js';
import { KernelExports } from '../src/backend/wasm/runtime/exports.js';
import { MAX_WASM_BYTES, WasmMemory, setWasmMemoryLimit, wasmMemoryLimit } from '../src/backend/wasm/runtime/memory.js';
import { wasm } from '../src/backend/wasm/runtime/instances.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { error, onWasmBackend } from './helpers/util.js';

setFlagsFromString('--expose-gc');
const gcOnce = runInNewContext('gc') as () => void;
/** Full collections with turns of the event loop between them, so that freed array buffers are counted as freed. */
async function gc(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gcOnce();
    await new Promise((r) => setTimeout(r, 5));
  }
}

const same = (a: Tensor, b: Tensor) =>
  Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));

describe('a failed WebAssembly memory grow', () => {
  onWasmBackend(); // with BNBJS_BACKEND=cuda too: these ops must run in WebAssembly memory
  afterAll(() => setWasmMemoryLimit(MAX_WASM_BYTES));

  it('is E_OUT_OF_MEMORY naming the size and the limit, and the next op gives the same bits as before', () => {
    const A = tensor(randn(new Rng(1), 3_000_000));
    const [p0, s0] = quantize4bit(A, { quantType: 'nf4' }); // chunked: a few MiB of scratch
    const have = wasm().stats().bytes;
    const H = tensor(
      Uint16Array.from({ length: 4096 * 4096 }, (_, i) => 0x3c00 + (i % 1000)),
      [4096, 4096],
      'float16',
    );
    setWasmMemoryLimit(have);
    // int8DoubleQuant's column pass needs 16 * 2^18 elements of 3 bytes at once: more than `have`
    const e = error(() => int8DoubleQuant(H));
    expect(e).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(/could not grow to \d+ bytes: the limit is \d+ bytes \(setWasmMemoryLimit\).*stays usable/),
    });
    expect(wasm().stats().bytes).toBe(have);
    const [p1, s1] = quantize4bit(A, { quantType: 'nf4' });
    expect(same(p0, p1) && same(s0.absmax, s1.absmax)).toBe(true);
    expect(same(dequantize4bit(p1, s1), dequantize4bit(p0, s0))).toBe(true);
    setWasmMemoryLimit(MAX_WASM_BYTES);
    expect(int8DoubleQuant(H)[3].shape).toEqual([4096]);
  });

  it('from a memory with a lower maximum: E_OUT_OF_MEMORY with the engine message, smaller layouts still work', () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4 });
    const m = new WasmMemory({ memory, heapBase: () => 1024 } as unknown as KernelExports);
    expect(m.stats()).toMatchObject({ bytes: 3 * 65536, grows: 1 }); // the persistent tables need a third page
    expect(error(() => m.scratch(5 * 65536))).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(/could not grow from 196608 to \d+ bytes: .*stays usable/),
    });
    const [p] = m.scratch(65536);
    m.write(p!, new Uint8Array([1, 2, 3]));
    expect([...m.bytes(p!, 3)]).toEqual([1, 2, 3]);
    expect(m.stats()).toMatchObject({ bytes: 4 * 65536, grows: 2 }); // the failed grow changed nothing
  });

  it('past 4 GiB: E_OUT_OF_MEMORY, not a RangeError or a wrapped pointer', () => {
    expect(error(() => wasm().scratch(2 ** 32))).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(/4 GiB, the most a wasm32 memory holds/),
    });
    expect(error(() => setWasmMemoryLimit(2 ** 33))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/wasmMemoryLimit = 8589934592.*65536 to 4294967296/),
    });
    expect(error(() => setWasmMemoryLimit(NaN))).toMatchObject({ code: 'E_ARGUMENT' });
    expect(wasmMemoryLimit()).toBe(MAX_WASM_BYTES);
  });

  it('an error in the middle of a chunked op (NaN past the first chunk) leaves nothing behind', () => {
    const x = randn(new Rng(2), 1_000_000);
    const good = quantizeBlockwise(tensor(x), { blocksize: 256 });
    const bad = x.slice();
    bad[900_000] = NaN;
    expect(error(() => quantizeBlockwise(tensor(bad), { blocksize: 256 }))).toMatchObject({
      code: 'E_NON_FINITE',
      message: expect.stringMatching(/flat index 900000/),
    });
    const again = quantizeBlockwise(tensor(x), { blocksize: 256 });
    expect(same(again[0], good[0]) && same(again[1].absmax, good[1].absmax)).toBe(true);
  });
});

describe('no op leaks memory across 10,000 calls', () => {
  const rng = new Rng(3);
  const f32 = tensor(randn(rng, 4096), [16, 256]);
  const f16 = asDType(randn(rng, 4096), [16, 256], 'float16');
  const [p4, s4] = quantize4bit(f32, { quantType: 'nf4', compressStatistics: true });
  const [q8, s8] = quantizeBlockwise(f32, { blocksize: 256, nested: true });
  const [cb, rs] = int8VectorwiseQuant(f16);
  const i32 = int8LinearMatmul(cb, cb);
  const cs = tensor(randn(rng, 16).map(Math.abs));
  const [pw, sw] = quantize4bit(tensor(randn(rng, 64 * 256), [64, 256]), { quantType: 'fp4' });
  const x = tensor(randn(rng, 2 * 256), [2, 256]);
  const e4m3 = tensor(
    Uint8Array.from({ length: 4096 }, (_, i) => i % 255),
    [16, 256],
    'float8_e4m3fn',
  );
  const scale = tensor(new Float32Array(2).fill(0.5), [1, 2]);
  const OPS: [string, () => unknown][] = [
    ['quantize4bit', () => quantize4bit(f32, { quantType: 'nf4', compressStatistics: true })],
    ['dequantize4bit', () => dequantize4bit(p4, s4)],
    ['quantizeBlockwise', () => quantizeBlockwise(f32, { blocksize: 256, nested: true })],
    ['dequantizeBlockwise', () => dequantizeBlockwise(q8, s8)],
    ['int8VectorwiseQuant', () => int8VectorwiseQuant(f16, { threshold: 2 })],
    ['int8DoubleQuant', () => int8DoubleQuant(f16)],
    ['int8VectorwiseDequant', () => int8VectorwiseDequant(cb, rs)],
    ['int8LinearMatmul', () => int8LinearMatmul(cb, cb)],
    ['int8MmDequant', () => int8MmDequant(i32, rs, cs)],
    ['gemv4bit', () => gemv4bit(x, pw, sw)],
    ['dequantizeFp8', () => dequantizeFp8(e4m3, scale, { blockSize: 128 })],
  ];
  const report: string[] = [];
  afterAll(() => console.log(`leak check, 10,000 calls per op after 200 warm-up calls:\n${report.join('\n')}`));

  for (const [name, op] of OPS) {
    it(name, async () => {
      for (let i = 0; i < 200; i++) op();
      await gc();
      const w0 = wasm().stats(),
        m0 = process.memoryUsage();
      for (let i = 0; i < 10_000; i++) op();
      await gc();
      const w1 = wasm().stats(),
        m1 = process.memoryUsage();
      const heap = (m1.heapUsed - m0.heapUsed) / 2 ** 20,
        buffers = (m1.arrayBuffers - m0.arrayBuffers) / 2 ** 20;
      report.push(
        `  ${name}: wasm ${w0.bytes} -> ${w1.bytes} bytes (${w1.grows - w0.grows} grows), JS heap ${heap >= 0 ? '+' : ''}${heap.toFixed(2)} MiB, array buffers ${buffers >= 0 ? '+' : ''}${buffers.toFixed(2)} MiB`,
      );
      expect(w1.bytes).toBe(w0.bytes);
      expect(w1.grows).toBe(w0.grows);
      expect(w1.lastTop).toBe(w0.lastTop);
      // a leak of 100 bytes a call would be 1 MiB here
      expect(heap).toBeLessThan(2);
      expect(buffers).toBeLessThan(1);
    });
  }
});
