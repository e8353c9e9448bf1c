// gemv4bit's int8-activation mode (matmul4bit(A, B, state, { accuracy: 'int8' })): the
// definition in docs/bit-exactness.md ("4-bit GEMV", "int8-activation mode") written out in
// JS (test/helpers/gemv-int8-ref.ts) against the scalar oracle, the same bytes on every
// build and thread count, its error against float64, and the option's argument rules.
import { afterAll, describe, expect, it } from 'vitest';
import {
  FloatDType,
  QuantState,
  Tensor,
  dequantize4bit,
  gemv4bit,
  matmul4bit,
  numThreads,
  quantize4bit,
  setNumThreads,
  setWasmBuild,
  tensor,
  toFloat32,
} from '../src/index.js';
import { parallelThreshold, setParallelThreshold } from '../src/backend/wasm/threads/config.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { gemvInt8Ref, unpackCodes } from './helpers/gemv-int8-ref.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { error, onWasmBackend } from './helpers/util.js';

onWasmBackend();
const threadsBefore = numThreads(),
  thresholdBefore = parallelThreshold();
afterAll(() => {
  setWasmBuild('simd');
  setNumThreads(threadsBefore);
  setParallelThreshold(thresholdBefore);
  setChunkElements(1 << 18);
});

const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const int8 = (A: Tensor, B: Tensor, st: QuantState, bias?: Tensor) =>
  matmul4bit(A, B, st, bias ? { bias, accuracy: 'int8' } : { accuracy: 'int8' });

interface Case {
  M: number;
  N: number;
  K: number;
  blocksize: number;
  quantType: 'nf4' | 'fp4';
  dtype: FloatDType;
  bias: boolean;
  nested: boolean;
}

function make(c: Case, seed: number) {
  const rng = new Rng(seed);
  const [B, st] = quantize4bit(tensor(randn(rng, c.N * c.K), [c.N, c.K]), {
    blocksize: c.blocksize,
    quantType: c.quantType,
    compressStatistics: c.nested,
  });
  const A = asDType(randn(rng, c.M * c.K, 3), [c.M, c.K], c.dtype);
  const bias = c.bias ? asDType(randn(rng, c.N), [c.N], c.dtype) : undefined;
  return { A, B, st: new QuantState({ ...st, dtype: c.dtype }), bias };
}

/** Random shapes: K odd, K below the blocksize, N = 1, M = 1 and large, every blocksize, both types, every dtype. */
function cases(count: number, seed: number): Case[] {
  const rng = new Rng(seed);
  const out: Case[] = [
    { M: 1, N: 1, K: 1, blocksize: 32, quantType: 'nf4', dtype: 'float32', bias: false, nested: false },
    { M: 1, N: 37, K: 4096, blocksize: 4096, quantType: 'nf4', dtype: 'float16', bias: true, nested: false },
    { M: 9, N: 13, K: 96, blocksize: 64, quantType: 'fp4', dtype: 'bfloat16', bias: true, nested: false },
    { M: 70, N: 5, K: 160, blocksize: 128, quantType: 'nf4', dtype: 'float32', bias: false, nested: true },
  ];
  const BS = [32, 64, 128, 256, 512, 1024, 2048, 4096];
  while (out.length < count) {
    const kind = rng.int(0, 3);
    const K = kind === 0 ? rng.int(1, 200) : kind === 1 ? 32 * rng.int(1, 40) : kind === 2 ? 64 * rng.int(1, 20) : rng.int(1, 31) * 2 + 1;
    out.push({
      M: rng.pick([1, 1, 2, 3, 4, 5, 8, 17]),
      N: rng.pick([1, 2, 3, 4, 5, 7, 16, 33]),
      K,
      blocksize: rng.pick(BS),
      quantType: rng.pick(['nf4', 'fp4'] as const),
      dtype: rng.pick(['float32', 'float16', 'bfloat16'] as const),
      bias: rng.next() < 0.5,
      nested: rng.next() < 0.2,
    });
  }
  return out;
}

describe("gemv4bit's int8-activation mode", () => {
  it('a hand-computed case: q = 127 and roundEven(-63.5) = -64, isum = 24257', () => {
    setWasmBuild('scalar');
    // one weight row of 64: codes 15 (+1), 0 (-1), then 7 (0); absmax 2
    const packed = new Uint8Array(32).fill(0x77);
    packed[0] = 0xf0;
    const st = new QuantState({
      absmax: tensor(new Float32Array([2]), [1]),
      shape: [1, 64],
      code: tensor(toFloat32(dequantize4bitCode('nf4')), [16]),
      blocksize: 64,
      quantType: 'nf4',
      dtype: 'float32',
    });
    const a = new Float32Array(64);
    a[0] = 1;
    a[1] = -0.5;
    const A = tensor(a, [1, 64]);
    // amax 1, r = 127, q = [127, -64 (-63.5 to even), 0...], d = 1/16129; wq(+1) = 127, wq(-1) = -127
    const f = Math.fround;
    const want = f(24257 * f(2 * f(1 / 16129)));
    for (const build of ['scalar', 'simd'] as const) {
      setWasmBuild(build);
      const got = toFloat32(int8(A, tensor(packed, [32, 1], 'uint8'), st));
      expect(got[0]).toBe(want); // 3.0078...; the exact mode gives 1·2 + (-0.5)(-2) = 3
      expect(toFloat32(matmul4bit(A, tensor(packed, [32, 1], 'uint8'), st))[0]).toBe(3);
    }
  });

  it('the scalar oracle is the definition (JS, Math.fround) on random shapes', () => {
    setWasmBuild('scalar');
    for (const [i, c] of cases(40, 1).entries()) {
      if (c.nested || c.dtype !== 'float32') continue; // the reference reads f32 statistics and f32 outputs
      const { A, B, st, bias } = make(c, 100 + i);
      const got = toFloat32(int8(A, B, st, bias));
      const want = gemvInt8Ref(
        toFloat32(A),
        c.M,
        c.K,
        unpackCodes(B.data as Uint8Array, c.N * c.K),
        c.N,
        toFloat32(st.absmax),
        c.blocksize,
        toFloat32(st.code),
        bias ? toFloat32(bias) : null,
      );
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), JSON.stringify(c)).toBe(true);
    }
  });

  it('identical bytes on the scalar and SIMD builds, 1 and 2 threads, small chunks', () => {
    for (const [i, c] of cases(60, 2).entries()) {
      const { A, B, st, bias } = make(c, 200 + i);
      setNumThreads(1);
      setWasmBuild('scalar');
      const oracle = bytes(int8(A, B, st, bias));
      setWasmBuild('simd');
      expect(bytes(int8(A, B, st, bias)).equals(oracle), `simd ${JSON.stringify(c)}`).toBe(true);
      setNumThreads(2);
      setParallelThreshold(0);
      setChunkElements(1 + (i % 3) * 300); // a few rows per call: many chunks over the threads
      expect(bytes(int8(A, B, st, bias)).equals(oracle), `2 threads ${JSON.stringify(c)}`).toBe(true);
      setChunkElements(1 << 18);
      setParallelThreshold(thresholdBefore);
      setNumThreads(1);
    }
  });

  it('NaN or ±Inf in a group of 64 makes the outputs NaN; a zero group adds 0', () => {
    const c: Case = { M: 3, N: 6, K: 200, blocksize: 64, quantType: 'nf4', dtype: 'float32', bias: false, nested: false };
    const { A, B, st } = make(c, 5);
    const a = toFloat32(A).slice();
    a[70] = NaN;
    a[200 + 130] = -Infinity;
    a.fill(0, 400, 464);
    for (const build of ['scalar', 'simd'] as const) {
      setWasmBuild(build);
      const out = toFloat32(int8(tensor(a, [3, 200]), B, st));
      expect(out.subarray(0, 12).every(Number.isNaN)).toBe(true);
      expect(out.subarray(12).every(Number.isFinite)).toBe(true);
    }
  });

  it('error against float64 within the documented bar (bench/RESULTS.md, issue 17)', () => {
    setWasmBuild('simd');
    const rng = new Rng(9);
    for (const K of [256, 4096]) {
      const N = 256;
      const [B, st] = quantize4bit(tensor(randn(rng, N * K), [N, K]), { quantType: 'nf4' });
      const W = toFloat32(dequantize4bit(B, st));
      const A = tensor(randn(rng, K), [1, K]);
      const a = toFloat32(A);
      const ref = new Float64Array(N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) ref[n] += a[k]! * W[n * K + k]!;
      const q = toFloat32(int8(A, B, st)),
        e = toFloat32(matmul4bit(A, B, st));
      let errQ = 0,
        errE = 0,
        mag = 0;
      for (let n = 0; n < N; n++) {
        errQ += Math.abs(q[n]! - ref[n]!);
        errE += Math.abs(e[n]! - ref[n]!);
        mag += Math.abs(ref[n]!);
      }
      // Gaussian activations: the int8 rounding gives ~0.6% of the mean |output| (documented bar 1.5%)
      expect(errQ / mag, `K ${K}`).toBeLessThan(0.015);
      expect(errE / mag).toBeLessThan(1e-5);
    }
  });

  it("accuracy is 'exact' (the default) or 'int8'; anything else is E_ARGUMENT naming both", () => {
    const { A, B, st } = make({ M: 1, N: 3, K: 64, blocksize: 64, quantType: 'nf4', dtype: 'float32', bias: false, nested: false }, 3);
    expect(bytes(matmul4bit(A, B, st, { accuracy: 'exact' })).equals(bytes(gemv4bit(A, B, st)))).toBe(true);
    for (const bad of ['fp16', 'INT8', 4, null, true]) {
      const e = error(() => matmul4bit(A, B, st, { accuracy: bad as never }));
      expect(e.code).toBe('E_ARGUMENT');
      expect(e.message).toMatch(/accuracy = .* is not accepted: expected 'exact' \(the default\) or 'int8'/);
    }
    expect(error(() => matmul4bit(A, B, st, { accuracyLevel: 4 } as never)).code).toBe('E_ARGUMENT');
  });
});

/** The 16 f32 values of a 4-bit code table. */
function dequantize4bitCode(quantType: 'nf4' | 'fp4'): Tensor {
  const [, st] = quantize4bit(tensor(new Float32Array(64), [64]), { quantType });
  return st.code;
}
