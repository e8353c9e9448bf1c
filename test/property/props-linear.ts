// Properties of LLM.int8, the 4-bit GEMV and FP8 dequantization: the SIMD build
// against the scalar oracle byte for byte, and against exact integer or float64
// references.
import fc from 'fast-check';
import {
  QuantState,
  Tensor,
  dequantizeFp8,
  gemv4bit,
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8ScaledMm,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  matmul4bit,
  quantize4bit,
  tensor,
  toFloat32,
} from '../../src/index.js';
import { FloatDType } from '../../src/dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../../src/float16.js';
import { BLOCKSIZES_4BIT } from '../../src/ops/validate.js';
import { dequantize4bit } from '../../src/ops/dequantize4bit.js';
import { Rng } from '../helpers/random.js';
import { both } from '../helpers/util.js';
import { FLOAT_DTYPES, PLANTED, assertSame, check, floatTensor, offsetView, values, withData } from './gen.js';

const f16 = (x: number) => f16ToNumber(numberToF16(x));
const roundTo = (dtype: FloatDType) =>
  dtype === 'float16' ? f16 : dtype === 'bfloat16' ? (x: number) => bf16ToNumber(numberToBf16(x)) : (x: number) => Math.fround(x);
const rint = (x: number) => {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r; // half to even
};
/** Unit in the last place of |x| in `dtype`. */
function ulp(x: number, dtype: FloatDType): number {
  const [bits, minExp] = dtype === 'float16' ? [10, -14] : dtype === 'bfloat16' ? [7, -126] : [23, -126];
  const e = Math.max(minExp, Math.floor(Math.log2(Math.abs(x) || 2 ** minExp)));
  return 2 ** (e - bits);
}
const sameBits = (a: number, b: number) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

const matrixCase = fc
  .record({
    rows: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 300 })),
    cols: fc.oneof(fc.integer({ min: 1, max: 70 }), fc.constantFrom(127, 128, 129, 1021, 4099)),
    threeD: fc.boolean(),
    seed: fc.integer(),
    planted: fc.array(fc.constantFrom(...PLANTED), { maxLength: 3 }),
    threshold: fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 8, noNaN: true })),
    nonFinite: fc.boolean(),
    pad: fc.integer({ min: 0, max: 3 }),
  })
  .map((c) => (c.cols > 1000 ? { ...c, rows: 1 + (c.rows % 8) } : c));

function f16Matrix(c: {
  rows: number;
  cols: number;
  threeD: boolean;
  seed: number;
  planted: never[] | string[];
  nonFinite: boolean;
  pad: number;
}): Tensor {
  const x = values(c.seed, c.rows * c.cols, c.planted as never, c.nonFinite);
  const shape = c.threeD && c.rows % 2 === 0 ? [2, c.rows / 2, c.cols] : [c.rows, c.cols];
  const A = floatTensor(x, shape, 'float16');
  return withData(A, offsetView(A.data, c.pad));
}

/** int8VectorwiseQuant and int8DoubleQuant: both builds; statistics exact, codes within 0.5 of x·127/stat (float64). */
export const int8QuantProperty = () =>
  fc.property(matrixCase, (c) => {
    const A = f16Matrix(c);
    const opts = { threshold: c.threshold, allowNonFinite: c.nonFinite };
    const [[cb1, rs1, oc1], [cb2, rs2, oc2]] = both(() => int8VectorwiseQuant(A, opts));
    assertSame(cb1, cb2, 'CB');
    assertSame(rs1, rs2, 'rowStats');
    check((oc1 === null) === (oc2 === null), () => 'outlierCols');
    if (oc1) assertSame(oc1, oc2!, 'outlierCols');
    const [d1, d2] = both(() => int8DoubleQuant(A, opts));
    d1.forEach((t, i) =>
      t === null ? check(d2[i] === null, () => `double quant output ${i}`) : assertSame(t, d2[i]!, `double quant output ${i}`),
    );
    assertSame(d1[0], cb1, 'CArow = CB');
    const x = toFloat32(A),
      rows = c.rows,
      cols = c.cols,
      th = f16(c.threshold);
    const outlier = (v: number) => th > 0 && Math.abs(v) >= th;
    const outCols = new Set<number>();
    for (let i = 0; i < x.length; i++) if (th > 0 && Math.abs(x[i]!) >= th) outCols.add(i % cols);
    const colStats = d1[3].data as Float32Array,
      cat = d1[1].data as Int8Array;
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let k = 0; k < cols; k++) {
        const v = Math.abs(x[r * cols + k]!);
        if ((th === 0 || v < th) && v > m) m = v;
      }
      check(rs1.data[r] === m, () => `rowStats[${r}] = ${rs1.data[r]}, expected ${m}`);
      for (let k = 0; k < cols; k++) {
        const v = x[r * cols + k]!,
          q = cb1.data[r * cols + k]!;
        if ((rows > 1 && outCols.has(k)) || outlier(v) || !Number.isFinite(v) || m === 0 || !Number.isFinite(m)) continue;
        const exact = (v * 127) / m;
        check(Math.abs(q - exact) <= 0.5 + 1e-5 * Math.abs(exact), () => `CB[${r}, ${k}] = ${q}, x·127/stat = ${exact}`);
      }
    }
    for (let k = 0; k < cols; k++) {
      for (let r = 0; r < rows; r++) {
        const v = x[r * cols + k]!;
        const s = colStats[k]!;
        let want = th > 0 && Math.abs(v) >= th ? 0 : rint(Math.fround(f16(Math.fround(v * 127)) / s));
        if (Number.isNaN(want)) want = 0;
        want = Math.max(-128, Math.min(127, want));
        check(cat[r * cols + k] === want, () => `CAcol[${r}, ${k}] = ${cat[r * cols + k]}, expected ${want}`);
      }
    }
  });

/** int8VectorwiseDequant: both builds and the exact f32 formula f32(f32(A·stat)·f32(1/127)). */
export const int8DequantProperty = () =>
  fc.property(
    fc.record({
      rows: fc.integer({ min: 1, max: 200 }),
      cols: fc.integer({ min: 1, max: 300 }),
      seed: fc.integer(),
      weird: fc.boolean(),
      pad: fc.integer({ min: 0, max: 3 }),
    }),
    (c) => {
      const rng = new Rng(c.seed);
      const q = Int8Array.from({ length: c.rows * c.cols }, () => rng.int(-128, 127));
      const s = Float32Array.from({ length: c.rows }, () =>
        c.weird && rng.next() < 0.2 ? rng.pick([0, NaN, Infinity, 1e-40]) : rng.next() * 10,
      );
      const A = tensor(offsetView(q, c.pad), [c.rows, c.cols]),
        S = tensor(offsetView(s, c.pad));
      const [d1, d2] = both(() => int8VectorwiseDequant(A, S));
      assertSame(d1, d2, 'dequantized');
      const k = Math.fround(1 / 127);
      for (let i = 0; i < q.length; i++) {
        const want = Math.fround(Math.fround(q[i]! * s[Math.floor(i / c.cols)]!) * k);
        check(sameBits(d1.data[i]!, want), () => `out[${i}] = ${d1.data[i]}, expected ${want}`);
      }
    },
  );

/** int8LinearMatmul: both builds and the exact int32 result (mod 2^32) for any K. */
export const int8MatmulProperty = () =>
  fc.property(
    fc
      .record({
        M: fc.integer({ min: 1, max: 24 }),
        N: fc.integer({ min: 1, max: 40 }),
        K: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 1000 }), fc.constantFrom(4099, 70_000)),
        seed: fc.integer(),
        extreme: fc.boolean(),
        pad: fc.integer({ min: 0, max: 3 }),
      })
      .map((c) => (c.K > 1000 ? { ...c, M: 1 + (c.M % 3), N: 1 + (c.N % 5) } : c)),
    (c) => {
      const rng = new Rng(c.seed);
      const gen = () => (c.extreme ? rng.pick([-128, 127, -127]) : rng.int(-128, 127));
      const a = Int8Array.from({ length: c.M * c.K }, gen),
        b = Int8Array.from({ length: c.N * c.K }, gen);
      const A = tensor(offsetView(a, c.pad), [c.M, c.K]),
        B = tensor(offsetView(b, c.pad), [c.N, c.K]);
      const [o1, o2] = both(() => int8LinearMatmul(A, B));
      assertSame(o1, o2, 'A @ B^T');
      for (let i = 0; i < c.M; i++) {
        for (let j = 0; j < c.N; j++) {
          let s = 0;
          for (let t = 0; t < c.K; t++) s = (s + a[i * c.K + t]! * b[j * c.K + t]!) | 0;
          check(o1.data[i * c.N + j] === s, () => `out[${i}, ${j}] = ${o1.data[i * c.N + j]}, expected ${s}`);
        }
      }
    },
  );

/** int8MmDequant / int8ScaledMm: both builds; within one float16 rounding of A·row·col/16129 + bias (float64). */
export const int8MmDequantProperty = () =>
  fc.property(
    fc.record({
      rows: fc.integer({ min: 1, max: 40 }),
      cols: fc.integer({ min: 1, max: 300 }),
      seed: fc.integer(),
      bias: fc.constantFrom('none', 'float16', 'float32', 'bfloat16'),
      dtype: fc.constantFrom(...FLOAT_DTYPES),
    }),
    (c) => {
      const rng = new Rng(c.seed);
      const a = Int32Array.from({ length: c.rows * c.cols }, () => rng.int(-(2 ** 20), 2 ** 20));
      const rs = Float32Array.from({ length: c.rows }, () => rng.next() * 4),
        cs = Float32Array.from({ length: c.cols }, () => rng.next() * 4);
      const bias =
        c.bias === 'none'
          ? null
          : floatTensor(
              Float32Array.from({ length: c.cols }, () => rng.normal()),
              [c.cols],
              c.bias as FloatDType,
            );
      const A = tensor(a, [c.rows, c.cols]);
      const [o1, o2] = both(() => int8MmDequant(A, tensor(rs), tensor(cs), { bias, dtype: c.dtype }));
      assertSame(o1, o2, 'int8MmDequant');
      const got = toFloat32(o1),
        b = bias ? toFloat32(bias) : null;
      for (let r = 0; r < c.rows; r++) {
        for (let k = 0; k < c.cols; k++) {
          const ref = (a[r * c.cols + k]! * rs[r]! * cs[k]!) / 16129 + (b ? b[k]! : 0);
          const g = got[r * c.cols + k]!;
          const pre = (a[r * c.cols + k]! * rs[r]! * cs[k]!) / 16129;
          if (Math.abs(ref) > 65000 || Math.abs(pre) > 65000) continue; // float16 overflow region
          // fused with a float16 bias: one rounding; another bias is added to the rounded product
          // (A·row·col and 1/16129 are f32: a few 2^-24 of |pre|, which matters when the bias cancels it)
          // (ulps at the larger of result and reference: a rounding may cross a power of 2)
          const at = Math.max(Math.abs(ref), Math.abs(g));
          const tol =
            0.51 * ulp(at, 'float16') +
            (b && c.bias !== 'float16' ? 0.51 * ulp(pre, 'float16') : 0) +
            ulp(at, c.dtype) +
            2 ** -21 * Math.abs(pre);
          check(Math.abs(g - ref) <= tol, () => `out[${r}, ${k}] = ${g}, float64 reference ${ref}`);
        }
      }
      // int8ScaledMm is the same pipeline from int8 operands
      const K = 1 + ((c.seed >>> 0) % 50);
      const qa = tensor(
        Int8Array.from({ length: c.rows * K }, () => rng.int(-128, 127)),
        [c.rows, K],
      );
      const qb = tensor(
        Int8Array.from({ length: c.cols * K }, () => rng.int(-128, 127)),
        [c.cols, K],
      );
      const [m1, m2] = both(() => int8ScaledMm(qa, qb, tensor(rs), tensor(cs), { bias, dtype: c.dtype }));
      assertSame(m1, m2, 'int8ScaledMm');
      assertSame(
        m1,
        int8MmDequant(int8LinearMatmul(qa, qb), tensor(rs), tensor(cs), { bias, dtype: c.dtype }),
        'int8ScaledMm = int8MmDequant(int8LinearMatmul)',
      );
    },
  );

/** gemv4bit / matmul4bit: both builds byte for byte; within the f32 accumulation bound of a float64 reference. */
export const gemvProperty = () =>
  fc.property(
    fc.record({
      M: fc.integer({ min: 1, max: 6 }),
      batch: fc.boolean(),
      N: fc.integer({ min: 1, max: 90 }),
      K: fc.oneof(fc.integer({ min: 1, max: 80 }), fc.constantFrom(63, 64, 65, 127, 509, 1021, 2048, 4099)),
      blocksize: fc.constantFrom(...BLOCKSIZES_4BIT),
      quantType: fc.constantFrom('nf4' as const, 'fp4' as const),
      nested: fc.boolean(),
      dtype: fc.constantFrom(...FLOAT_DTYPES),
      bias: fc.boolean(),
      seed: fc.integer(),
      pad: fc.integer({ min: 0, max: 3 }),
    }),
    (c) => {
      const rng = new Rng(c.seed);
      const W = floatTensor(
        values(c.seed, c.N * c.K, ['none']).map((v) => v / (Math.abs(v) + 1)),
        [c.N, c.K],
        c.dtype,
      );
      const [packed, state] = quantize4bit(W, { blocksize: c.blocksize, quantType: c.quantType, compressStatistics: c.nested });
      const M = c.batch ? 2 * c.M : c.M;
      const A0 = floatTensor(
        Float32Array.from({ length: M * c.K }, () => rng.normal()),
        c.batch ? [2, c.M, c.K] : [M, c.K],
        c.dtype,
      );
      const A = withData(A0, offsetView(A0.data, c.pad));
      const bias = c.bias
        ? floatTensor(
            Float32Array.from({ length: c.N }, () => rng.normal()),
            [c.N],
            c.dtype,
          )
        : null;
      const [o1, o2] = both(() => (bias ? matmul4bit(A, packed, state, { bias }) : gemv4bit(A, packed, state)));
      assertSame(o1, o2, 'A @ W^T');
      const w = toFloat32(dequantize4bit(packed, new QuantState({ ...state, dtype: 'float32' })));
      const a = toFloat32(A),
        b = bias ? toFloat32(bias) : null,
        got = toFloat32(o1);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < c.N; j++) {
          let ref = 0,
            mag = 0;
          for (let t = 0; t < c.K; t++) {
            ref += a[i * c.K + t]! * w[j * c.K + t]!;
            mag += Math.abs(a[i * c.K + t]! * w[j * c.K + t]!);
          }
          if (b) ref += b[j]!;
          const g = got[i * c.N + j]!;
          const tol = (c.K + 2) * 2 ** -24 * (mag + Math.abs(b?.[j] ?? 0)) + ulp(Math.max(Math.abs(ref), Math.abs(g)), c.dtype);
          check(Math.abs(g - ref) <= tol, () => `out[${i}, ${j}] = ${g}, float64 reference ${ref} (tolerance ${tol})`);
        }
      }
    },
  );

/** dequantizeFp8: both builds and the exact dtype(e4m3(W) · dtype(scale)) for every scale layout, any blockSize. */
export const fp8Property = () =>
  fc.property(
    fc.record({
      rows: fc.integer({ min: 1, max: 60 }),
      cols: fc.integer({ min: 1, max: 300 }),
      blockSize: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constantFrom(128, 2 ** 31, 2 ** 40)),
      layout: fc.constantFrom('tensor', 'tiles', 'blocks1d', 'rows'),
      scaleDType: fc.constantFrom(...FLOAT_DTYPES),
      dtype: fc.constantFrom(...FLOAT_DTYPES),
      seed: fc.integer(),
      pad: fc.integer({ min: 0, max: 3 }),
    }),
    (c) => {
      const rng = new Rng(c.seed);
      const w = Uint8Array.from({ length: c.rows * c.cols }, () => rng.int(0, 255));
      const b = c.blockSize,
        tr = Math.ceil(c.rows / b),
        tc = Math.ceil(c.cols / b);
      const sshape = c.layout === 'tensor' ? [1] : c.layout === 'tiles' ? [tr, tc] : c.layout === 'blocks1d' ? [c.rows, tc] : [c.rows, 1];
      const count = sshape.reduce((x, y) => x * y, 1);
      const S = floatTensor(
        Float32Array.from({ length: count }, () => rng.next() * 2 ** rng.int(-8, 8)),
        sshape,
        c.scaleDType,
      );
      const W = tensor(offsetView(w, c.pad), [c.rows, c.cols], 'float8_e4m3fn');
      const [o1, o2] = both(() => dequantizeFp8(W, S, { dtype: c.dtype, blockSize: b }));
      assertSame(o1, o2, 'dequantizeFp8');
      const round = roundTo(c.dtype),
        ws = toFloat32(W),
        ss = toFloat32(S).map(round),
        got = toFloat32(o1);
      const br = Math.min(b, c.rows),
        bc = Math.min(b, c.cols);
      for (let r = 0; r < c.rows; r++) {
        for (let k = 0; k < c.cols; k++) {
          // the layout is ambiguous when shapes coincide; the op resolves it in this order
          const i =
            count === 1
              ? 0
              : tr === sshape[0] && tc === sshape[1] && sshape.length === 2
                ? Math.floor(r / br) * tc + Math.floor(k / bc)
                : sshape[1] === tc
                  ? r * tc + Math.floor(k / bc)
                  : r;
          const want = round(Math.fround(ws[r * c.cols + k]! * ss[i]!));
          check(sameBits(got[r * c.cols + k]!, want), () => `out[${r}, ${k}] = ${got[r * c.cols + k]}, expected ${want}`);
        }
      }
    },
  );
