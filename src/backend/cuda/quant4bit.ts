// The CUDA kernels of quantize4bit and dequantize4bit on device tensors: inputs and
// outputs stay in device memory; the kernels give the WebAssembly kernels' bits.
import { FloatDType, itemsize } from '../../dtypes.js';
import { QuantState } from '../../quant-state.js';
import { Tensor } from '../../tensor.js';
import { get4bitType } from '../../maps.js';
import { Checked } from '../../ops/registry.js';
import { NESTED_BLOCKSIZE_4BIT, packedShape, quantize4bitOp } from '../../ops/quantize4bit.js';
import { dequantize4bitOp } from '../../ops/dequantize4bit.js';
import { DTYPE_ID, QTYPE_ID } from '../abi.js';
import { CudaAddon, cudaCall } from './addon.js';
import { checkFinite, cudaFor, dev, withTemps } from './util.js';
import { deviceEmpty } from './tensor.js';
import { codeOn, compress, deviceAbsmax, output } from './blockwise.js';

const DT = DTYPE_ID;
const QT = QTYPE_ID;

export function quantize4bit(c: Checked<typeof quantize4bitOp>): [Tensor, QuantState] {
  const { n, blocksize, compressStatistics, quantType, quantStorage, allowNonFinite } = c;
  const a = dev('A', c.A);
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

export function dequantize4bit(c: Checked<typeof dequantize4bitOp>): Tensor {
  const { n, shape, quantType, blocksize, dtype, absmax, transposed, outShape, out } = c;
  const packed = dev('A', c.A);
  const cuda = cudaFor(packed.device);
  return withTemps((temp) => {
    const fused = (cuda as Partial<CudaAddon>).dequantize4bitNested; // an addon built before it has none
    const nested = absmax.nested;
    if (!transposed && nested !== null && typeof fused === 'function') {
      // one kernel de-nests the absmax and dequantizes (the same bits as the two-step path)
      const q = dev('state.absmax', absmax.absmax),
        a2 = dev('state.state2.absmax', nested.absmax);
      const code2 = codeOn(nested.code, packed.device, temp);
      const result = output(out, dtype, shape, packed.device);
      cudaCall(() =>
        fused.call(
          cuda,
          packed.ptr,
          n,
          blocksize,
          QT[quantType],
          q.ptr,
          code2.ptr,
          a2.ptr,
          nested.blocksize,
          nested.offset,
          DT[dtype],
          result.ptr,
        ),
      );
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
    const h = rows.to('cpu'),
      [r, c] = shape as [number, number],
      size = itemsize(dtype);
    const src = new Uint8Array(h.data.buffer),
      dst = new Uint8Array(src.length);
    for (let i = 0; i < r; i++)
      for (let j = 0; j < c; j++) dst.set(src.subarray((i * c + j) * size, (i * c + j + 1) * size), (j * r + i) * size);
    const result = output(out, dtype, outShape, packed.device);
    cudaCall(() => cuda.copyHtoD(result.ptr, dst));
    return result;
  });
}
