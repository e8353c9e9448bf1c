// Resident tensors (wasmTensor): ops read their inputs and write `out` in place in
// the shared kernel memory, with the bytes of ordinary tensors, on 1 and 2 threads;
// neighbouring tensors are untouched; dispose frees and a disposed tensor is an error.
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  QuantState,
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  isResident,
  quantize4bit,
  quantizeBlockwise,
  setNumThreads,
  setWasmBuild,
  tensor,
  wasmBuild,
  wasmTensor,
} from '../src/index.js';
import { setParallelThreshold } from '../src/backend/wasm/threads/config.js';
import { poolFor } from '../src/backend/wasm/threads/pool.js';
import { WasmMemory } from '../src/backend/wasm/runtime/memory.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { sharedKernelMemory } from '../src/backend/wasm/threads/shared.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { error, onWasmBackend } from './helpers/util.js';

const rng = new Rng(4242);
const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const N = 20_011;
const x = randn(rng, N);

/** A resident copy of t between two resident guards of 0xA5 bytes (nothing may write past it). */
function guarded(t: Tensor): { t: Tensor; all: Tensor[]; intact(): boolean } {
  const before = wasmTensor([97], 'int8'),
    r = wasmTensor(t),
    after = wasmTensor([97], 'int8');
  (before.data as Int8Array).fill(-91);
  (after.data as Int8Array).fill(-91);
  return { t: r, all: [before, r, after], intact: () => [before, after].every((g) => (g.data as Int8Array).every((v) => v === -91)) };
}

/** A zero tensor like t (made resident by R). */
const zerosLike = (t: Tensor) =>
  tensor(new (t.data.constructor as new (n: number) => Tensor['data'])(t.data.length), [...t.shape], t.dtype);

describe('resident tensors', () => {
  onWasmBackend();
  const m = sharedKernelMemory();
  afterAll(() => {
    setNumThreads(2);
    setParallelThreshold(1 << 20);
    setChunkElements(1 << 18);
  });

  it('live in the shared kernel memory; zeros or a copy; isResident tells', () => {
    expect(m).not.toBeNull();
    const z = wasmTensor([3, 5], 'bfloat16');
    expect(z.shape).toEqual([3, 5]);
    expect(z.dtype).toBe('bfloat16');
    expect(z.data).toBeInstanceOf(Uint16Array);
    expect([...z.data]).toEqual(new Array(15).fill(0));
    expect(z.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    const src = tensor(x.slice(0, 100));
    const c = wasmTensor(src);
    expect([...c.data]).toEqual([...src.data]);
    expect([isResident(c), isResident(z), isResident(src)]).toEqual([true, true, false]);
    c.dispose!();
    z.dispose!();
    expect(isResident(c)).toBe(false);
  });

  for (const threads of [1, 2]) {
    it(`give the bytes of ordinary tensors, in place, on ${threads} thread(s)`, () => {
      setNumThreads(threads);
      setParallelThreshold(1);
      setChunkElements(1 << 12);
      if (threads > 1) poolFor(m!, threads).queue.awaitReady(threads - 1, 10_000);
      const made: Tensor[] = [];
      const R = (t: Tensor) => {
        const g = guarded(t);
        made.push(...g.all);
        guards.push(g.intact);
        return g.t;
      };
      const guards: (() => boolean)[] = [];
      const write = vi.spyOn(WasmMemory.prototype, 'write');
      for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
        const A = asDType(x, [N], dtype);
        for (const quantType of ['nf4', 'fp4'] as const) {
          const [p, s] = quantize4bit(A, { blocksize: 64, quantType });
          write.mockClear();
          const [pr, sr] = quantize4bit(R(A), { blocksize: 64, quantType });
          expect(write).not.toHaveBeenCalled(); // the input is read in place
          expect([bytes(pr), bytes(sr.absmax)]).toEqual([bytes(p), bytes(s.absmax)]);
          const want = dequantize4bit(p, s);
          const out = R(zerosLike(want));
          const state = new QuantState({ ...s, absmax: R(s.absmax) });
          write.mockClear();
          expect(dequantize4bit(R(p), state, { out })).toBe(out);
          expect(write).not.toHaveBeenCalled();
          expect(bytes(out)).toEqual(bytes(want));
        }
        const [q, s8] = quantizeBlockwise(A, { blocksize: 256 });
        const [qr, s8r] = quantizeBlockwise(R(A), { blocksize: 256 });
        expect([bytes(qr), bytes(s8r.absmax)]).toEqual([bytes(q), bytes(s8.absmax)]);
        const want = dequantizeBlockwise(q, s8);
        const out = R(zerosLike(want));
        write.mockClear();
        dequantizeBlockwise(R(q), new QuantState({ ...s8, absmax: R(s8.absmax) }), { out });
        expect(write.mock.calls.length).toBeGreaterThan(0);
        expect(write.mock.calls.every(([, src]) => src.byteLength === 1024)).toBe(true); // only the code table
        expect(bytes(out)).toEqual(bytes(want));
      }
      // the matrix ops, weights resident
      const W = tensor(randn(rng, 211 * 100), [211, 100]);
      const a1 = tensor(randn(rng, 100), [1, 100]);
      const [pw, sw] = quantize4bit(W, { blocksize: 64, compressStatistics: true });
      expect(bytes(gemv4bit(a1, R(pw), sw))).toEqual(bytes(gemv4bit(a1, pw, sw)));
      const f16 = asDType(randn(rng, 37 * 301), [37, 301], 'float16');
      f16.data[5 * 301 + 7] = 0x4d00; // an outlier column at threshold 6
      const [cb, rs, cols] = int8VectorwiseQuant(f16, { threshold: 6 });
      const [cbr, rsr, colsr] = int8VectorwiseQuant(R(f16), { threshold: 6 });
      expect([bytes(cbr), bytes(rsr), [...colsr!.data]]).toEqual([bytes(cb), bytes(rs), [...cols!.data]]);
      expect(bytes(int8VectorwiseDequant(R(cb), rs))).toEqual(bytes(int8VectorwiseDequant(cb, rs)));
      const B = tensor(
        Int8Array.from({ length: 301 * 130 }, () => rng.int(-128, 127)),
        [301, 130],
      );
      const a8 = tensor(
        Int8Array.from({ length: 3 * 130 }, () => rng.int(-128, 127)),
        [3, 130],
      );
      const acc = int8LinearMatmul(a8, B);
      expect(bytes(int8LinearMatmul(a8, R(B)))).toEqual(bytes(acc));
      const [r1, c1] = [tensor(randn(rng, 3).map(Math.abs)), tensor(randn(rng, 301).map(Math.abs))];
      expect(bytes(int8MmDequant(R(acc), r1, c1))).toEqual(bytes(int8MmDequant(acc, r1, c1)));
      const fp8 = tensor(
        Uint8Array.from({ length: 300 * 260 }, () => rng.int(0, 255) & 0xf7),
        [300, 260],
        'float8_e4m3fn',
      );
      const tiles = tensor(
        randn(rng, 9).map((v) => Math.abs(v) + 0.1),
        [3, 3],
      );
      const want8 = dequantizeFp8(fp8, tiles, { blockSize: 128 });
      const out8 = R(zerosLike(want8));
      dequantizeFp8(R(fp8), tiles, { blockSize: 128, out: out8 });
      expect(bytes(out8)).toEqual(bytes(want8));
      write.mockRestore();
      expect(guards.every((g) => g())).toBe(true);
      for (const t of made) t.dispose!();
      expect(m!.residentBytes()).toBe(0);
    });
  }

  it('dispose frees the memory for the next tensor; a disposed tensor is an error, not stale bytes', () => {
    const held = m!.residentBytes();
    expect(held).toBe(0);
    const a = wasmTensor(tensor(x.slice(0, 1000)));
    const b = wasmTensor([10], 'float32');
    expect(m!.residentBytes()).toBe(held + 4032 + 64); // 64-byte granules
    const at = a.data.byteOffset;
    a.dispose!();
    a.dispose!(); // twice is nothing
    expect(m!.residentBytes()).toBe(held + 64);
    const c = wasmTensor([900], 'float32');
    expect(c.data.byteOffset).toBe(at); // the gap is reused
    const q = error(() => quantize4bit(a));
    expect(q).toMatchObject({
      code: 'E_DETACHED',
      message: expect.stringMatching(/A\.data is a Float32Array over bnbjs's kernel memory outside any live wasmTensor/),
    });
    const view = new Float32Array(c.data.buffer, 0, 64); // the kernels' own bytes
    expect(error(() => quantize4bit(tensor(view)))).toMatchObject({ code: 'E_DETACHED' });
    b.dispose!();
    c.dispose!();
    expect(m!.residentBytes()).toBe(held);
  });

  it('an out overlapping an input is an error also across a grow (two buffer objects of one memory)', () => {
    const n = 4096;
    const [p, st] = quantize4bit(tensor(x.slice(0, n)));
    const o = wasmTensor([n], 'float32');
    const before = o.data.buffer;
    const packedView = new Uint8Array(before, o.data.byteOffset, n / 2);
    packedView.set(p.data as Uint8Array);
    const big = wasmTensor([m!.stats().bytes], 'uint8'); // the memory grows: a new SharedArrayBuffer object
    const after = new Float32Array(big.data.buffer, o.data.byteOffset, n);
    expect(after.buffer).not.toBe(before);
    const e = error(() => dequantize4bit(tensor(packedView, [n / 2, 1]), st, { out: tensor(after, [n]) }));
    expect(e).toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/out shares memory with A/) });
    expect(error(() => wasmTensor([2 ** 31], 'float32'))).toMatchObject({
      code: 'E_OUT_OF_MEMORY',
      message: expect.stringMatching(/resident tensors would hold \d+ bytes \(dispose\(\) frees one\)/),
    });
    big.dispose!();
    o.dispose!();
    expect(m!.residentBytes()).toBe(0);
  });

  it('bad arguments are clear errors', () => {
    expect(error(() => wasmTensor([2, -1], 'float32'))).toMatchObject({ code: 'E_SHAPE', message: expect.stringMatching(/shape/) });
    expect(error(() => wasmTensor([2], 'float64' as never))).toMatchObject({ code: 'E_DTYPE', message: expect.stringMatching(/float64/) });
    expect(error(() => (wasmTensor as (a: unknown) => Tensor)([2]))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/dtype/),
    });
    expect(error(() => wasmTensor({ data: 1 } as never))).toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/^t /) });
    const onGpu = {
      dtype: 'float32',
      shape: [1],
      device: 'cuda:0',
      get data(): never {
        throw new Error('no host data');
      },
    };
    expect(isResident(onGpu as never)).toBe(false);
    expect(error(() => wasmTensor(onGpu as never))).toMatchObject({
      code: 'E_DEVICE',
      message: expect.stringMatching(/t is on "cuda:0": wasmTensor takes a host tensor/),
    });
  });

  it('are ordinary copies where there is no shared kernel memory (the scalar build)', () => {
    const build = wasmBuild();
    setWasmBuild('scalar');
    try {
      const t = wasmTensor(tensor(x.slice(0, 10)));
      expect(isResident(t)).toBe(false);
      expect([...t.data]).toEqual([...x.slice(0, 10)]);
      t.dispose!();
    } finally {
      setWasmBuild(build);
    }
  });
});
