// The WebAssembly kernels of quantize4bit and dequantize4bit: tensors streamed
// through wasm memory in chunks of whole blocks, on the calling thread or the pool.
import { FloatDType, reinterpret } from '../../dtypes.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, tensor } from '../../tensor.js';
import { QuantType, get4bitType } from '../../maps.js';
import { DTYPE_ID, QTYPE_ID } from '../abi.js';
import { Checked } from '../../ops/registry.js';
import { NESTED_BLOCKSIZE_4BIT, packedShape, quantize4bitOp } from '../../ops/quantize4bit.js';
import { dequantize4bitOp } from '../../ops/dequantize4bit.js';
import { freshArray, freshTensor } from './fresh.js';
import { absmaxF32, compressAbsmax } from './blockwise.js';
import { FiniteCheck } from './finite.js';
import { absmaxSpan, byteView, checkFinite, chunkElements, finiteCall, loadFloatChunk } from './chunk.js';
import { kernelsFor, runChunks } from './threads/parallel.js';

/** The kernel: packed nibbles (ceil(n/2) bytes) and f32 absmax of n elements (src: elements of dtype). */
export function quantize4bitRaw(
  src: ArrayBufferView,
  n: number,
  dtype: FloatDType,
  blocksize: number,
  quantType: QuantType,
  finite: FiniteCheck | null = null,
): { packed: Uint8Array; absmax: Float32Array } {
  const size = dtype === 'float32' ? 4 : 2;
  const packed = freshArray('uint8', Math.ceil(n / 2)) as Uint8Array;
  const absmax = freshArray('float32', Math.ceil(n / blocksize)) as Float32Array;
  const { m, threads } = kernelsFor(n, src);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    slot: [chunk * size, Math.ceil(chunk / 2), Math.ceil(chunk / blocksize) * 4],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = loadFloatChunk(m, p[0]!, src, start, len, dtype);
    },
    calls(j, [pIn, pOut, pAbs]) {
      const len = span(j)[1];
      return [
        ...finiteCall(pIn!, len, dtype, finite),
        ['quantize4bit', pIn!, len, DTYPE_ID[dtype], blocksize, QTYPE_ID[quantType], pOut!, pAbs!, m.nf4Ptr],
      ];
    },
    store(j, [, pOut, pAbs], results) {
      const [start, len] = span(j);
      checkFinite(finite, results, start);
      m.read(pOut!, packed, start / 2, Math.ceil(len / 2));
      absmaxSpan(absmax, start, len, blocksize).set(m.bytes(pAbs!, Math.ceil(len / blocksize) * 4));
    },
  });
  return { packed, absmax };
}

/** The WebAssembly kernel of quantize4bit. */
export function quantize4bitWasm(c: Checked<typeof quantize4bitOp>): [Tensor, QuantState] {
  const { A: a, n, blocksize, compressStatistics, quantType, quantStorage, allowNonFinite } = c;
  const r = quantize4bitRaw(a.data, n, a.dtype, blocksize, quantType, allowNonFinite ? null : { argument: 'A', tensor: a });
  const common = { shape: [...a.shape], code: get4bitType(quantType), blocksize, quantType, dtype: a.dtype };
  const state = compressStatistics
    ? new QuantState({ ...common, ...compressAbsmax(r.absmax, NESTED_BLOCKSIZE_4BIT) })
    : new QuantState({ ...common, absmax: tensor(r.absmax, [r.absmax.length], 'float32') });
  const packed = tensor(reinterpret(r.packed, quantStorage), packedShape(n, quantStorage), quantStorage);
  return [packed, state];
}

/**
 * The kernel: n values dtype(code[q] * absmax[block]) from packed nibbles (any
 * view, read as bytes) into `out` (any view, written as bytes).
 */
export function dequantize4bitRaw(
  packed: ArrayBufferView,
  n: number,
  absmax: Float32Array,
  blocksize: number,
  quantType: QuantType,
  dtype: FloatDType,
  out: ArrayBufferView = freshArray(dtype, n), // typed: a Uint8Array view cannot pass 2^32 bytes
): ArrayBufferView {
  const size = dtype === 'float32' ? 4 : 2;
  const { m, threads } = kernelsFor(n, packed, out, absmax);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    slot: [Math.ceil(chunk / 2), Math.ceil(chunk / blocksize) * 4, chunk * size],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = m.place(p[0]!, byteView(packed, start / 2, Math.ceil(len / 2)));
      p[1] = m.place(p[1]!, absmaxSpan(absmax, start, len, blocksize));
      p[2] = m.target(p[2]!, out, start * size, len * size);
    },
    calls: (j, [pIn, pAbs, pOut]) => [['dequantize4bit', pIn!, span(j)[1], blocksize, QTYPE_ID[quantType], pAbs!, DTYPE_ID[dtype], pOut!]],
    store(j, [, , pOut]) {
      const [start, len] = span(j);
      m.read(pOut!, out, start * size, len * size);
    },
  });
  return out;
}

/** [rows, cols] elements of 2 or 4 bytes -> [cols, rows]. */
function transpose2d(data: ArrayBufferView, rows: number, cols: number, size: number, out: ArrayBufferView): void {
  const T = size === 4 ? Uint32Array : Uint16Array;
  const src = new T(data.buffer as ArrayBuffer, data.byteOffset, rows * cols);
  const dst = new T(out.buffer as ArrayBuffer, out.byteOffset, rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c]!;
  }
}

/** The WebAssembly kernel of dequantize4bit. */
export function dequantize4bitWasm(c: Checked<typeof dequantize4bitOp>): Tensor {
  const { A: packed, n, shape, quantType, blocksize, dtype, absmax, transposed, outShape, out } = c;
  const result = out ?? freshTensor(dtype, outShape);
  if (!transposed) {
    dequantize4bitRaw(packed.data, n, absmaxF32(absmax), blocksize, quantType, dtype, result.data);
  } else {
    const rows = dequantize4bitRaw(packed.data, n, absmaxF32(absmax), blocksize, quantType, dtype);
    transpose2d(rows, shape[0]!, shape[1]!, dtype === 'float32' ? 4 : 2, result.data);
  }
  return result; // out's checked snapshot where given: the op returns the caller's object
}
