import { BnbError, fail, show } from '../errors.js';
import { guard } from '../args.js';
import { dispatch, registerKernel } from '../backend/registry.js';
import { FLOAT_DTYPES, FloatDType, itemsize } from '../dtypes.js';
import { f16ToNumber, numberToF16 } from '../float16.js';
import { Tensor, numel, tensor } from '../tensor.js';
import { byteView, checkFinite, finiteCall } from './chunk.js';
import { KernelCall, kernelsFor, runChunks } from '../threads/parallel.js';
import { DTYPE_ID } from '../backend/abi.js';
import { chunkElements, wasm } from '../wasm/runtime.js';
import { FiniteCheck } from './finite.js';
import {
  checkBoolean, checkDTypeIs, checkFloatDType, checkOptions, checkOptionsObject, checkTensorArg, checkTensorOf, emptyTensor,
} from './validate.js';

export interface Int8QuantOptions {
  /** outlier threshold: |x| >= threshold is an outlier (0: none). Compared in float16, as bnb. */
  threshold?: number;
  allowNonFinite?: boolean;
}

/** [rows, cols] of a tensor seen as a matrix over its last dimension. */
function matrix(argument: string, t: Tensor): [number, number] {
  if (t.shape.length < 1 || numel(t.shape) === 0) {
    throw new BnbError('E_SHAPE', `${argument}.shape = ${show(t.shape)} is not accepted: expected at least one dimension and one element`);
  }
  const cols = t.shape[t.shape.length - 1]!;
  return [numel(t.shape) / cols, cols];
}

function checkThreshold(threshold: unknown): number {
  if (typeof threshold !== 'number' || !(threshold >= 0) || threshold === Infinity) {
    fail('E_ARGUMENT', 'threshold', threshold, 'a finite number >= 0 (0: no outliers)');
  }
  // torch compares the float16 |A| with the threshold in float16
  return f16ToNumber(numberToF16(threshold));
}

function checkStats(argument: string, t: unknown, length: number, what: string): Tensor {
  const s = checkTensorOf(argument, t, 'float32');
  if (numel(s.shape) !== length) {
    throw new BnbError('E_SHAPE', `${argument} has ${numel(s.shape)} entries but ${what} needs ${length}`);
  }
  return s;
}

/** Rows per chunk of a [rows, cols] matrix: the chunk's elements, at least one row. */
function rowChunk(rows: number, cols: number, threads: number): number {
  return Math.max(1, Math.min(rows, Math.floor(chunkElements(1, threads, rows * cols) / cols)));
}

/**
 * Row-wise int8 quantization of A over row chunks; `finite` rejects NaN/Inf first.
 * A is float16, or (`from`) float32/bfloat16 cast to float16 by the castFloat
 * kernel in wasm memory first: the bytes of int8VectorwiseQuant(castFloat(A, 'float16')).
 */
export function int8QuantRows(A: Tensor, threshold: number, finite: FiniteCheck | null, from: FloatDType = 'float16'): { q: Int8Array; stats: Float32Array } {
  const [rows, cols] = matrix('A', A);
  const q = new Int8Array(rows * cols), stats = new Float32Array(rows);
  const { m, threads } = kernelsFor(rows * cols, A.data);
  const chunk = rowChunk(rows, cols, threads);
  const size = itemsize(from), cast = from !== 'float16';
  const span = (j: number) => [j * chunk, Math.min(chunk, rows - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(rows / chunk),
    slot: [chunk * cols * size, cast ? chunk * cols * 2 : 0, chunk * cols, chunk * 4],
    load(j, p) {
      const [r0, n] = span(j);
      p[0] = m.place(p[0]!, byteView(A.data, r0 * cols * size, n * cols * size));
    },
    calls(j, [pIn, pHalf, pQ, pS]) {
      const n = span(j)[1], pA = cast ? pHalf! : pIn!;
      const first: KernelCall[] = cast ? [['castFloat', pIn!, n * cols, DTYPE_ID[from], pA, DTYPE_ID.float16]] : [];
      return [...first, ...finiteCall(pA, n * cols, 'float16', finite), ['int8VectorwiseQuant', pA, n, cols, threshold, pQ!, pS!]];
    },
    store(j, [, , pQ, pS], results) {
      const [r0, n] = span(j);
      checkFinite(finite, cast ? results.slice(1) : results, r0 * cols); // the scan's result follows the cast's
      m.read(pQ!, q, r0 * cols, n * cols);
      m.read(pS!, stats, r0 * 4, n * 4);
    },
  });
  return { q, stats };
}

/**
 * Column-wise int8 quantization of f16 A (bnb's CAt): every column needs all its
 * rows, so large matrices go through in column slices gathered row by row.
 */
function int8QuantColumns(A: Tensor, threshold: number): { q: Int8Array; stats: Float32Array } {
  const [rows, cols] = matrix('A', A);
  const m = wasm();
  const q = new Int8Array(rows * cols), stats = new Float32Array(cols);
  const budget = chunkElements(1) * 16;
  const cc = rows * cols <= budget ? cols : Math.max(1, Math.min(cols, Math.floor(budget / rows)));
  const [pA, pQ, pS] = m.scratch(rows * cc * 2, rows * cc, cc * 4);
  for (let c0 = 0; c0 < cols; c0 += cc) {
    const w = Math.min(cc, cols - c0);
    if (w === cols) m.write(pA!, byteView(A.data, 0, rows * cols * 2));
    else for (let r = 0; r < rows; r++) m.write(pA! + r * w * 2, byteView(A.data, (r * cols + c0) * 2, w * 2));
    m.k.int8ColumnQuant(pA!, rows, w, threshold, pQ!, pS!);
    m.read(pS!, stats, c0 * 4, w * 4);
    if (w === cols) m.read(pQ!, q, 0, rows * cols);
    else for (let r = 0; r < rows; r++) m.read(pQ! + r * w, q, r * cols + c0, w);
  }
  return { q, stats };
}

/** Columns holding any |x| >= threshold, ascending (bnb's outlier_cols, int64 there). */
function outlierColumns(A: Tensor, threshold: number): Int32Array {
  const [rows, cols] = matrix('A', A);
  const hit = new Uint8Array(cols);
  const d = A.data;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) if ((d[r * cols + c]! & 0x7fff) >= numberToF16(threshold) && (d[r * cols + c]! & 0x7fff) <= 0x7c00) hit[c] = 1;
  }
  const out: number[] = [];
  hit.forEach((h, c) => h && out.push(c));
  return Int32Array.from(out);
}

/**
 * int8VectorwiseQuant's (and int8DoubleQuant's) arguments, checked (every backend's
 * kernel starts here): float16 A seen as [rows, cols].
 */
export function checkInt8Quant(A: Tensor, opts: Int8QuantOptions = {}) {
  const o = checkOptions('int8VectorwiseQuant', opts, ['threshold', 'allowNonFinite']);
  const a = checkTensorOf('A', A, 'float16');
  const threshold = checkThreshold(o.threshold ?? 0);
  const allowNonFinite = checkBoolean('allowNonFinite', o.allowNonFinite ?? false);
  const [rows, cols] = matrix('A', a);
  return { A: a, threshold, allowNonFinite, rows, cols };
}

/**
 * bnb's int8_vectorwise_quant (LLM.int8 row-wise absmax quantization of float16
 * A). Returns [CB int8 like A, rowStats float32 [rows], outlierCols int32 | null].
 */
export function int8VectorwiseQuant(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor | null] {
  checkOptionsObject('int8VectorwiseQuant', opts);
  return dispatch('int8VectorwiseQuant', { A })(A, opts);
}

/** The WebAssembly kernel of int8VectorwiseQuant. */
export function int8VectorwiseQuantWasm(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor | null] {
  return int8VectorwiseQuantChecked(checkInt8Quant(A, opts));
}

function int8VectorwiseQuantChecked({ A, threshold, allowNonFinite, rows, cols }: ReturnType<typeof checkInt8Quant>): [Tensor, Tensor, Tensor | null] {
  const { q, stats } = int8QuantRows(A, threshold, allowNonFinite ? null : { argument: 'A', tensor: A });
  let outliers: Tensor | null = null;
  if (threshold > 0) {
    const oc = outlierColumns(A, threshold);
    // bnb zeroes whole outlier columns when there is more than one row
    if (rows > 1) for (const c of oc) for (let r = 0; r < rows; r++) q[r * cols + c] = 0;
    outliers = tensor(oc, [oc.length], 'int32');
  }
  return [tensor(q, [...A.shape], 'int8'), tensor(stats, [rows], 'float32'), outliers];
}

/**
 * bnb's int8_double_quant: the row-wise quantization plus the column-wise one
 * (CAt = rint(f16(A * 127) / colStats)). Returns [CArow, CAcol, rowStats, colStats, outlierCols | null].
 */
export function int8DoubleQuant(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor, Tensor, Tensor | null] {
  checkOptionsObject('int8DoubleQuant', opts);
  return dispatch('int8DoubleQuant', { A })(A, opts);
}

/** The WebAssembly kernel of int8DoubleQuant. */
export function int8DoubleQuantWasm(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor, Tensor, Tensor | null] {
  const checked = checkInt8Quant(A, opts);
  const [CA, rowStats, outliers] = int8VectorwiseQuantChecked(checked);
  const { A: a, threshold, cols } = checked;
  const { q, stats } = int8QuantColumns(a, threshold);
  return [CA, tensor(q, [...a.shape], 'int8'), rowStats, tensor(stats, [cols], 'float32'), outliers];
}

/** bnb's int8_vectorwise_dequant: A * stats[row] * f32(1/127), float32. */
export function int8VectorwiseDequant(A: Tensor, stats: Tensor): Tensor {
  return dispatch('int8VectorwiseDequant', { A, stats })(A, stats);
}

/** int8VectorwiseDequant's arguments, checked (every backend's kernel starts here). */
export function checkInt8VectorwiseDequant(A: Tensor, stats: Tensor) {
  const a = checkTensorOf('A', A, 'int8');
  const [rows, cols] = matrix('A', a);
  return { A: a, stats: checkStats('stats', stats, rows, `A with ${rows} rows`), rows, cols };
}

/** The WebAssembly kernel of int8VectorwiseDequant. */
export function int8VectorwiseDequantWasm(A: Tensor, stats: Tensor): Tensor {
  const { A: a, stats: st } = checkInt8VectorwiseDequant(A, stats);
  return int8DequantRows(a, st, 'float32');
}

/**
 * int8VectorwiseDequant over row chunks of checked A and stats, its float32 result
 * cast to `dtype` by the castFloat kernel in wasm memory: the bytes of
 * castFloat(int8VectorwiseDequant(A, stats), dtype), with no float32 copy on the host.
 */
export function int8DequantRows(a: Tensor, stats: Tensor, dtype: FloatDType): Tensor {
  const [rows, cols] = matrix('A', a);
  const s = stats.data as Float32Array;
  const out = emptyTensor(dtype, a.shape);
  const size = itemsize(dtype), cast = dtype !== 'float32';
  const { m, threads } = kernelsFor(rows * cols, a.data);
  const chunk = rowChunk(rows, cols, threads);
  const span = (j: number) => [j * chunk, Math.min(chunk, rows - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(rows / chunk),
    slot: [chunk * cols, chunk * 4, chunk * cols * 4, cast ? chunk * cols * size : 0],
    load(j, p) {
      const [r0, n] = span(j);
      p[0] = m.place(p[0]!, byteView(a.data, r0 * cols, n * cols));
      p[1] = m.place(p[1]!, byteView(s, r0 * 4, n * 4));
    },
    calls(j, [pA, pS, pF, pO]) {
      const n = span(j)[1];
      const deq: KernelCall = ['int8VectorwiseDequant', pA!, n, cols, pS!, pF!];
      return cast ? [deq, ['castFloat', pF!, n * cols, DTYPE_ID.float32, pO!, DTYPE_ID[dtype]]] : [deq];
    },
    store(j, [, , pF, pO]) {
      const [r0, n] = span(j);
      m.read(cast ? pO! : pF!, out.data, r0 * cols * size, n * cols * size);
    },
  });
  return out;
}

/** bnb's int8_linear_matmul: out = A @ B^T in exact int32 arithmetic, for any K. */
export function int8LinearMatmul(A: Tensor, B: Tensor): Tensor {
  return dispatch('int8LinearMatmul', { A, B })(A, B);
}

/** int8LinearMatmul's arguments, checked (every backend's kernel starts here): int8 A [..., K] and B [N, K]. */
export function checkInt8LinearMatmul(A: Tensor, B: Tensor) {
  const a = checkTensorArg('A', A), b = checkTensorArg('B', B);
  checkDTypeIs('A', a, 'int8');
  checkDTypeIs('B', b, 'int8');
  if (b.shape.length !== 2) throw new BnbError('E_SHAPE', `B.shape = ${show(b.shape)} is not accepted: expected a 2-D [N, K] matrix`);
  const [M, K] = matrix('A', a);
  const [N, KB] = b.shape as [number, number];
  if (K !== KB) {
    throw new BnbError('E_SHAPE', `int8LinearMatmul computes A @ B^T: A.shape = ${show(a.shape)} and B.shape = ${show(b.shape)} have inner dimensions ${K} and ${KB}`);
  }
  return { A: a, B: b, M, K, N };
}

/**
 * The WebAssembly kernel of int8LinearMatmul: blocks of A's rows in turn, each
 * against B in chunks of rows (the chunks are what threads share).
 */
export function int8LinearMatmulWasm(A: Tensor, B: Tensor): Tensor {
  const { A: a, B: b, M, K, N } = checkInt8LinearMatmul(A, B);
  const out = new Int32Array(M * N);
  const { m, threads } = kernelsFor(N * K + (M * N * K) / 16, b.data, a.data);
  const budget = chunkElements(1) * 64; // bytes of each operand per kernel call
  const mc = Math.max(1, Math.min(M, Math.floor(budget / K)));
  const nc = Math.max(4, Math.min(N, Math.floor(budget / K), threads > 1 ? Math.ceil(N / (8 * threads)) : N));
  for (let i0 = 0; i0 < M; i0 += mc) {
    const mi = Math.min(mc, M - i0);
    const span = (j: number) => [j * nc, Math.min(nc, N - j * nc)] as const;
    runChunks(m, threads, {
      count: Math.ceil(N / nc),
      shared: [mc * K],
      prepare: ([pA]) => m.write(pA!, byteView(a.data, i0 * K, mi * K)),
      slot: [nc * K, mc * nc * 4],
      load(j, p) {
        const [j0, nj] = span(j);
        p[0] = m.place(p[0]!, byteView(b.data, j0 * K, nj * K));
      },
      calls: (j, [pB, pO], [pA]) => [['int8LinearMatmul', pA!, mi, K, pB!, span(j)[1], pO!]],
      store(j, [, pO]) {
        const [j0, nj] = span(j);
        if (nj === N) m.read(pO!, out, i0 * N * 4, mi * N * 4);
        else for (let i = 0; i < mi; i++) m.read(pO! + i * nj * 4, out, ((i0 + i) * N + j0) * 4, nj * 4);
      },
    });
  }
  return tensor(out, [...a.shape.slice(0, -1), N], 'int32');
}

export interface Int8MmDequantOptions {
  bias?: Tensor | null;
  dtype?: FloatDType;
}

/** The kernels' bias dtype ids (0: no bias). */
const BIAS_KIND: Record<FloatDType, number> = { float16: 1, float32: 2, bfloat16: 3 };

/**
 * bnb's int8_mm_dequant with CUDA's arithmetic: half(fma(A * row * col, 1/16129, bias))
 * for a float16 bias; another bias dtype is added to the float16 result; other
 * output dtypes are casts of that float16 result (docs/bit-exactness.md#int8-matmul-dequantization).
 */
export function int8MmDequant(A: Tensor, rowStats: Tensor, colStats: Tensor, opts: Int8MmDequantOptions = {}): Tensor {
  checkOptionsObject('int8MmDequant', opts);
  return dispatch('int8MmDequant', { A, rowStats, colStats, bias: guard('int8MmDequant option bias', () => opts.bias) })(A, rowStats, colStats, opts);
}

/** int8MmDequant's arguments, checked (every backend's kernel starts here). */
export function checkInt8MmDequant(A: Tensor, rowStats: Tensor, colStats: Tensor, opts: Int8MmDequantOptions = {}) {
  const o = checkOptions('int8MmDequant', opts, ['bias', 'dtype']);
  const a = checkTensorOf('A', A, 'int32');
  const [rows, cols] = matrix('A', a);
  const rs = checkStats('rowStats', rowStats, rows, `A with ${rows} rows`);
  const cs = checkStats('colStats', colStats, cols, `A with ${cols} columns`);
  const dtype = checkFloatDType('dtype', o.dtype ?? 'float16', 'int8MmDequant');
  let bias: Tensor | null = null;
  if (o.bias !== undefined && o.bias !== null) {
    bias = checkTensorArg('bias', o.bias);
    if (!(FLOAT_DTYPES as readonly string[]).includes(bias.dtype)) fail('E_DTYPE', 'bias.dtype', bias.dtype, FLOAT_DTYPES.join(', '));
    if (numel(bias.shape) !== cols) throw new BnbError('E_SHAPE', `bias has ${numel(bias.shape)} entries but A has ${cols} columns`);
  }
  return { A: a, rowStats: rs, colStats: cs, rows, cols, dtype, bias, biasKind: bias ? BIAS_KIND[bias.dtype as FloatDType] : 0 };
}

/** The WebAssembly kernel of int8MmDequant. */
export function int8MmDequantWasm(A: Tensor, rowStats: Tensor, colStats: Tensor, opts: Int8MmDequantOptions = {}): Tensor {
  const { A: a, rowStats: rsT, colStats: csT, rows, cols, dtype, bias, biasKind } = checkInt8MmDequant(A, rowStats, colStats, opts);
  const rs = rsT.data as Float32Array, cs = csT.data as Float32Array;
  const size = dtype === 'float32' ? 4 : 2;
  const result = emptyTensor(dtype, a.shape);
  const { m, threads } = kernelsFor(rows * cols, a.data);
  const chunk = rowChunk(rows, cols, threads);
  const span = (j: number) => [j * chunk, Math.min(chunk, rows - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(rows / chunk),
    shared: [cols * 4, cols * 4],
    prepare([pC, pB]) {
      m.write(pC!, byteView(cs, 0, cols * 4));
      if (bias) m.write(pB!, byteView(bias.data, 0, bias.data.byteLength));
    },
    slot: [chunk * cols * 4, chunk * 4, chunk * cols * size],
    load(j, p) {
      const [r0, n] = span(j);
      p[0] = m.place(p[0]!, byteView(a.data, r0 * cols * 4, n * cols * 4));
      p[1] = m.place(p[1]!, byteView(rs, r0 * 4, n * 4));
    },
    calls: (j, [pA, pR, pO], [pC, pB]) => [['int8MmDequant', pA!, span(j)[1], cols, pR!, pC!, pB!, biasKind, DTYPE_ID[dtype], pO!]],
    store(j, [, , pO]) {
      const [r0, n] = span(j);
      m.read(pO!, result.data, r0 * cols * size, n * cols * size);
    },
  });
  return result;
}

/** bnb's int8_scaled_mm: int8LinearMatmul then int8MmDequant. */
export function int8ScaledMm(A: Tensor, B: Tensor, rowStats: Tensor, colStats: Tensor, opts: Int8MmDequantOptions = {}): Tensor {
  checkOptionsObject('int8ScaledMm', opts);
  return int8MmDequant(int8LinearMatmul(A, B), rowStats, colStats, opts);
}

registerKernel('int8VectorwiseQuant', 'cpu', int8VectorwiseQuantWasm);
registerKernel('int8DoubleQuant', 'cpu', int8DoubleQuantWasm);
registerKernel('int8VectorwiseDequant', 'cpu', int8VectorwiseDequantWasm);
registerKernel('int8LinearMatmul', 'cpu', int8LinearMatmulWasm);
registerKernel('int8MmDequant', 'cpu', int8MmDequantWasm);
