// The CUDA kernels of the LLM.int8 ops on device tensors.
import { Tensor } from '../../tensor.js';
import { Checked } from '../../ops/registry.js';
import { int8DoubleQuantOp, int8LinearMatmulOp, int8MmDequantOp, int8VectorwiseDequantOp, int8VectorwiseQuantOp } from '../../ops/int8.js';
import { int8VectorwiseQuantWasm } from '../wasm/int8.js';
import { DTYPE_ID } from '../abi.js';
import { cudaCall } from './addon.js';
import { checkFinite, cudaFor, dev } from './util.js';
import { deviceEmpty, toDevice } from './tensor.js';

const DT = DTYPE_ID;

export function int8VectorwiseQuant(c: Checked<typeof int8VectorwiseQuantOp>): [Tensor, Tensor, Tensor | null] {
  const { threshold, allowNonFinite, rows, cols } = c;
  const a = dev('A', c.A);
  if (threshold > 0) {
    // Outlier columns (and zeroing them) are computed on the host for now, by the WebAssembly kernel.
    const [CB, s, oc] = int8VectorwiseQuantWasm({ ...c, A: a.to('cpu') });
    return [toDevice(CB, a.device), toDevice(s, a.device), oc];
  }
  const cuda = cudaFor(a.device);
  checkFinite(cuda, a, allowNonFinite);
  const cb = deviceEmpty('int8', [...a.shape], a.device),
    s = deviceEmpty('float32', [rows], a.device);
  cudaCall(() => cuda.int8VectorwiseQuant(a.ptr, rows, cols, 0, cb.ptr, s.ptr));
  return [cb, s, null];
}

export function int8DoubleQuant(c: Checked<typeof int8DoubleQuantOp>): [Tensor, Tensor, Tensor, Tensor, Tensor | null] {
  const [CA, rowStats, outliers] = int8VectorwiseQuant(c);
  const { threshold, rows, cols } = c;
  const a = dev('A', c.A);
  const cuda = cudaFor(a.device);
  const cat = deviceEmpty('int8', [...a.shape], a.device),
    colStats = deviceEmpty('float32', [cols], a.device);
  cudaCall(() => cuda.int8ColumnQuant(a.ptr, rows, cols, threshold, cat.ptr, colStats.ptr));
  return [CA, cat, rowStats, colStats, outliers];
}

export function int8VectorwiseDequant(c: Checked<typeof int8VectorwiseDequantOp>): Tensor {
  const { rows, cols } = c;
  const a = dev('A', c.A),
    s = dev('stats', c.stats);
  const cuda = cudaFor(a.device);
  const out = deviceEmpty('float32', [...a.shape], a.device);
  cudaCall(() => cuda.int8VectorwiseDequant(a.ptr, rows, cols, s.ptr, out.ptr));
  return out;
}

export function int8LinearMatmul(c: Checked<typeof int8LinearMatmulOp>): Tensor {
  const { M, K, N } = c;
  const a = dev('A', c.A),
    b = dev('B', c.B);
  const cuda = cudaFor(a.device);
  const out = deviceEmpty('int32', [...a.shape.slice(0, -1), N], a.device);
  cudaCall(() => cuda.int8LinearMatmul(a.ptr, M, K, b.ptr, N, out.ptr));
  return out;
}

export function int8MmDequant(c: Checked<typeof int8MmDequantOp>): Tensor {
  const { rows, cols, dtype, bias, biasKind } = c;
  const a = dev('A', c.A),
    rs = dev('rowStats', c.rowStats),
    cs = dev('colStats', c.colStats);
  const b = bias ? dev('bias', bias) : null;
  const cuda = cudaFor(a.device);
  const out = deviceEmpty(dtype, [...a.shape], a.device);
  cudaCall(() => cuda.int8MmDequant(a.ptr, rows, cols, rs.ptr, cs.ptr, b?.ptr ?? 0, biasKind, DT[dtype], out.ptr));
  return out;
}
