// The QuantState arguments of the dequantize ops and gemv4bit, checked: each field
// read once, the statistics (nested or not) checked against the blocks they cover.
import { BnbError, fail } from '../errors.js';
import { guard } from '../args.js';
import { Tensor, numel, toDevice } from '../tensor.js';
import { BLOCKSIZES_8BIT, checkAbsmax, checkBlocksize, checkTensorArg, onHost } from './validate.js';

/** A 256-entry f32 code, sorted ascending (every kernel binary-searches it). */
export function checkCode(argument: string, t: unknown): Float32Array {
  const c = checkTensorArg(argument, t);
  if (c.dtype !== 'float32' || numel(c.shape) !== 256) {
    throw new BnbError('E_CODE', `${argument} must be a float32 tensor of 256 entries, got ${c.dtype} with ${numel(c.shape)}`);
  }
  const d = (onHost(c) ? c : toDevice(c, 'cpu')).data as Float32Array; // 1 KiB: every backend reads the code on the host
  for (let i = 0; i < 256; i++) {
    if (!Number.isFinite(d[i]!)) throw new BnbError('E_CODE', `${argument}[${i}] = ${d[i]} is not finite`);
    if (i > 0 && d[i]! < d[i - 1]!) {
      throw new BnbError(
        'E_CODE',
        `${argument} must be sorted ascending, but ${argument}[${i - 1}] = ${d[i - 1]} > ${argument}[${i}] = ${d[i]}`,
      );
    }
  }
  return d;
}

/** A state's statistics, checked: f32 absmax, or uint8 codes and the nested statistics that decode them. */
export interface CheckedAbsmax {
  absmax: Tensor;
  nested: { offset: number; blocksize: number; code: Float32Array; absmax: Tensor } | null;
}

/** A QuantState's fields, each read once (a state's fields may be getters), state2's too. */
export interface StateFields {
  absmax: unknown;
  shape: unknown;
  code: unknown;
  blocksize: unknown;
  quantType: unknown;
  dtype: unknown;
  offset: unknown;
  state2: StateFields | null | undefined | unknown;
}

export function readState(argument: string, s: unknown): StateFields {
  return guard(argument, () => {
    const x = s as Record<string, unknown>;
    const s2 = x.state2;
    return {
      absmax: x.absmax,
      shape: x.shape,
      code: x.code,
      blocksize: x.blocksize,
      quantType: x.quantType,
      dtype: x.dtype,
      offset: x.offset,
      state2: typeof s2 === 'object' && s2 !== null ? readState(`${argument}.state2`, s2) : s2,
    };
  });
}

/** The tensors of a state (or of dequantize options) that decide the device an op runs on. */
export function stateTensors(s: unknown): { absmax?: Tensor; nested_absmax?: Tensor } {
  if (typeof s !== 'object' || s === null) return {};
  return guard('state', () => {
    const x = s as { absmax?: Tensor; state2?: { absmax?: Tensor } | null };
    const s2 = x.state2;
    return { absmax: x.absmax, nested_absmax: typeof s2 === 'object' && s2 !== null ? s2.absmax : undefined };
  });
}

/** The checked statistics by name, for checkOutput's overlap check. */
export function checkedInputs(c: CheckedAbsmax): Record<string, Tensor> {
  return c.nested === null ? { 'state.absmax': c.absmax } : { 'state.absmax': c.absmax, 'state.state2.absmax': c.nested.absmax };
}

export function checkStateAbsmax(state: StateFields, nblocks: number): CheckedAbsmax {
  const s2 = state.state2;
  if (s2 === null || s2 === undefined) return { absmax: checkAbsmax('state.absmax', state.absmax, nblocks), nested: null };
  if (typeof s2 !== 'object') fail('E_STATE', 'state.state2', s2, 'null or the QuantState of the nested statistics');
  const n2 = s2 as StateFields;
  const q = checkAbsmax('state.absmax', state.absmax, nblocks, 'uint8');
  const offset = state.offset;
  if (typeof offset !== 'number') fail('E_STATE', 'state.offset', offset, 'a number for a nested state');
  const blocksize = checkBlocksize('state.state2.blocksize', n2.blocksize, BLOCKSIZES_8BIT);
  const code = checkCode('state.state2.code', n2.code);
  const absmax = checkAbsmax('state.state2.absmax', n2.absmax, Math.ceil(nblocks / blocksize));
  return { absmax: q, nested: { offset, blocksize, code, absmax } };
}
