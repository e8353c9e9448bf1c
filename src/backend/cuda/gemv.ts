// The CUDA kernel of gemv4bit (and matmul4bit) on device tensors.
import { Tensor, tensor, toFloat32 } from '../../tensor.js';
import { Checked } from '../../ops/registry.js';
import { gemv4bitOp } from '../../ops/gemv4bit.js';
import { onHost } from '../../ops/validate.js';
import { DTYPE_ID, QTYPE_ID } from '../abi.js';
import { cudaCall } from './addon.js';
import { cudaFor, dev, withTemps } from './util.js';
import { DeviceTensor, deviceEmpty, toDevice } from './tensor.js';
import { deviceAbsmax } from './blockwise.js';

const DT = DTYPE_ID;

/**
 * accuracy 'int8' (the op's checked option; 'exact' or absent: the default order) runs the
 * int8-activation kernel, which takes the same arguments (docs/bit-exactness.md, "4-bit GEMV").
 */
export function gemv4bit(c: Checked<typeof gemv4bitOp>): Tensor {
  const { M, N, K, quantType, blocksize, dtype, bias, absmax, outShape } = c;
  const { accuracy } = c as typeof c & { accuracy?: 'exact' | 'int8' };
  const a = dev('A', c.A),
    b = dev('B', c.B);
  if (M === 0 || N === 0) return deviceEmpty(dtype, outShape, a.device);
  const cuda = cudaFor(a.device);
  return withTemps((temp) => {
    const am = deviceAbsmax(cuda, absmax, a.device, temp);
    // the kernels add an f32 bias (the WebAssembly kernel's toFloat32 of it)
    const f32 = bias && temp(toDevice(tensor(toFloat32(onHost(bias) ? bias : toDevice(bias, 'cpu')), [N]), a.device) as DeviceTensor);
    const out = deviceEmpty(dtype, outShape, a.device);
    const kernel = accuracy === 'int8' ? cuda.gemv4bitInt8 : cuda.gemv4bit;
    cudaCall(() =>
      kernel.call(cuda, a.ptr, M, K, DT[dtype], b.ptr, N, am.ptr, blocksize, QTYPE_ID[quantType], f32 ? f32.ptr : 0, DT[dtype], out.ptr),
    );
    return out;
  });
}
