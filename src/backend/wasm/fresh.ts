// New outputs of the WebAssembly ops. A new array's pages are zero-filled by the
// operating system when first written, which for a large output costs more than the
// op (issue 17: a 117 MB result took 7x its `out` call, the calling thread faulting
// every page in while it copied the chunks out). Where the op runs on the worker
// pool, a large output is a SharedArrayBuffer whose pages every thread has first
// touched, each its share (threads/parallel.ts, prefaultedBuffer); elsewhere it is
// an ordinary array, as before.
import { DType, TypedArray, allocate, arrayTypeOf, itemsize } from '../../dtypes.js';
import { BnbError } from '../../errors.js';
import { Tensor, numel, tensor } from '../../tensor.js';
import { parallelThreshold } from './threads/config.js';
import { prefaultedBuffer } from './threads/parallel.js';

let sharedBytes = 1 << 23;

/** Outputs of at least this many bytes (default 8 MiB) are first touched by the pool's threads, where it runs (tests lower it). */
export function setFreshSharedBytes(bytes: number): void {
  sharedBytes = bytes;
}

/**
 * A new zeroed array of `length` elements of `dtype`, for an op's result: over its
 * own SharedArrayBuffer, its pages touched in parallel, where it is large (8 MiB or
 * more, and at least the parallel threshold) and the worker pool can run; else an
 * ordinary typed array.
 */
export function freshArray(dtype: DType, length: number): TypedArray {
  const bytes = length * itemsize(dtype);
  if (bytes >= sharedBytes && length >= parallelThreshold()) {
    let buf: SharedArrayBuffer | null = null;
    try {
      buf = prefaultedBuffer(bytes);
    } catch (e) {
      if (e instanceof BnbError) throw e; // a worker stalled
      // no SharedArrayBuffer that large: an ordinary array, which fails as it always did
    }
    if (buf !== null) return new (arrayTypeOf(dtype) as unknown as new (b: ArrayBufferLike) => TypedArray)(buf);
  }
  return allocate(dtype, length);
}

/** A new zeroed host tensor for an op's result (freshArray's data). */
export function freshTensor(dtype: DType, shape: readonly number[]): Tensor {
  return tensor(freshArray(dtype, numel(shape as number[])), [...shape], dtype);
}
