// Tensors in CUDA device memory: no host data until copied back (toDevice(t, 'cpu')).
import { BnbError, show } from '../../errors.js';
import { DType, TypedArray, allocate, itemsize } from '../../dtypes.js';
import { Tensor, numel, registerDeviceMover, tensor } from '../../tensor.js';
import { canonicalDevice } from '../../devices.js';
import { cudaCall, requireCuda } from './addon.js';

// Frees device memory of tensors that were never disposed.
const finalizer = new FinalizationRegistry<{ ptr: number; index: number }>(({ ptr, index }) => {
  try {
    const cuda = requireCuda();
    cuda.setDevice(index);
    cuda.free(ptr);
  } catch {
    // the addon is gone (process exiting): nothing to free
  }
});

export function deviceIndex(device: string): number {
  return Number(canonicalDevice(device).split(':')[1]);
}

export class DeviceTensor implements Tensor {
  private freed = false;
  constructor(
    readonly dtype: DType,
    readonly shape: number[],
    readonly device: string,
    readonly ptr: number,
    readonly byteLength: number,
  ) {
    finalizer.register(this, { ptr, index: deviceIndex(device) }, this);
  }

  /** Device tensors hold no host data: copy them with `to('cpu')`. */
  get data(): TypedArray {
    throw new BnbError(
      'E_DEVICE',
      `this ${this.dtype} tensor ${show(this.shape)} is on ${this.device}: copy it to the host with toDevice(t, 'cpu') or t.to('cpu')`,
    );
  }

  to(device: string): Tensor {
    return toDevice(this, device);
  }

  /** Frees the device memory now (also done by a finalizer when the tensor is collected). */
  dispose(): void {
    if (this.freed) return;
    this.freed = true;
    finalizer.unregister(this);
    const cuda = requireCuda();
    cuda.setDevice(deviceIndex(this.device));
    cudaCall(() => cuda.free(this.ptr));
  }

  get disposed(): boolean {
    return this.freed;
  }
}

export function isDeviceTensor(t: unknown): t is DeviceTensor {
  return t instanceof DeviceTensor;
}

/** New uninitialised device memory for a tensor. */
export function deviceEmpty(dtype: DType, shape: number[], device: string): DeviceTensor {
  const cuda = requireCuda();
  const dev = canonicalDevice(device);
  cuda.setDevice(deviceIndex(dev));
  const bytes = numel(shape) * itemsize(dtype);
  const ptr = cudaCall(() => cuda.malloc(Math.max(bytes, 1)));
  return new DeviceTensor(dtype, [...shape], dev, ptr, bytes);
}

function upload(t: Tensor, device: string): DeviceTensor {
  const out = deviceEmpty(t.dtype, t.shape, device);
  if (out.byteLength) cudaCall(() => requireCuda().copyHtoD(out.ptr, t.data));
  return out;
}

function download(t: DeviceTensor): Tensor {
  if (t.disposed) throw new BnbError('E_DEVICE', `a disposed ${t.device} tensor cannot be read`);
  const data = allocate(t.dtype, numel(t.shape));
  const cuda = requireCuda();
  cuda.setDevice(deviceIndex(t.device));
  if (t.byteLength) cudaCall(() => cuda.copyDtoH(data, t.ptr));
  return tensor(data, [...t.shape], t.dtype);
}

/** The tensor on `device` ('cpu', 'cuda', 'cuda:N'): a copy unless it is there already. */
export function toDevice(t: Tensor, device: string): Tensor {
  const dev = canonicalDevice(device);
  const from = canonicalDevice(t.device ?? 'cpu');
  if (dev === from) return t;
  if (from === 'cpu') return upload(t, dev);
  const host = download(t as DeviceTensor);
  return dev === 'cpu' ? host : upload(host, dev);
}

registerDeviceMover('cuda', toDevice);
