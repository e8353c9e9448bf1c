// Tensors that live in the kernels' shared WebAssembly memory. An op whose inputs
// or `out` are resident reads and writes them in place, so a weight loaded once is
// never copied again (gemv4bit, int8LinearMatmul on the same weight per token) and
// worker threads write results straight into the caller's tensor. Only a shared
// memory holds them: its views never detach when it grows, so `data` stays valid.
import { BnbError, fail, show } from '../../errors.js';
import { DType, TypedArray, arrayTypeOf, checkDType, itemsize } from '../../dtypes.js';
import { guard } from '../../args.js';
import { Tensor, checkShape, checkTensor, isTensor, numel, tensor } from '../../tensor.js';
import { viewOf } from '../../views.js';
import { WasmMemory, memoryOfBuffer } from './runtime/memory.js';
import { sharedKernelMemory } from './threads/shared.js';

class ResidentTensor implements Tensor {
  readonly device = 'cpu';
  private freed = false;
  constructor(
    readonly dtype: DType,
    readonly shape: number[],
    readonly data: TypedArray,
    private readonly m: WasmMemory,
    private readonly ptr: number,
  ) {}

  to(device: string): Tensor {
    if (this.freed) throw new BnbError('E_DETACHED', 'this wasmTensor was disposed: its memory may now hold another tensor');
    // elsewhere from an ordinary copy: device movers are written for ArrayBuffer-backed data
    return device === 'cpu' ? this : tensor(this.data.slice() as TypedArray, this.shape, this.dtype).to!(device);
  }

  /** Frees the tensor's memory now; views of its data taken before must not be used after. */
  dispose(): void {
    if (this.freed) return;
    this.freed = true;
    this.m.release(this.ptr);
  }

  get disposed(): boolean {
    return this.freed;
  }
}

/**
 * A tensor in the kernels' shared WebAssembly memory: a copy of `t`, or zeros of
 * `shape` and `dtype`. Ops read and write it in place (no copy in or out) and run
 * it on the worker pool. It is not garbage-collected: `dispose()` frees it. Where
 * the runtime has no shared kernel memory (no threads: no SharedArrayBuffer or wasm
 * threads, no threaded build, the scalar build or a module given to init()), this is
 * an ordinary copy; isResident() tells which.
 */
export function wasmTensor(t: Tensor): Tensor & { dispose(): void };
export function wasmTensor(shape: number[], dtype: DType): Tensor & { dispose(): void };
export function wasmTensor(a: Tensor | number[], dtype?: DType): Tensor & { dispose(): void } {
  let src: Tensor | null = null,
    shape: number[];
  if (guard('t', () => Array.isArray(a))) {
    shape = checkShape('shape', a);
    if (dtype === undefined) fail('E_DTYPE', 'dtype', dtype, 'a dtype for a tensor made from a shape');
    checkDType('dtype', dtype);
  } else {
    const device = typeof a === 'object' && a !== null ? guard('t.device', () => (a as Partial<Tensor>).device) : undefined;
    if (typeof device === 'string' && device !== 'cpu') {
      throw new BnbError('E_DEVICE', `t is on ${show(device)}: wasmTensor takes a host tensor (copy it with t.to('cpu') first)`);
    }
    src = checkTensor('t', a);
    shape = [...src.shape];
    dtype = src.dtype;
  }
  const n = numel(shape);
  const m = sharedKernelMemory();
  if (m === null) {
    let data: TypedArray;
    try {
      data = new (arrayTypeOf(dtype))(n) as TypedArray;
    } catch (e) {
      throw new BnbError('E_OUT_OF_MEMORY', `a ${dtype} tensor of shape ${show(shape)} could not be allocated: ${(e as Error).message}`);
    }
    if (src) data.set(src.data as never);
    return tensor(data, shape, dtype) as Tensor & { dispose(): void }; // tensor() gives host tensors a no-op dispose
  }
  const ptr = m.alloc(n * itemsize(dtype));
  // the view is tied to this allocation: once disposed, it is E_DETACHED even after another tensor reuses the bytes
  const data = m.residentView(arrayTypeOf(dtype) as unknown as new (b: ArrayBufferLike, at: number, n: number) => TypedArray, ptr, n);
  if (src) data.set(src.data as never);
  else data.fill(0);
  return new ResidentTensor(dtype, shape, data, m, ptr);
}

/** True when the tensor's data lies in a live resident region of a kernel memory (ops use it in place). */
export function isResident(t: Tensor): boolean {
  if (!isTensor(t)) return false;
  const device = guard('t.device', () => t.device);
  if (device !== undefined && device !== 'cpu') return false; // device tensors have no host data
  const d: unknown = guard('t.data', () => t.data);
  const v = viewOf(d);
  const m = v === null ? null : memoryOfBuffer(v.buffer);
  return m !== null && !m.stale(d) && m.addressOf(new Uint8Array(v!.buffer, v!.byteOffset, v!.byteLength), 0, v!.byteLength) !== null;
}
