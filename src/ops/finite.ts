import { BnbError } from '../errors.js';
import { FloatDType } from '../dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../float16.js';
import { Tensor, toFloat32 } from '../tensor.js';

/** What a quantize kernel loop checks for NaN/Inf (null: allowNonFinite). */
export interface FiniteCheck {
  argument: string;
  tensor: Tensor;
  /** the kernels scan the tensor cast to this dtype (a large value may be Inf only there): the value reported is the cast one */
  as?: FloatDType;
}

const ROUND: Record<FloatDType, (x: number) => number> = {
  float32: Math.fround, float16: (x) => f16ToNumber(numberToF16(x)), bfloat16: (x) => bf16ToNumber(numberToBf16(x)),
};

/** The error for the first NaN/Inf, `value`, at flat index `at` (every backend's message). */
export function nonFiniteAt(argument: string, value: number, at: number): BnbError {
  return new BnbError('E_NON_FINITE',
    `${argument} has a non-finite value (${value}) at flat index ${at}: quantization needs finite input; ` +
    'pass allowNonFinite: true to reproduce the bitsandbytes CUDA behaviour');
}

export function nonFiniteError(check: FiniteCheck, at: number): BnbError {
  const t = check.tensor;
  const value = toFloat32({ ...t, shape: [1], data: t.data.subarray(at, at + 1) })[0]!;
  return nonFiniteAt(check.argument, check.as ? ROUND[check.as](value) : value, at);
}

/** Index of the first NaN or Inf in `x`, or -1. */
export function firstNonFinite(x: ArrayLike<number>): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}
