// The CUDA kernels of the 4-bit and blockwise ops, on device tensors: inputs and
// outputs stay in device memory. Each starts with the op's shared argument checks
// (src/ops), as the WebAssembly kernel does; the kernels give the same bits.
import { FloatDType, itemsize } from '../../dtypes.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, numel, tensor } from '../../tensor.js';
import { defaultDynamicMap, get4bitType } from '../../maps.js';
import { meanF32 } from '../../ops/stats.js';
import {
  CheckedAbsmax, DequantizeBlockwiseOptions, QuantizeBlockwiseOptions, checkDequantizeBlockwise, checkQuantizeBlockwise,
} from '../../ops/blockwise.js';
import { NESTED_BLOCKSIZE_4BIT, Quantize4bitOptions, checkQuantize4bit, packedShape } from '../../ops/quantize4bit.js';
import { Dequantize4bitOptions, checkDequantize4bit } from '../../ops/dequantize4bit.js';
import { DTYPE_ID, QTYPE_ID } from '../abi.js';
import { CudaAddon, cudaCall } from './addon.js';
import { checkFinite, cudaFor, dev, withTemps } from './util.js';
import { DeviceTensor, deviceEmpty, toDevice } from './tensor.js';

const DT = DTYPE_ID;
const QT = QTYPE_ID;

/** A 256-entry code on the device (a temporary). */
function codeOn(code: Float32Array, device: string, temp: (t: DeviceTensor) => DeviceTensor): DeviceTensor {
  return temp(toDevice(tensor(code.slice(), [256]), device) as DeviceTensor);
}

/** Nested statistics on the device; the offset is the exact mean, computed on the host from the (small) absmax. */
function compress(cuda: CudaAddon, absmax: DeviceTensor, blocksize: number, temp: (t: DeviceTensor) => DeviceTensor) {
  const nb = numel(absmax.shape);
  const offset = meanF32(absmax.to('cpu').data as Float32Array);
  const centered = temp(deviceEmpty('float32', [nb], absmax.device));
  cudaCall(() => cuda.subtractScalarF32(absmax.ptr, nb, offset, centered.ptr));
  const code = defaultDynamicMap();
  const codeDev = codeOn(code, absmax.device, temp);
  const q = deviceEmpty('uint8', [nb], absmax.device);
  const absmax2 = deviceEmpty('float32', [Math.ceil(nb / blocksize)], absmax.device);
  cudaCall(() => cuda.quantizeBlockwise(centered.ptr, nb, DT.float32, blocksize, codeDev.ptr, q.ptr, absmax2.ptr));
  const state2 = new QuantState({ absmax: absmax2, code: tensor(code.slice(), [256]), blocksize, dtype: 'float32' });
  return { absmax: q as Tensor, offset, state2 };
}

/** f32 absmax of checked statistics on the device, de-nested if needed (then a temporary). */
export function deviceAbsmax(cuda: CudaAddon, { absmax, nested }: CheckedAbsmax, device: string, temp: (t: DeviceTensor) => DeviceTensor): DeviceTensor {
  const a = dev('state.absmax', absmax);
  if (nested === null) return a;
  const nb = numel(a.shape);
  const code2 = codeOn(nested.code, device, temp);
  const a2 = dev('state.state2.absmax', nested.absmax);
  const out = temp(deviceEmpty('float32', [nb], device));
  cudaCall(() => cuda.dequantizeBlockwise(a.ptr, nb, nested.blocksize, code2.ptr, a2.ptr, DT.float32, out.ptr));
  cudaCall(() => cuda.addScalarF32(out.ptr, nb, nested.offset));
  return out;
}

/** The checked `out` (a CUDA tensor), or new device memory. */
export function output(out: Tensor | undefined, dtype: FloatDType, shape: number[], device: string): DeviceTensor {
  return out === undefined ? deviceEmpty(dtype, shape, device) : dev('out', out);
}

export function quantize4bit(A: Tensor, opts: Quantize4bitOptions = {}): [Tensor, QuantState] {
  const { n, blocksize, compressStatistics, quantType, quantStorage, allowNonFinite } = checkQuantize4bit(A, opts);
  const a = dev('A', A);
  const cuda = cudaFor(a.device);
  checkFinite(cuda, a, allowNonFinite);
  return withTemps((temp) => {
    const packed = deviceEmpty(quantStorage, packedShape(n, quantStorage), a.device);
    const absmax = deviceEmpty('float32', [Math.ceil(n / blocksize)], a.device);
    cudaCall(() => cuda.quantize4bit(a.ptr, n, DT[a.dtype as FloatDType], blocksize, QT[quantType], packed.ptr, absmax.ptr));
    const common = { shape: [...a.shape], code: get4bitType(quantType), blocksize, quantType, dtype: a.dtype };
    if (!compressStatistics) return [packed, new QuantState({ ...common, absmax })];
    const nested = compress(cuda, temp(absmax), NESTED_BLOCKSIZE_4BIT, temp);
    return [packed, new QuantState({ ...common, ...nested })];
  });
}

export function dequantize4bit(A: Tensor, stateOrOptions: QuantState | Dequantize4bitOptions, opts: { out?: Tensor } = {}): Tensor {
  const { n, shape, quantType, blocksize, dtype, absmax, transposed, outShape, out } = checkDequantize4bit(A, stateOrOptions, opts);
  const packed = dev('A', A);
  const cuda = cudaFor(packed.device);
  return withTemps((temp) => {
    const fused = (cuda as Partial<CudaAddon>).dequantize4bitNested; // an addon built before it has none
    const nested = absmax.nested;
    if (!transposed && nested !== null && typeof fused === 'function') {
      // one kernel de-nests the absmax and dequantizes (the same bits as the two-step path)
      const q = dev('state.absmax', absmax.absmax), a2 = dev('state.state2.absmax', nested.absmax);
      const code2 = codeOn(nested.code, packed.device, temp);
      const result = output(out, dtype, shape, packed.device);
      cudaCall(() => fused.call(cuda, packed.ptr, n, blocksize, QT[quantType], q.ptr, code2.ptr, a2.ptr, nested.blocksize, nested.offset, DT[dtype], result.ptr));
      return result;
    }
    const a = deviceAbsmax(cuda, absmax, packed.device, temp);
    if (!transposed) {
      const result = output(out, dtype, shape, packed.device);
      cudaCall(() => cuda.dequantize4bit(packed.ptr, n, blocksize, QT[quantType], a.ptr, DT[dtype], result.ptr));
      return result;
    }
    // bnb's compatibility shim for a packed [1, n] argument: the transposed result (through the host)
    const rows = temp(deviceEmpty(dtype, shape, packed.device));
    cudaCall(() => cuda.dequantize4bit(packed.ptr, n, blocksize, QT[quantType], a.ptr, DT[dtype], rows.ptr));
    const h = rows.to('cpu'), [r, c] = shape as [number, number], size = itemsize(dtype);
    const src = new Uint8Array(h.data.buffer), dst = new Uint8Array(src.length);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst.set(src.subarray((i * c + j) * size, (i * c + j + 1) * size), (j * r + i) * size);
    const result = output(out, dtype, outShape, packed.device);
    cudaCall(() => cuda.copyHtoD(result.ptr, dst));
    return result;
  });
}

export function quantizeBlockwise(A: Tensor, opts: QuantizeBlockwiseOptions = {}): [Tensor, QuantState] {
  const { n, blocksize, nested, allowNonFinite, code } = checkQuantizeBlockwise(A, opts);
  const a = dev('A', A);
  const cuda = cudaFor(a.device);
  checkFinite(cuda, a, allowNonFinite);
  return withTemps((temp) => {
    const codeDev = codeOn(code, a.device, temp);
    const q = deviceEmpty('uint8', [...a.shape], a.device);
    const absmax = deviceEmpty('float32', [Math.ceil(n / blocksize)], a.device);
    cudaCall(() => cuda.quantizeBlockwise(a.ptr, n, DT[a.dtype as FloatDType], blocksize, codeDev.ptr, q.ptr, absmax.ptr));
    const codeT = tensor(code.slice(), [256]);
    if (!nested) return [q, new QuantState({ absmax, code: codeT, blocksize, dtype: a.dtype })];
    return [q, new QuantState({ ...compress(cuda, temp(absmax), blocksize, temp), code: codeT, blocksize, dtype: a.dtype })];
  });
}

export function dequantizeBlockwise(q: Tensor, stateOrOptions: QuantState | DequantizeBlockwiseOptions, opts: { out?: Tensor } = {}): Tensor {
  const { n, blocksize, dtype, code, absmax, out } = checkDequantizeBlockwise(q, stateOrOptions, opts);
  const t = dev('A', q);
  const cuda = cudaFor(t.device);
  return withTemps((temp) => {
    const a = deviceAbsmax(cuda, absmax, t.device, temp);
    const codeDev = codeOn(code, t.device, temp);
    const result = output(out, dtype, t.shape, t.device);
    cudaCall(() => cuda.dequantizeBlockwise(t.ptr, n, blocksize, codeDev.ptr, a.ptr, DT[dtype], result.ptr));
    return result;
  });
}
