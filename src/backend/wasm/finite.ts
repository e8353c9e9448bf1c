// The default NaN/Inf policy of the WebAssembly quantize kernels: each chunk's scan
// (the firstNonFinite kernel) runs before its kernel; the first hit is the error.
import { FloatDType } from '../../dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../../float16.js';
import { Tensor, toFloat32 } from '../../tensor.js';
import { BnbError } from '../../errors.js';
import { nonFiniteAt } from '../../ops/validate.js';

/** What a quantize kernel loop checks for NaN/Inf (null: allowNonFinite). */
export interface FiniteCheck {
  argument: string;
  tensor: Tensor;
  /** the kernels scan the tensor cast to this dtype (a large value may be Inf only there): the value reported is the cast one */
  as?: FloatDType;
}

const ROUND: Record<FloatDType, (x: number) => number> = {
  float32: Math.fround,
  float16: (x) => f16ToNumber(numberToF16(x)),
  bfloat16: (x) => bf16ToNumber(numberToBf16(x)),
};

export function nonFiniteError(check: FiniteCheck, at: number): BnbError {
  const t = check.tensor;
  const value = toFloat32({ ...t, shape: [1], data: t.data.subarray(at, at + 1) })[0]!;
  return nonFiniteAt(check.argument, check.as ? ROUND[check.as](value) : value, at);
}
