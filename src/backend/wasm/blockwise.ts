// The WebAssembly kernels of the 8-bit blockwise ops, and the nested statistics
// (double quantization of absmax) that the 4-bit kernels share.
import { FloatDType } from '../../dtypes.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, tensor } from '../../tensor.js';
import { defaultDynamicMap } from '../../maps.js';
import { meanF32 } from '../../stats.js';
import { DTYPE_ID } from '../abi.js';
import { Checked } from '../../ops/registry.js';
import { dequantizeBlockwiseOp, quantizeBlockwiseOp } from '../../ops/blockwise.js';
import { CheckedAbsmax } from '../../ops/state.js';
import { freshArray, freshTensor } from './fresh.js';
import { FiniteCheck } from './finite.js';
import { absmaxSpan, checkFinite, chunkElements, finiteCall, loadFloatChunk } from './chunk.js';
import { kernelsFor, runChunks } from './threads/parallel.js';

/** The kernel: (q, absmax) of n elements of `dtype` (src: any view of them). */
export function quantizeBlockwiseRaw(
  src: ArrayBufferView,
  n: number,
  dtype: FloatDType,
  code: Float32Array,
  blocksize: number,
  finite: FiniteCheck | null = null,
): { q: Uint8Array; absmax: Float32Array } {
  const size = dtype === 'float32' ? 4 : 2;
  const nb = Math.ceil(n / blocksize);
  const q = freshArray('uint8', n) as Uint8Array;
  const absmax = freshArray('float32', nb) as Float32Array;
  const { m, threads } = kernelsFor(n, src);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  m.useCode(code);
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    slot: [chunk * size, chunk, Math.ceil(chunk / blocksize) * 4],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = loadFloatChunk(m, p[0]!, src, start, len, dtype);
    },
    calls(j, [pIn, pQ, pAbs]) {
      const len = span(j)[1];
      return [
        ...finiteCall(pIn!, len, dtype, finite),
        ['quantizeBlockwise', pIn!, len, DTYPE_ID[dtype], blocksize, m.codePtr, m.lutPtr, pQ!, pAbs!],
      ];
    },
    store(j, [, pQ, pAbs], results) {
      const [start, len] = span(j);
      checkFinite(finite, results, start);
      m.read(pQ!, q, start, len);
      absmaxSpan(absmax, start, len, blocksize).set(m.bytes(pAbs!, Math.ceil(len / blocksize) * 4));
    },
  });
  return { q, absmax };
}

/** out = f32(code[q] * absmax[block]) for n elements, to `dtype`, as raw bytes. */
export function dequantizeBlockwiseRaw(
  q: Uint8Array,
  n: number,
  absmax: Float32Array,
  code: Float32Array,
  blocksize: number,
  dtype: FloatDType,
  out: ArrayBufferView = freshArray(dtype, n), // typed: a Uint8Array view cannot pass 2^32 bytes
): ArrayBufferView {
  const size = dtype === 'float32' ? 4 : 2;
  const { m, threads } = kernelsFor(n, q, out, absmax);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    shared: [1024],
    prepare: ([pCode]) => m.write(pCode!, new Uint8Array(code.buffer, code.byteOffset, 1024)),
    slot: [chunk, Math.ceil(chunk / blocksize) * 4, chunk * size],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = m.place(p[0]!, q.subarray(start, start + len));
      p[1] = m.place(p[1]!, absmaxSpan(absmax, start, len, blocksize));
      p[2] = m.target(p[2]!, out, start * size, len * size);
    },
    calls: (j, [pQ, pAbs, pOut], [pCode]) => [['dequantizeBlockwise', pQ!, span(j)[1], blocksize, pCode!, pAbs!, DTYPE_ID[dtype], pOut!]],
    store(j, [, , pOut]) {
      const [start, len] = span(j);
      m.read(pOut!, out, start * size, len * size);
    },
  });
  return out;
}

/**
 * Double quantization of absmax (bnb's nested statistics): subtract the mean,
 * then quantize blockwise with the default dynamic map. 4-bit uses blocksize
 * 256, 8-bit its own blocksize. `offset` replaces the computed mean (to replay
 * a stored state).
 */
export function compressAbsmax(
  absmax: Float32Array,
  blocksize: number,
  offset = meanF32(absmax),
): { absmax: Tensor; offset: number; state2: QuantState } {
  const centered = absmax.map((a) => Math.fround(a - offset));
  const code = defaultDynamicMap();
  const r = quantizeBlockwiseRaw(centered, centered.length, 'float32', code, blocksize);
  const state2 = new QuantState({
    absmax: tensor(r.absmax, [r.absmax.length], 'float32'),
    code: tensor(code.slice(), [256], 'float32'),
    blocksize,
    dtype: 'float32',
  });
  return { absmax: tensor(r.q, [r.q.length], 'uint8'), offset, state2 };
}

/** f32 absmax of checked host statistics, de-nested if needed: code2[q] * absmax2 + offset (two roundings). */
export function absmaxF32({ absmax, nested }: CheckedAbsmax): Float32Array {
  if (nested === null) return absmax.data as Float32Array;
  const nblocks = absmax.data.length;
  const bytes = dequantizeBlockwiseRaw(
    absmax.data as Uint8Array,
    nblocks,
    nested.absmax.data as Float32Array,
    nested.code,
    nested.blocksize,
    'float32',
  );
  const out = new Float32Array(bytes.buffer, bytes.byteOffset, nblocks);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! + nested.offset);
  return out;
}

/** The WebAssembly kernel of quantizeBlockwise. */
export function quantizeBlockwiseWasm(c: Checked<typeof quantizeBlockwiseOp>): [Tensor, QuantState] {
  const { A: a, n, blocksize, nested, allowNonFinite, code } = c;
  const r = quantizeBlockwiseRaw(a.data, n, a.dtype, code, blocksize, allowNonFinite ? null : { argument: 'A', tensor: a });
  const absmax = tensor(r.absmax, [r.absmax.length], 'float32');
  const codeT = tensor(code.slice(), [256], 'float32');
  const state = nested
    ? new QuantState({ ...compressAbsmax(r.absmax, blocksize), code: codeT, blocksize, dtype: a.dtype })
    : new QuantState({ absmax, code: codeT, blocksize, dtype: a.dtype });
  return [tensor(r.q, [...a.shape], 'uint8'), state];
}

/** The WebAssembly kernel of dequantizeBlockwise. */
export function dequantizeBlockwiseWasm(c: Checked<typeof dequantizeBlockwiseOp>): Tensor {
  const { A: t, n, blocksize, dtype, code, absmax, out } = c;
  const result = out ?? freshTensor(dtype, t.shape);
  dequantizeBlockwiseRaw(t.data as Uint8Array, n, absmaxF32(absmax), code, blocksize, dtype, result.data);
  return result; // out's checked snapshot where given: the op returns the caller's object
}
