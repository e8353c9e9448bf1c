// The CUDA kernel of dequantizeFp8 on device tensors.
import { Tensor, tensor } from '../../tensor.js';
import { Checked } from '../../ops/registry.js';
import { dequantizeFp8Op } from '../../ops/fp8.js';
import { DTYPE_ID } from '../abi.js';
import { cudaCall } from './addon.js';
import { cudaFor, dev, withTemps } from './util.js';
import { DeviceTensor, toDevice } from './tensor.js';
import { output } from './blockwise.js';

const DT = DTYPE_ID;

export function dequantizeFp8(c: Checked<typeof dequantizeFp8Op>): Tensor {
  const { dtype, layout: L, scales, out } = c;
  const w = dev('W', c.W);
  const cuda = cudaFor(w.device);
  return withTemps((temp) => {
    const s = temp(toDevice(tensor(scales, [scales.length]), w.device) as DeviceTensor);
    const result = output(out, dtype, w.shape, w.device);
    cudaCall(() => cuda.dequantizeFp8(w.ptr, L.rows, L.cols, 0, s.ptr, L.scaleCols, L.blockRows, L.blockCols, DT[dtype], result.ptr));
    return result;
  });
}
