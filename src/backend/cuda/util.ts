// Helpers shared by the CUDA op implementations.
import { BnbError, fail } from '../../errors.js';
import { FloatDType, itemsize } from '../../dtypes.js';
import { isTensor, numel, tensor, toFloat32 } from '../../tensor.js';
import { nonFiniteAt } from '../../ops/validate.js';
import { DTYPE_ID } from '../abi.js';
import { CudaAddon, cudaCall, requireCuda } from './addon.js';
import { DeviceTensor, deviceIndex, isDeviceTensor } from './tensor.js';

/** The addon, with the device of `device` made current. */
export function cudaFor(device: string): CudaAddon {
  const cuda = requireCuda();
  cuda.setDevice(deviceIndex(device));
  return cuda;
}

/** A live CUDA tensor argument (of one of `dtypes`, when given). */
export function dev(argument: string, t: unknown, dtypes?: readonly string[]): DeviceTensor {
  if (!isDeviceTensor(t)) {
    if (!isTensor(t)) fail('E_ARGUMENT', argument, t, 'a Tensor (see tensor())');
    fail('E_DEVICE', argument, t, 'a CUDA tensor');
  }
  if (t.disposed) throw new BnbError('E_DEVICE', `${argument} has been disposed`);
  if (dtypes && !dtypes.includes(t.dtype)) fail('E_DTYPE', `${argument}.dtype`, t.dtype, dtypes.map((d) => `'${d}'`).join(', '));
  return t;
}

/** Temporary device buffers freed when the op ends, whatever happens. */
export function withTemps<T>(f: (temp: (t: DeviceTensor) => DeviceTensor) => T): T {
  const temps: DeviceTensor[] = [];
  try {
    return f((t) => (temps.push(t), t));
  } finally {
    for (const t of temps) t.dispose();
  }
}

/** The default NaN/Inf policy on a float input A on the device: the WebAssembly kernels' error, first bad value and index. */
export function checkFinite(cuda: CudaAddon, A: DeviceTensor, allowNonFinite: boolean): void {
  if (allowNonFinite) return;
  const dtype = A.dtype as FloatDType;
  const i = cudaCall(() => cuda.firstNonFinite(A.ptr, numel(A.shape), DTYPE_ID[dtype]));
  if (i < 0) return;
  const one = new Uint8Array(itemsize(dtype));
  cudaCall(() => cuda.copyDtoH(one, A.ptr + i * one.length));
  const value = toFloat32(tensor(dtype === 'float32' ? new Float32Array(one.buffer) : new Uint16Array(one.buffer), [1], dtype))[0]!;
  throw nonFiniteAt('A', value, i);
}
