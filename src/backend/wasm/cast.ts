// Float casts for checkpoint conversion: the castFloat kernel, chunked and threaded,
// with a per-element reference (the same bits) for other dtypes and device tensors.
import { FLOAT_DTYPES, FloatDType, itemsize } from '../../dtypes.js';
import { numberToBf16, numberToF16 } from '../../float16.js';
import { fail } from '../../errors.js';
import { Tensor, checkTensor, isTensor, numel, tensor, toFloat32 } from '../../tensor.js';
import { DTYPE_ID } from '../abi.js';
import { checkFloatDType, onHost } from '../../ops/validate.js';
import { freshTensor } from './fresh.js';
import { chunkElements, loadFloatChunk } from './chunk.js';
import { kernelsFor, runChunks } from './threads/parallel.js';

/**
 * A tensor converted to a float dtype: 16-bit outputs round to nearest even with
 * every NaN -> 0x7fff; float32 outputs hold the exact values (a NaN as a JavaScript
 * number stores it: float16's as 0x7fc00000, bfloat16's quieted). Float tensors on
 * the host go through the WebAssembly castFloat kernel (chunked, threaded); other
 * dtypes and device tensors through the per-element reference, with the same bits.
 */
export function castFloat(t: Tensor, dtype: FloatDType): Tensor {
  if (!isTensor(t)) fail('E_ARGUMENT', 't', t, 'a Tensor (see tensor())');
  checkFloatDType('dtype', dtype, 'castFloat');
  if (!onHost(t)) return t.dtype === dtype ? t : castFloatReference(t, dtype);
  const x = checkTensor('t', t);
  if (x.dtype === dtype) return t;
  if (!(FLOAT_DTYPES as readonly string[]).includes(x.dtype)) return castFloatReference(x, dtype);
  return castFloatWasm(x, x.dtype as FloatDType, dtype);
}

/** The per-element reference: the value as a JavaScript number, then numberToF16 / numberToBf16. */
export function castFloatReference(t: Tensor, dtype: FloatDType): Tensor {
  const x = toFloat32(t);
  if (dtype === 'float32') return tensor(x, [...t.shape], 'float32');
  return tensor(Uint16Array.from(x, dtype === 'float16' ? numberToF16 : numberToBf16), [...t.shape], dtype);
}

function castFloatWasm(t: Tensor, from: FloatDType, to: FloatDType): Tensor {
  const n = numel(t.shape);
  const out = freshTensor(to, t.shape);
  if (n === 0) return out;
  const inSize = itemsize(from),
    outSize = itemsize(to);
  const { m, threads } = kernelsFor(n, t.data);
  const chunk = chunkElements(8, threads, n); // whole SIMD steps in every chunk but the last
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    slot: [chunk * inSize, chunk * outSize],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = loadFloatChunk(m, p[0]!, t.data, start, len, from);
    },
    calls: (j, [pIn, pOut]) => [['castFloat', pIn!, span(j)[1], DTYPE_ID[from], pOut!, DTYPE_ID[to]]],
    store(j, [, pOut]) {
      const [start, len] = span(j);
      m.read(pOut!, out.data, start * outSize, len * outSize);
    },
  });
  return out;
}
