// The CUDA kernels of the blockwise ops on device tensors, and the statistics helpers
// the 4-bit ops share (codes on the device, nested absmax in and out).
import { FloatDType } from '../../dtypes.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, numel, tensor } from '../../tensor.js';
import { defaultDynamicMap } from '../../maps.js';
import { meanF32 } from '../../stats.js';
import { Checked } from '../../ops/registry.js';
import { dequantizeBlockwiseOp, quantizeBlockwiseOp } from '../../ops/blockwise.js';
import { CheckedAbsmax } from '../../ops/state.js';
import { DTYPE_ID } from '../abi.js';
import { CudaAddon, cudaCall } from './addon.js';
import { checkFinite, cudaFor, dev, withTemps } from './util.js';
import { DeviceTensor, deviceEmpty, toDevice } from './tensor.js';

const DT = DTYPE_ID;

/** A 256-entry code on the device (a temporary). */
export function codeOn(code: Float32Array, device: string, temp: (t: DeviceTensor) => DeviceTensor): DeviceTensor {
  return temp(toDevice(tensor(code.slice(), [256]), device) as DeviceTensor);
}

/** Nested statistics on the device; the offset is the exact mean, computed on the host from the (small) absmax. */
export function compress(cuda: CudaAddon, absmax: DeviceTensor, blocksize: number, temp: (t: DeviceTensor) => DeviceTensor) {
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
export function deviceAbsmax(
  cuda: CudaAddon,
  { absmax, nested }: CheckedAbsmax,
  device: string,
  temp: (t: DeviceTensor) => DeviceTensor,
): DeviceTensor {
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

export function quantizeBlockwise(c: Checked<typeof quantizeBlockwiseOp>): [Tensor, QuantState] {
  const { n, blocksize, nested, allowNonFinite, code } = c;
  const a = dev('A', c.A);
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

export function dequantizeBlockwise(c: Checked<typeof dequantizeBlockwiseOp>): Tensor {
  const { n, blocksize, dtype, code, absmax, out } = c;
  const t = dev('A', c.A);
  const cuda = cudaFor(t.device);
  return withTemps((temp) => {
    const a = deviceAbsmax(cuda, absmax, t.device, temp);
    const codeDev = codeOn(code, t.device, temp);
    const result = output(out, dtype, t.shape, t.device);
    cudaCall(() => cuda.dequantizeBlockwise(t.ptr, n, blocksize, codeDev.ptr, a.ptr, DT[dtype], result.ptr));
    return result;
  });
}
