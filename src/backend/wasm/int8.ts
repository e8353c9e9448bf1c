// The WebAssembly kernels of the LLM.int8 ops: row chunks (the row-wise ops), column
// slices (int8DoubleQuant's column codes), blocks of rows against chunks of B (the matmul).
import { FloatDType, itemsize } from '../../dtypes.js';
import { numberToF16 } from '../../float16.js';
import { Tensor, tensor } from '../../tensor.js';
import { DTYPE_ID } from '../abi.js';
import { Checked } from '../../ops/registry.js';
import {
  int8DoubleQuantOp,
  int8LinearMatmulOp,
  int8MmDequantOp,
  int8VectorwiseDequantOp,
  int8VectorwiseQuantOp,
  matrix,
} from '../../ops/int8.js';
import { freshArray, freshTensor } from './fresh.js';
import { wasm } from './runtime/instances.js';
import { FiniteCheck } from './finite.js';
import { byteView, checkFinite, chunkElements, finiteCall } from './chunk.js';
import { KernelCall, kernelsFor, runChunks } from './threads/parallel.js';

/** Rows per chunk of a [rows, cols] matrix: the chunk's elements, at least one row. */
function rowChunk(rows: number, cols: number, threads: number): number {
  return Math.max(1, Math.min(rows, Math.floor(chunkElements(1, threads, rows * cols) / cols)));
}

/**
 * Row-wise int8 quantization of A over row chunks; `finite` rejects NaN/Inf first.
 * A is float16, or (`from`) float32/bfloat16 cast to float16 by the castFloat
 * kernel in wasm memory first: the bytes of int8VectorwiseQuant(castFloat(A, 'float16')).
 */
export function int8QuantRows(
  A: Tensor,
  threshold: number,
  finite: FiniteCheck | null,
  from: FloatDType = 'float16',
): { q: Int8Array; stats: Float32Array } {
  const [rows, cols] = matrix('A', A);
  const q = freshArray('int8', rows * cols) as Int8Array,
    stats = new Float32Array(rows);
  const { m, threads } = kernelsFor(rows * cols, A.data);
  const chunk = rowChunk(rows, cols, threads);
  const size = itemsize(from),
    cast = from !== 'float16';
  const span = (j: number) => [j * chunk, Math.min(chunk, rows - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(rows / chunk),
    slot: [chunk * cols * size, cast ? chunk * cols * 2 : 0, chunk * cols, chunk * 4],
    load(j, p) {
      const [r0, n] = span(j);
      p[0] = m.place(p[0]!, byteView(A.data, r0 * cols * size, n * cols * size));
    },
    calls(j, [pIn, pHalf, pQ, pS]) {
      const n = span(j)[1],
        pA = cast ? pHalf! : pIn!;
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
  const q = freshArray('int8', rows * cols) as Int8Array,
    stats = new Float32Array(cols);
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
    for (let c = 0; c < cols; c++)
      if ((d[r * cols + c]! & 0x7fff) >= numberToF16(threshold) && (d[r * cols + c]! & 0x7fff) <= 0x7c00) hit[c] = 1;
  }
  const out: number[] = [];
  hit.forEach((h, c) => h && out.push(c));
  return Int32Array.from(out);
}

/** The WebAssembly kernel of int8VectorwiseQuant. */
export function int8VectorwiseQuantWasm({
  A,
  threshold,
  allowNonFinite,
  rows,
  cols,
}: Checked<typeof int8VectorwiseQuantOp>): [Tensor, Tensor, Tensor | null] {
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

/** The WebAssembly kernel of int8DoubleQuant. */
export function int8DoubleQuantWasm(checked: Checked<typeof int8DoubleQuantOp>): [Tensor, Tensor, Tensor, Tensor, Tensor | null] {
  const [CA, rowStats, outliers] = int8VectorwiseQuantWasm(checked);
  const { A: a, threshold, cols } = checked;
  const { q, stats } = int8QuantColumns(a, threshold);
  return [CA, tensor(q, [...a.shape], 'int8'), rowStats, tensor(stats, [cols], 'float32'), outliers];
}

/** The WebAssembly kernel of int8VectorwiseDequant. */
export function int8VectorwiseDequantWasm(c: Checked<typeof int8VectorwiseDequantOp>): Tensor {
  const { A: a, stats: st } = c;
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
  const out = freshTensor(dtype, a.shape);
  const size = itemsize(dtype),
    cast = dtype !== 'float32';
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

/**
 * The WebAssembly kernel of int8LinearMatmul: blocks of A's rows in turn, each
 * against B in chunks of rows (the chunks are what threads share).
 */
export function int8LinearMatmulWasm(c: Checked<typeof int8LinearMatmulOp>): Tensor {
  const { A: a, B: b, M, K, N } = c;
  const out = freshArray('int32', M * N) as Int32Array;
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

/** The WebAssembly kernel of int8MmDequant. */
export function int8MmDequantWasm(c: Checked<typeof int8MmDequantOp>): Tensor {
  const { A: a, rowStats: rsT, colStats: csT, rows, cols, dtype, bias, biasKind } = c;
  const rs = rsT.data as Float32Array,
    cs = csT.data as Float32Array;
  const size = dtype === 'float32' ? 4 : 2;
  const result = freshTensor(dtype, a.shape);
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
