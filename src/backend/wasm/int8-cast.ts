// LLM.int8 weights to and from a float checkpoint, as bitsandbytes' Int8Params does:
// int8_vectorwise_quant(W.to(float16)) and int8_vectorwise_dequant(CB, SCB).to(dtype).
// On the WebAssembly kernels the cast runs in wasm memory, chunk by chunk, next to the
// int8 kernel: no float16 or float32 copy of the whole tensor on the host. Other
// backends (and a replaced cpu kernel) get the two ops one after the other.
import { kernelBackend } from '../../ops/index.js';
import { FLOAT_DTYPES, FloatDType } from '../../dtypes.js';
import { Tensor, checkTensor, isTensor, tensor } from '../../tensor.js';
import { checkInt8VectorwiseDequant, int8VectorwiseDequant, int8VectorwiseQuant } from '../../ops/int8.js';
import { checkFloatDType, onHost } from '../../ops/validate.js';
import { castFloat } from './cast.js';
import { int8DequantRows, int8QuantRows } from './int8.js';

/**
 * int8VectorwiseQuant(castFloat(W, 'float16')) (threshold 0, finite input): the
 * same [CB, SCB, null] and the same errors, W of any float dtype.
 */
export function int8VectorwiseQuantCast(W: Tensor): [Tensor, Tensor, Tensor | null] {
  const host = isTensor(W) && onHost(W);
  const A = host ? checkTensor('t', W) : null; // castFloat's argument name, as in the two-op path
  const fused =
    A !== null &&
    A.dtype !== 'float16' &&
    (FLOAT_DTYPES as readonly string[]).includes(A.dtype) &&
    kernelBackend('int8VectorwiseQuant', { A }) === 'wasm';
  if (!fused) return int8VectorwiseQuant(castFloat(A ?? W, 'float16'));
  const from = A.dtype as FloatDType;
  const { q, stats } = int8QuantRows(A, 0, { argument: 'A', tensor: A, as: 'float16' }, from);
  return [tensor(q, [...A.shape], 'int8'), tensor(stats, [stats.length], 'float32'), null];
}

/** castFloat(int8VectorwiseDequant(CB, SCB), dtype): the same bytes and errors. */
export function int8VectorwiseDequantCast(CB: Tensor, SCB: Tensor, dtype: FloatDType): Tensor {
  if (dtype === 'float32' || kernelBackend('int8VectorwiseDequant', { A: CB, stats: SCB }) !== 'wasm') {
    return castFloat(int8VectorwiseDequant(CB, SCB), dtype);
  }
  const { A, stats } = checkInt8VectorwiseDequant(CB, SCB); // what the op would check, then the fused kernels
  return int8DequantRows(A, stats, checkFloatDType('dtype', dtype, 'castFloat'));
}
