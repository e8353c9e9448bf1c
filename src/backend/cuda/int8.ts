// The CUDA kernels of the LLM.int8 ops on device tensors.
import { Tensor } from '../../tensor.js';
import {
  Int8MmDequantOptions, Int8QuantOptions, checkInt8LinearMatmul, checkInt8MmDequant, checkInt8Quant, checkInt8VectorwiseDequant,
} from '../../ops/int8.js';
import { int8VectorwiseQuantWasm } from '../wasm/int8.js';
import { DTYPE_ID } from '../abi.js';
import { cudaCall } from './addon.js';
import { checkFinite, cudaFor, dev } from './util.js';
import { deviceEmpty, toDevice } from './tensor.js';

const DT = DTYPE_ID;

export function int8VectorwiseQuant(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor | null] {
  const { threshold, allowNonFinite, rows, cols } = checkInt8Quant(A, opts);
  const a = dev('A', A);
  if (threshold > 0) {
    // Outlier columns (and zeroing them) are computed on the host for now.
    const [CB, s, oc] = int8VectorwiseQuantWasm(a.to('cpu'), opts);
    return [toDevice(CB, a.device), toDevice(s, a.device), oc];
  }
  const cuda = cudaFor(a.device);
  checkFinite(cuda, a, allowNonFinite);
  const cb = deviceEmpty('int8', [...a.shape], a.device), s = deviceEmpty('float32', [rows], a.device);
  cudaCall(() => cuda.int8VectorwiseQuant(a.ptr, rows, cols, 0, cb.ptr, s.ptr));
  return [cb, s, null];
}

export function int8DoubleQuant(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor, Tensor, Tensor | null] {
  const [CA, rowStats, outliers] = int8VectorwiseQuant(A, opts);
  const { threshold, rows, cols } = checkInt8Quant(A, opts);
  const a = dev('A', A);
  const cuda = cudaFor(a.device);
  const cat = deviceEmpty('int8', [...a.shape], a.device), colStats = deviceEmpty('float32', [cols], a.device);
  cudaCall(() => cuda.int8ColumnQuant(a.ptr, rows, cols, threshold, cat.ptr, colStats.ptr));
  return [CA, cat, rowStats, colStats, outliers];
}

export function int8VectorwiseDequant(A: Tensor, statsT: Tensor): Tensor {
  const { rows, cols } = checkInt8VectorwiseDequant(A, statsT);
  const a = dev('A', A), s = dev('stats', statsT);
  const cuda = cudaFor(a.device);
  const out = deviceEmpty('float32', [...a.shape], a.device);
  cudaCall(() => cuda.int8VectorwiseDequant(a.ptr, rows, cols, s.ptr, out.ptr));
  return out;
}

export function int8LinearMatmul(A: Tensor, B: Tensor): Tensor {
  const { M, K, N } = checkInt8LinearMatmul(A, B);
  const a = dev('A', A), b = dev('B', B);
  const cuda = cudaFor(a.device);
  const out = deviceEmpty('int32', [...a.shape.slice(0, -1), N], a.device);
  cudaCall(() => cuda.int8LinearMatmul(a.ptr, M, K, b.ptr, N, out.ptr));
  return out;
}

export function int8MmDequant(A: Tensor, rowStats: Tensor, colStats: Tensor, opts: Int8MmDequantOptions = {}): Tensor {
  const { rows, cols, dtype, bias, biasKind } = checkInt8MmDequant(A, rowStats, colStats, opts);
  const a = dev('A', A), rs = dev('rowStats', rowStats), cs = dev('colStats', colStats);
  const b = bias ? dev('bias', bias) : null;
  const cuda = cudaFor(a.device);
  const out = deviceEmpty(dtype, [...a.shape], a.device);
  cudaCall(() => cuda.int8MmDequant(a.ptr, rows, cols, rs.ptr, cs.ptr, b?.ptr ?? 0, biasKind, DT[dtype], out.ptr));
  return out;
}
