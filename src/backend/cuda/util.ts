// Helpers shared by the CUDA op implementations.
import { BnbError, fail } from '../../errors.js';
import { isTensor } from '../../tensor.js';
import { CudaAddon, requireCuda } from './addon.js';
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
