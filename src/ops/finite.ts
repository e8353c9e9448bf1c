import { BnbError } from '../errors.js';
import { Tensor, toFloat32 } from '../tensor.js';

/** What a quantize kernel loop checks for NaN/Inf (null: allowNonFinite). */
export interface FiniteCheck {
  argument: string;
  tensor: Tensor;
}

/** The error for the first NaN/Inf, `value`, at flat index `at` (every backend's message). */
export function nonFiniteAt(argument: string, value: number, at: number): BnbError {
  return new BnbError('E_NON_FINITE',
    `${argument} has a non-finite value (${value}) at flat index ${at}: quantization needs finite input; ` +
    'pass allowNonFinite: true to reproduce the bitsandbytes CUDA behaviour');
}

export function nonFiniteError(check: FiniteCheck, at: number): BnbError {
  const t = check.tensor;
  return nonFiniteAt(check.argument, toFloat32({ ...t, shape: [1], data: t.data.subarray(at, at + 1) })[0]!, at);
}
