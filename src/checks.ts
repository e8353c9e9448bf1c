// Argument rules shared by the ops and by the modules below them (QuantState, the
// code maps): blocksizes, booleans, options objects. src/ops/validate.ts builds the
// tensor checks of the ops on these.
import { fail } from './errors.js';
import { isPlainObject, readOptions } from './args.js';

export const BLOCKSIZES_4BIT = [32, 64, 128, 256, 512, 1024, 2048, 4096] as const;
/** CUDA's kQuantizeBlockwise / kDequantizeBlockwise set (docs/bit-exactness.md#8-bit-blocksizes-and-nesting). */
export const BLOCKSIZES_8BIT = [64, 128, 256, 512, 1024, 2048, 4096] as const;

export function checkBlocksize(argument: string, x: unknown, accepted: readonly number[]): number {
  if (!accepted.includes(x as number)) fail('E_BLOCKSIZE', argument, x, `one of ${accepted.join(', ')}`);
  return x as number;
}

export function checkBoolean(argument: string, x: unknown): boolean {
  if (typeof x !== 'boolean') fail('E_ARGUMENT', argument, x, 'true or false');
  return x;
}

/** Options are an object (checked before any backend destructures them). */
export function checkOptionsObject(op: string, opts: unknown): void {
  if (!isPlainObject(`${op} options`, opts)) fail('E_ARGUMENT', `${op} options`, opts, 'an options object');
}

/**
 * The options, copied (see readOptions): unknown names are rejected (catching typos
 * such as `quant_type`) and each known one is read once; the op uses the copy.
 */
export function checkOptions(op: string, opts: unknown, known: readonly string[]): Record<string, unknown> {
  checkOptionsObject(op, opts);
  return readOptions(op, opts, known);
}
