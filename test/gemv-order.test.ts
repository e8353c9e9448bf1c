// gemv4bit / matmul4bit follow the documented summation order to the bit (docs/bit-exactness.md,
// "4-bit GEMV"): every WebAssembly build and thread count against a literal Math.fround
// reference, on shapes that take each kernel path (whole chunks and not, one A row and tiles of
// several, lanes that wrap, odd W row counts) and on special values.
import { afterAll, describe, expect, it } from 'vitest';
import { FLOAT_DTYPES, FloatDType } from '../src/dtypes.js';
import {
  QuantState,
  Tensor,
  dequantize4bit,
  gemv4bit,
  matmul4bit,
  quantize4bit,
  setNumThreads,
  setWasmBuild,
  tensor,
  toFloat32,
} from '../src/index.js';
import { setParallelThreshold } from '../src/backend/wasm/threads/config.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { gemvReference } from './helpers/gemv-order.js';
import { gemvBars, gemvMetrics } from './helpers/gemv-bars.js';
import { forcedBackend } from '../src/devices.js';
import { cudaAddon } from '../src/backend/cuda/addon.js';
import { Rng, asDType, randn } from './helpers/random.js';

const rng = new Rng(1717);

/** With BNBJS_BACKEND=cuda and a real addon, M >= 64 runs through cuBLASLt (docs/bit-exactness.md). */
const cublasOwnsOrder = (M: number) => M >= 64 && forcedBackend() === 'cuda' && cudaAddon().addon !== null && !process.env.BNBJS_CUDA_ADDON;

const bytes = (t: Tensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const f32State = (s: QuantState) => Object.assign(Object.create(Object.getPrototypeOf(s)), s, { dtype: 'float32' }) as QuantState;

interface Case {
  M: number;
  N: number;
  K: number;
  A: Tensor;
  qB: Tensor;
  state: QuantState;
  bias: Tensor | null;
  want: Uint8Array;
  ref: Float64Array;
}

function makeCase(M: number, N: number, K: number, dtype: FloatDType, special = false): Case {
  const W = asDType(randn(rng, N * K, 1 / Math.sqrt(Math.max(K, 1))), [N, K], dtype);
  const x = randn(rng, M * K);
  if (special) for (let i = 0; i < x.length; i += 7) x[i] = i % 3 === 0 ? -0 : 0; // zeros and negative zeros
  const A = asDType(x, [M, K], dtype);
  const blocksize = rng.pick([32, 64, 128, 256, 1024, 4096]);
  const [qB, state] = quantize4bit(W, { quantType: rng.pick(['nf4', 'fp4'] as const), blocksize, compressStatistics: rng.next() < 0.5 });
  const bias = rng.next() < 0.5 ? asDType(randn(rng, N), [N], dtype) : null;
  const w = toFloat32(dequantize4bit(qB, f32State(state)));
  const a = toFloat32(A),
    b = bias ? toFloat32(bias) : null;
  const want = gemvReference(a, w, M, N, K, b, dtype);
  const ref = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = b ? b[j]! : 0;
      for (let k = 0; k < K; k++) s += a[i * K + k]! * w[j * K + k]!;
      ref[i * N + j] = s;
    }
  return { M, N, K, A, qB, state, bias, want, ref };
}

// [M, N, K]: whole chunks (K % 32 == 0) with M = 1 (the direct path, W rows in pairs and an odd
// last row) and M > 1 (tiles of 4 x 2 and their edges), lanes that wrap (K > 1024), and rows
// that are not whole chunks (the literal path)
const SHAPES: [number, number, number][] = [
  [1, 1, 32],
  [1, 7, 64],
  [1, 12, 4096 + 96],
  [2, 3, 256],
  [3, 5, 2080],
  [4, 2, 128],
  [5, 9, 96],
  [9, 4, 1024 + 32],
  [70, 3, 96],
  [1, 6, 33],
  [3, 5, 100],
  [2, 3, 7],
  [6, 1, 1],
];

describe('gemv4bit: the documented order, to the bit', () => {
  afterAll(() => {
    setWasmBuild('simd');
    setNumThreads(2);
    setParallelThreshold(1 << 20);
    setChunkElements(1 << 18);
  });

  const cases = SHAPES.flatMap(([M, N, K]) => FLOAT_DTYPES.map((dtype) => makeCase(M, N, K, dtype, (M * N * K) % 2 === 0)));

  for (const build of ['simd', 'scalar'] as const) {
    for (const threads of [1, 2]) {
      it(`${build} build, ${threads} thread(s): every shape and dtype equals the literal reference`, () => {
        setWasmBuild(build);
        setNumThreads(threads);
        // small chunks and no threshold: the rows are split across threads and kernel calls
        setParallelThreshold(threads > 1 ? 0 : 1 << 20);
        setChunkElements(threads > 1 ? 1024 : 1 << 18);
        for (const c of cases) {
          const got = c.bias ? matmul4bit(c.A, c.qB, c.state, { bias: c.bias }) : gemv4bit(c.A, c.qB, c.state);
          expect(got.shape).toEqual([c.M, c.N]);
          if (cublasOwnsOrder(c.M)) {
            // the real CUDA addon multiplies M >= 64 with cuBLASLt: its order, bitsandbytes' bars
            const m = gemvMetrics(c.ref, toFloat32(got), Math.max(c.K, 128));
            const bars = gemvBars(c.A.dtype as FloatDType, c.K);
            for (const key of ['err1', 'relerr1', 'maxerr1'] as const)
              expect(m[key], `${c.M}x${c.N}x${c.K} ${key}`).toBeLessThan(bars[key]);
            continue;
          }
          expect(Buffer.from(bytes(got)).equals(Buffer.from(c.want)), `${c.M}x${c.N}x${c.K} ${c.A.dtype} bias ${!!c.bias}`).toBe(true);
        }
      });
    }
  }

  it('zero inputs sum to +0 (the accumulators start at +0), NaN and infinities propagate', () => {
    setWasmBuild('simd');
    const K = 64,
      N = 3;
    const W = tensor(randn(rng, N * K), [N, K]);
    const [qB, state] = quantize4bit(W, { blocksize: 64 });
    const zeros = gemv4bit(tensor(new Float32Array(K).fill(-0), [1, K]), qB, state);
    expect(Array.from(new Uint32Array(zeros.data.buffer, zeros.data.byteOffset, N))).toEqual([0, 0, 0]);
    const a = new Float32Array(K).fill(0.5);
    a[5] = NaN;
    const nan = toFloat32(gemv4bit(tensor(a, [1, K]), qB, state));
    expect(Array.from(nan).every(Number.isNaN)).toBe(true);
    a[5] = Infinity;
    const inf = toFloat32(gemv4bit(tensor(a, [1, K]), qB, state));
    const w = toFloat32(dequantize4bit(qB, f32State(state)));
    for (let j = 0; j < N; j++) {
      const wj = w[j * K + 5]!;
      expect(inf[j], `row ${j}`).toBe(wj === 0 ? NaN : wj > 0 ? Infinity : -Infinity);
    }
  });
});
