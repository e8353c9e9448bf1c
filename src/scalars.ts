// The exported forms of small helpers that bnbjs itself calls in hot loops on values
// it has checked already (src/float16.ts, numel, itemsize): these check what a
// caller passes first, so that junk is a BnbError rather than a TypeError or a
// silently wrong number.
import { fail } from './errors.js';
import { readShape } from './args.js';
import { DType, checkDType, itemsize as itemsizeOf } from './dtypes.js';
import * as f16 from './float16.js';
import { numel as count } from './tensor.js';

function bits(argument: string, h: unknown): number {
  if (typeof h !== 'number' || !Number.isInteger(h) || h < 0 || h > 0xffff)
    fail('E_ARGUMENT', argument, h, 'a 16-bit pattern, an integer from 0 to 65535');
  return h;
}

function value(argument: string, x: unknown): number {
  if (typeof x !== 'number') fail('E_ARGUMENT', argument, x, 'a number');
  return x;
}

/** The number a float16 bit pattern holds. */
export function f16ToNumber(h: number): number {
  return f16.f16ToNumber(bits('h', h));
}

/** The number a bfloat16 bit pattern holds. */
export function bf16ToNumber(h: number): number {
  return f16.bf16ToNumber(bits('h', h));
}

/** The float16 bit pattern of x (round to nearest even; NaN -> 0x7fff). */
export function numberToF16(x: number): number {
  return f16.numberToF16(value('x', x));
}

/** The bfloat16 bit pattern of x (round to nearest even; NaN -> 0x7fff). */
export function numberToBf16(x: number): number {
  return f16.numberToBf16(value('x', x));
}

/** Elements of a tensor of this shape (1 for []). */
export function numel(shape: readonly number[]): number {
  return count(readShape('shape', shape));
}

/** Bytes per element of a dtype. */
export function itemsize(dtype: DType): number {
  return itemsizeOf(checkDType('dtype', dtype));
}
