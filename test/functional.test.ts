// Property tests of the int8, GEMV and FP8 ops against exact / float64 references,
// SIMD-vs-scalar identity, and their errors.
import { afterAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  dequantize4bit,
  dequantizeFp8,
  gemv4bit,
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  matmul4bit,
  quantize4bit,
  setWasmBuild,
  tensor,
  toFloat32,
} from '../src/index.js';
import { FloatDType } from '../src/dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../src/float16.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { gemvBars, gemvMetrics } from './helpers/gemv-bars.js';
import { both, error as err } from './helpers/util.js';

const rng = new Rng(4242);
const DTYPES: FloatDType[] = ['float32', 'float16', 'bfloat16'];
const toDType = (x: number, d: FloatDType) =>
  d === 'float16' ? f16ToNumber(numberToF16(x)) : d === 'bfloat16' ? bf16ToNumber(numberToBf16(x)) : Math.fround(x);

const same = (a: Tensor, b: Tensor) =>
  expect(
    Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(
      Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
    ),
  ).toBe(true);
const randInt8 = (n: number) => Int8Array.from({ length: n }, () => rng.int(-128, 127));

describe('int8LinearMatmul', () => {
  it('is exact int32 for random shapes (K = 1, odd K, M = 1, large K with extreme values)', () => {
    for (const [M, N, K] of [
      [1, 1, 1],
      [3, 5, 1],
      [1, 7, 33],
      [5, 9, 17],
      [17, 4, 64],
      [2, 3, 4099],
      [1, 6, 70000],
      [40, 33, 129],
    ] as const) {
      const extreme = K > 4000;
      const a = extreme ? new Int8Array(M * K).fill(-128) : randInt8(M * K);
      const b = extreme ? new Int8Array(N * K).fill(-128) : randInt8(N * K);
      const [C1, C2] = both(() => int8LinearMatmul(tensor(a, [M, K]), tensor(b, [N, K])));
      same(C1, C2);
      expect(C1.shape).toEqual([M, N]);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a[i * K + k]! * b[j * K + k]!;
          expect(C1.data[i * N + j], `${M}x${N}x${K} [${i},${j}]`).toBe(s | 0);
        }
      }
    }
  });

  it('gives the same bits when the operands stream in small chunks', () => {
    const a = randInt8(9 * 300),
      b = randInt8(70 * 300);
    const whole = int8LinearMatmul(tensor(a, [3, 3, 300]), tensor(b, [70, 300]));
    expect(whole.shape).toEqual([3, 3, 70]);
    setChunkElements(64);
    const chunked = int8LinearMatmul(tensor(a, [3, 3, 300]), tensor(b, [70, 300]));
    setChunkElements(1 << 18);
    same(whole, chunked);
  });
});

describe('int8 quantization', () => {
  it('vectorwise quant: codes within rint of x * 127 / rowmax, zero rows, outliers at the threshold', () => {
    const rows = 37,
      cols = 61;
    const x = randn(rng, rows * cols, 3);
    for (let c = 0; c < cols; c++) x[5 * cols + c] = 0; // an all-zero row
    x[2 * cols + 7] = 6; // exactly at the threshold: an outlier
    x[3 * cols + 8] = -5.99609375; // just below (f16-exact): not an outlier
    const A = asDType(x, [rows, cols], 'float16');
    const a = toFloat32(A);
    const [[CB, stats, oc], [CB2, stats2, oc2]] = both(() => int8VectorwiseQuant(A, { threshold: 6 }));
    same(CB, CB2);
    same(stats, stats2);
    expect([...oc!.data]).toEqual([...oc2!.data]);
    const outlierCols = new Set<number>();
    for (let i = 0; i < a.length; i++) if (Math.abs(a[i]!) >= 6) outlierCols.add(i % cols);
    expect([...oc!.data]).toEqual([...outlierCols].sort((p, q) => p - q));
    expect(outlierCols.has(7)).toBe(true);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let c = 0; c < cols; c++) if (Math.abs(a[r * cols + c]!) < 6) m = Math.max(m, Math.abs(a[r * cols + c]!));
      expect(stats.data[r]).toBe(m);
      for (let c = 0; c < cols; c++) {
        const q = CB.data[r * cols + c]!;
        if (outlierCols.has(c) || m === 0) expect(q).toBe(0);
        else expect(Math.abs(q - (a[r * cols + c]! * 127) / m)).toBeLessThanOrEqual(0.5 + 1e-4);
      }
    }
  });

  it('double quant: columns are rint(f16(x * 127) / colmax), outlier elements 0', () => {
    const rows = 20,
      cols = 9;
    const x = randn(rng, rows * cols, 2);
    x[4] = 7;
    const A = asDType(x, [rows, cols], 'float16');
    const a = toFloat32(A);
    const [[, CAt, , colStats], [, CAt2]] = both(() => int8DoubleQuant(A, { threshold: 6 }));
    same(CAt, CAt2);
    for (let c = 0; c < cols; c++) {
      let m = 0;
      for (let r = 0; r < rows; r++) if (Math.abs(a[r * cols + c]!) < 6) m = Math.max(m, Math.abs(a[r * cols + c]!));
      expect(colStats.data[c]).toBe(m);
      for (let r = 0; r < rows; r++) {
        const v = a[r * cols + c]!;
        const want = Math.abs(v) >= 6 ? 0 : Math.round(Math.fround(f16ToNumber(numberToF16(v * 127)) / m) * 2) / 2;
        expect(Math.abs(CAt.data[r * cols + c]! - want)).toBeLessThanOrEqual(0.5);
      }
    }
  });

  it('vectorwise dequant and mm_dequant follow their formulas', () => {
    const CB = tensor(randInt8(4 * 6), [4, 6]);
    const stats = tensor(Float32Array.from({ length: 4 }, () => rng.next() * 4));
    const out = int8VectorwiseDequant(CB, stats);
    const k = Math.fround(1 / 127);
    out.data.forEach((v, i) => expect(v).toBe(Math.fround(Math.fround(CB.data[i]! * stats.data[Math.floor(i / 6)]!) * k)));
    const C = tensor(
      Int32Array.from({ length: 12 }, () => rng.int(-200000, 200000)),
      [3, 4],
    );
    const rs = tensor(Float32Array.from({ length: 3 }, () => rng.next() * 3));
    const cs = tensor(Float32Array.from({ length: 4 }, () => rng.next() * 3));
    for (const dtype of DTYPES) {
      const d = int8MmDequant(C, rs, cs, { dtype });
      const d16 = toFloat32(int8MmDequant(C, rs, cs));
      toFloat32(d).forEach((v, i) => {
        const x = Math.fround(Math.fround(C.data[i]! * rs.data[Math.floor(i / 4)]!) * cs.data[i % 4]!);
        expect(d16[i]).toBe(toDType(x * Math.fround(1 / 16129), 'float16'));
        expect(v).toBe(toDType(d16[i]!, dtype));
      });
    }
  });
});

describe('gemv4bit / matmul4bit', () => {
  it("passes bnb's test_gemv_4bit bars against float64, any M and K, both builds identical", () => {
    for (const [M, N, K] of [
      [1, 48, 128],
      [3, 40, 131],
      [1, 7, 1],
      [2, 5, 33],
      [17, 12, 256],
      [1, 64, 1024],
      [300, 6, 96],
    ] as const) {
      for (const dtype of DTYPES) {
        for (const quantType of ['nf4', 'fp4'] as const) {
          const compressStatistics = rng.next() < 0.5;
          const W = asDType(randn(rng, N * K, 1 / Math.sqrt(K)), [N, K], dtype);
          const A = asDType(randn(rng, M * K), [M, K], dtype);
          const [qB, state] = quantize4bit(W, { quantType, compressStatistics, blocksize: rng.pick([32, 64, 128]) });
          const [C1, C2] = both(() => gemv4bit(A, qB, state));
          same(C1, C2);
          expect(C1.shape).toEqual([M, N]);
          const w = toFloat32(dequantize4bit(qB, Object.assign(Object.create(Object.getPrototypeOf(state)), state, { dtype: 'float32' })));
          const a = toFloat32(A);
          const ref = new Float64Array(M * N);
          for (let i = 0; i < M; i++)
            for (let j = 0; j < N; j++) {
              let s = 0;
              for (let k = 0; k < K; k++) s += a[i * K + k]! * w[j * K + k]!;
              ref[i * N + j] = s;
            }
          const metrics = gemvMetrics(ref, toFloat32(C1), Math.max(K, 128));
          const bars = gemvBars(dtype, K);
          for (const key of ['err1', 'relerr1', 'maxerr1'] as const)
            expect(metrics[key], `${M}x${N}x${K} ${dtype} ${quantType} ${key}`).toBeLessThan(bars[key]);
        }
      }
    }
  });

  it("passes bnb's test_matmul_4bit bar (mean |A B^T - out| vs the unquantized weight), with bias", () => {
    for (const [M, N, K] of [
      [1, 256, 128],
      [40, 2048, 128],
      [9, 512, 512],
    ] as const) {
      for (const quantType of ['nf4', 'fp4'] as const) {
        for (const blocksize of [32, 64, 128, 4096]) {
          const dtype = rng.pick(DTYPES);
          const w = randn(rng, N * K, 1 / Math.sqrt(K)),
            a = randn(rng, M * K);
          const bias = asDType(randn(rng, N), [N], dtype);
          const W = asDType(w, [N, K], dtype),
            A = asDType(a, [1, M, K], dtype);
          const [qB, state] = quantize4bit(W, { quantType, blocksize, compressStatistics: rng.next() < 0.5 });
          const out = toFloat32(matmul4bit(A, qB, state, { bias }));
          const wq = toFloat32(W),
            aq = toFloat32(A),
            bq = toFloat32(bias);
          let err = 0;
          for (let i = 0; i < M; i++)
            for (let j = 0; j < N; j++) {
              let s = bq[j]!;
              for (let k = 0; k < K; k++) s += aq[i * K + k]! * wq[j * K + k]!;
              err += Math.abs(s - out[i * N + j]!);
            }
          const bar = quantType === 'nf4' || blocksize <= 64 ? 0.115 : blocksize <= 256 ? 0.13 : 0.16;
          expect(err / (M * N), `${M}x${N}x${K} ${quantType} bs${blocksize}`).toBeLessThan(bar);
        }
      }
    }
  });

  it('reproduces the input exactly through an identity weight (test_gemv_eye_4bit)', () => {
    for (const dim of [64, 320]) {
      for (const dtype of DTYPES) {
        const eye = new Float32Array(dim * dim);
        for (let i = 0; i < dim; i++) eye[i * dim + i] = 1;
        const A = asDType(randn(rng, dim, 0.1), [1, 1, dim], dtype);
        const [qB, state] = quantize4bit(asDType(eye, [dim, dim], dtype), { quantType: rng.pick(['nf4', 'fp4'] as const) });
        const out = matmul4bit(A, { ...qB, shape: [1, qB.shape[0]!] }, state);
        expect(out.data).toEqual(A.data);
      }
    }
  });
});

describe('dequantizeFp8 layouts', () => {
  const fp8 = (n: number) =>
    tensor(
      Uint8Array.from({ length: n }, () => rng.pick([rng.int(0, 0x7e), rng.int(0x80, 0xfe)])),
      [n],
      'float8_e4m3fn',
    );
  it('tiles with partial edges, 1-D K-blocks, per row and per tensor, against a float64 reference', () => {
    for (const [rows, cols, b] of [
      [300, 200, 128],
      [5, 37, 16],
      [1, 1, 128],
      [130, 129, 64],
    ] as const) {
      const W = { ...fp8(rows * cols), shape: [rows, cols] };
      const w = toFloat32(W);
      const layouts: [number[], (i: number, j: number) => number][] = [
        [[Math.ceil(rows / b), Math.ceil(cols / b)], (i, j) => Math.floor(i / b) * Math.ceil(cols / b) + Math.floor(j / b)],
        [[rows, Math.ceil(cols / b)], (i, j) => i * Math.ceil(cols / b) + Math.floor(j / b)],
        [[rows, 1], (i) => i],
        [[1], () => 0],
      ];
      for (const [shape, index] of layouts) {
        const S = tensor(
          Float32Array.from({ length: shape.reduce((p, q) => p * q, 1) }, () => rng.next() * 0.01),
          shape,
        );
        for (const dtype of DTYPES) {
          const [o1, o2] = both(() => dequantizeFp8(W, S, { dtype, blockSize: b }));
          same(o1, o2);
          const out = toFloat32(o1);
          const bad: string[] = [];
          for (let i = 0; i < rows; i++)
            for (let j = 0; j < cols; j++) {
              const want = toDType(Math.fround(w[i * cols + j]! * toDType(S.data[index(i, j)]!, dtype)), dtype);
              if (!Object.is(out[i * cols + j], want)) bad.push(`[${i},${j}] ${out[i * cols + j]} vs ${want}`);
            }
          expect(bad, `${rows}x${cols} scale ${shape} ${dtype}`).toEqual([]);
        }
      }
    }
  });
});

describe('errors', () => {
  const A16 = asDType(randn(rng, 12), [3, 4], 'float16');
  it('int8 ops', () => {
    expect(err(() => int8VectorwiseQuant(tensor(new Float32Array(12), [3, 4])))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/A.dtype = "float32".*'float16'/),
    });
    expect(err(() => int8VectorwiseQuant(A16, { threshold: -1 }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/threshold = -1/),
    });
    expect(err(() => int8LinearMatmul(tensor(new Int8Array(6), [2, 3]), tensor(new Int8Array(8), [2, 4])))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/inner dimensions 3 and 4/),
    });
    expect(err(() => int8LinearMatmul(tensor(new Int8Array(6), [2, 3]), tensor(new Int8Array(6), [1, 2, 3])))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/B.shape = \[1, 2, 3\].*2-D/),
    });
    expect(err(() => int8LinearMatmul(tensor(new Int32Array(6), [2, 3]), tensor(new Int8Array(6), [2, 3])))).toMatchObject({
      code: 'E_DTYPE',
    });
    const C = tensor(new Int32Array(6), [2, 3]);
    expect(err(() => int8MmDequant(C, tensor(new Float32Array(3)), tensor(new Float32Array(3))))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/rowStats has 3 entries but A with 2 rows needs 2/),
    });
    expect(
      err(() => int8MmDequant(C, tensor(new Float32Array(2)), tensor(new Float32Array(3)), { bias: tensor(new Float32Array(4)) })),
    ).toMatchObject({ code: 'E_SHAPE', message: expect.stringMatching(/bias has 4 entries but A has 3 columns/) });
    expect(err(() => int8VectorwiseDequant(tensor(new Int8Array(6), [2, 3]), tensor(new Float32Array(3))))).toMatchObject({
      code: 'E_SHAPE',
    });
    const nan = tensor(Uint16Array.from([0x3c00, 0x7e00]), [1, 2], 'float16');
    expect(err(() => int8VectorwiseQuant(nan))).toMatchObject({ code: 'E_NON_FINITE', message: expect.stringMatching(/flat index 1/) });
  });
  it('gemv4bit and fp8', () => {
    const W = asDType(randn(rng, 64 * 32), [64, 32], 'float32');
    const [qB, state] = quantize4bit(W);
    expect(err(() => gemv4bit(tensor(new Float32Array(31), [1, 31]), qB, state))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/last dimension must be 32/),
    });
    expect(err(() => gemv4bit(tensor(new Float32Array(32), [1, 32]), qB, null as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/requires the QuantState/),
    });
    expect(err(() => matmul4bit(tensor(new Float32Array(32), [1, 32]), qB, state, { bias: tensor(new Float32Array(3)) }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/bias has 3 entries but the weight has 64/),
    });
    expect(err(() => gemv4bit(tensor(new Int8Array(32), [1, 32]), qB, state))).toMatchObject({ code: 'E_DTYPE' });
    const w8 = tensor(new Uint8Array(300 * 200), [300, 200], 'float8_e4m3fn');
    expect(err(() => dequantizeFp8(w8, tensor(new Float32Array(4), [2, 2])))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/\[3, 2\] \(128x128 tiles\)/),
    });
    expect(err(() => dequantizeFp8(tensor(new Uint8Array(4)), tensor(new Float32Array(1))))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/float8_e4m3fn/),
    });
  });
});

afterAll(() => setWasmBuild('simd'));

describe('NaN outputs', () => {
  it('int8VectorwiseDequant writes the canonical NaN 0x7fffffff, as CUDA', () => {
    const out = int8VectorwiseDequant(tensor(new Int8Array([1, -2, 0, 3]), [2, 2]), tensor(new Float32Array([NaN, Infinity])));
    const bits = new Uint32Array(out.data.buffer);
    expect([bits[0], bits[1], bits[2]]).toEqual([0x7fffffff, 0x7fffffff, 0x7fffffff]); // NaN*x, NaN*y, 0*inf
    expect(out.data[3]).toBe(Infinity);
  });
});
