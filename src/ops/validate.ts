import { BnbError, fail, show } from '../errors.js';
import { guard } from '../args.js';
import { DType, FLOAT_DTYPES, FloatDType, allocate, checkDType, itemsize } from '../dtypes.js';
import { Tensor, checkShape, checkTensor, isTensor, kernelMemoryOf, numel, tensor } from '../tensor.js';

// Every backend's kernel gets its arguments through the same checks (the check of each
// op's declaration), so that WebAssembly, CUDA and the rest reject the same input with
// the same code and message. They see tensors on any device: a device tensor's data is
// not on the host, so only its dtype and shape are checked there.

export { BLOCKSIZES_4BIT, BLOCKSIZES_8BIT, checkBlocksize, checkBoolean, checkOptions, checkOptionsObject } from '../checks.js';

/** A host tensor (its data readable), not one in device memory. */
export function onHost(t: Tensor): boolean {
  return (guard('device', () => t.device) ?? 'cpu') === 'cpu';
}

/**
 * A tensor on any device: on the host checked in full (data, detached buffers) and
 * returned as checkTensor's snapshot (what the op must use from then on); elsewhere
 * checked by dtype and shape, and returned as it is (the device backend's own object).
 */
export function checkTensorArg(argument: string, t: unknown): Tensor {
  // only `device` is looked at first: a host tensor's fields are read once, by checkTensor
  const device = typeof t === 'object' && t !== null ? guard(`${argument}.device`, () => (t as Tensor).device as unknown) : undefined;
  if (typeof device !== 'string' || device === 'cpu' || !isTensor(t)) return checkTensor(argument, t);
  checkDType(`${argument}.dtype`, t.dtype);
  checkShape(`${argument}.shape`, t.shape);
  return t;
}

/** Bytes of a tensor's elements (on any device). */
export function itemBytes(t: Tensor): number {
  return numel(t.shape) * itemsize(t.dtype);
}

export function checkDTypeIs(argument: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) throw new BnbError('E_DTYPE', `${argument}.dtype = ${show(t.dtype)} is not accepted: expected '${dtype}'`);
}

/** A tensor of one dtype. */
export function checkTensorOf(argument: string, t: unknown, dtype: DType): Tensor {
  const x = checkTensorArg(argument, t);
  checkDTypeIs(argument, x, dtype);
  return x;
}

/** A tensor of f32/f16/bf16 with at least one element. */
export function checkFloatInput(argument: string, t: unknown, what: string): Tensor & { dtype: FloatDType } {
  const x = checkTensorArg(argument, t);
  if (!(FLOAT_DTYPES as readonly string[]).includes(x.dtype)) {
    throw new BnbError(
      'E_DTYPE',
      `${argument}.dtype = ${show(x.dtype)} is not accepted: ${what} only supports 16/32-bit floats (${FLOAT_DTYPES.join(', ')})`,
    );
  }
  if (numel(x.shape) === 0) throw new BnbError('E_SHAPE', `${argument}.shape = ${show(x.shape)} has no elements: nothing to quantize`);
  return x as Tensor & { dtype: FloatDType };
}

export function checkFloatDType(argument: string, x: unknown, what: string): FloatDType {
  if (!(FLOAT_DTYPES as readonly unknown[]).includes(x)) {
    fail('E_DTYPE', argument, x, `${FLOAT_DTYPES.join(', ')} (${what} only supports 16/32-bit floats)`);
  }
  return x as FloatDType;
}

/** An f32 absmax tensor with exactly one entry per block. */
export function checkAbsmax(argument: string, t: unknown, nblocks: number, dtype: 'float32' | 'uint8' = 'float32'): Tensor {
  const a = checkTensorArg(argument, t);
  if (a.dtype !== dtype) fail('E_DTYPE', `${argument}.dtype`, a.dtype, `'${dtype}'`);
  if (numel(a.shape) !== nblocks) {
    throw new BnbError('E_STATE', `${argument} has ${numel(a.shape)} entries but the data needs ${nblocks} (one per block)`);
  }
  return a;
}

/** True when two views share bytes of one buffer (or of one kernel memory, whose buffer object changes as it grows). */
export function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const m = kernelMemoryOf(a.buffer);
  const same = a.buffer === b.buffer || (m !== null && m === kernelMemoryOf(b.buffer));
  return (
    same && a.byteLength > 0 && b.byteLength > 0 && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength
  );
}

/**
 * The caller's `out` tensor, checked against dtype and shape and against sharing
 * memory with an input (chunked kernels would read what they have just written);
 * undefined when none is given. `inputs` are the ops' checked snapshots; the result
 * is out's snapshot, which the op writes (and returns the caller's object).
 */
export function checkOutput(
  out: unknown,
  dtype: FloatDType,
  shape: number[],
  inputs: Record<string, Tensor | null | undefined> = {},
): Tensor | undefined {
  if (out === undefined) return undefined;
  const o = checkTensorArg('out', out);
  if (o.dtype !== dtype) throw new BnbError('E_DTYPE', `out.dtype = ${show(o.dtype)} is not accepted: expected ${show(dtype)}`);
  if (o.shape.length !== shape.length || o.shape.some((d, i) => d !== shape[i])) {
    throw new BnbError('E_SHAPE', `out.shape = ${show(o.shape)} is not accepted: expected ${show(shape)}`);
  }
  if (!onHost(o)) return o; // device memory is the device backend's to check
  for (const [name, x] of Object.entries(inputs)) {
    if (x === null || x === undefined || !onHost(x)) continue; // a device tensor has no host data
    const data = x.data;
    if (overlaps(o.data, data)) {
      throw new BnbError(
        'E_ARGUMENT',
        `out shares memory with ${name} (bytes ${o.data.byteOffset}..${o.data.byteOffset + o.data.byteLength} and ` +
          `${data.byteOffset}..${data.byteOffset + data.byteLength} of one buffer): expected an output that does not overlap the inputs`,
      );
    }
  }
  return o;
}

/** A new zeroed host tensor. */
export function emptyTensor(dtype: DType, shape: number[]): Tensor {
  return tensor(allocate(dtype, numel(shape)), [...shape], dtype);
}

/** A 4-bit state's code: 16 entries (the kernels use the nf4/fp4 tables themselves, as bnb's CUDA kernels do). */
export function checkCode4bit(argument: string, t: unknown): void {
  const c = checkTensorArg(argument, t);
  if (numel(c.shape) !== 16) {
    throw new BnbError('E_CODE', `${argument} has ${numel(c.shape)} entries: a 4-bit code (quant_map) has 16`);
  }
}

/** The error for the first NaN/Inf, `value`, at flat index `at` (every backend's message). */
export function nonFiniteAt(argument: string, value: number, at: number): BnbError {
  return new BnbError(
    'E_NON_FINITE',
    `${argument} has a non-finite value (${value}) at flat index ${at}: quantization needs finite input; ` +
      'pass allowNonFinite: true to reproduce the bitsandbytes CUDA behaviour',
  );
}
