// quantizeBlockwise and dequantizeBlockwise: their declarations, checks and public functions.
import { BnbError, fail } from '../errors.js';
import { isPlainObject, readOptions } from '../args.js';
import { defineOp, outputs } from './registry.js';
import { FloatDType } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, numel, tensor } from '../tensor.js';
import { defaultDynamicMap } from '../maps.js';
import { StateFields, checkCode, checkStateAbsmax, checkedInputs, readState } from './state.js';
import { BLOCKSIZES_8BIT, checkBlocksize, checkBoolean, checkFloatInput, checkOutput, checkTensorOf } from './validate.js';

export interface QuantizeBlockwiseOptions {
  /** 256 sorted f32 values; default: createDynamicMap() */
  code?: Tensor;
  blocksize?: number;
  nested?: boolean;
  allowNonFinite?: boolean;
}

/** bnb's quantize_blockwise: 8-bit codes (same shape as A) and a QuantState. */
export function quantizeBlockwise(A: Tensor, opts: QuantizeBlockwiseOptions = {}): [Tensor, QuantState] {
  return quantizeBlockwiseOp.call(A, opts);
}

/** quantizeBlockwise's arguments (the options copied), checked and with their defaults: what every backend's kernel gets. */
export function checkQuantizeBlockwise(A: Tensor, o: QuantizeBlockwiseOptions) {
  const { blocksize = 4096, nested = false, allowNonFinite = false } = o;
  const a = checkFloatInput('A', A, 'Blockwise quantization');
  checkBlocksize('blocksize', blocksize, BLOCKSIZES_8BIT);
  checkBoolean('nested', nested);
  checkBoolean('allowNonFinite', allowNonFinite);
  const code = o.code === undefined ? defaultDynamicMap() : checkCode('code', o.code);
  return { A: a, n: numel(a.shape), blocksize, nested, allowNonFinite, code };
}

export const quantizeBlockwiseOp = defineOp({
  name: 'quantizeBlockwise',
  inputs: ['A'],
  attrs: { code: 'host tensor', blocksize: 'value', nested: 'value', allowNonFinite: 'value' },
  check: checkQuantizeBlockwise,
  outputs: outputs<[Tensor, QuantState]>('q', 'state'),
  output: 'new',
});

export interface DequantizeBlockwiseOptions {
  absmax: Tensor;
  code?: Tensor;
  blocksize?: number;
}

/**
 * bnb's dequantize_blockwise: with a QuantState, or with `{ absmax, code,
 * blocksize }` (then the output is float32, as in bnb).
 */
export function dequantizeBlockwise(
  q: Tensor,
  stateOrOptions: QuantState | DequantizeBlockwiseOptions,
  opts: { out?: Tensor } = {},
): Tensor {
  return dequantizeBlockwiseOp.call(q, stateOrOptions, opts);
}

/** dequantizeBlockwise's arguments (the options copied), checked: what every backend's kernel gets (`out` as in checkDequantize4bit). */
export function checkDequantizeBlockwise(q: Tensor, stateOrOptions: QuantState | DequantizeBlockwiseOptions, o: { out?: Tensor }) {
  const t = checkTensorOf('A', q, 'uint8');
  let state: StateFields;
  if (QuantState.isState(stateOrOptions)) state = readState('state', stateOrOptions);
  else {
    const f = isPlainObject('state', stateOrOptions)
      ? readOptions('dequantizeBlockwise', stateOrOptions, ['absmax', 'code', 'blocksize'])
      : null;
    if (f === null || f.absmax === undefined) {
      throw new BnbError('E_STATE', 'dequantizeBlockwise requires either a QuantState or { absmax }');
    }
    const code = f.code ?? tensor(defaultDynamicMap().slice(), [256], 'float32');
    state = {
      absmax: f.absmax,
      code,
      blocksize: f.blocksize ?? 4096,
      dtype: 'float32',
      shape: null,
      quantType: null,
      offset: null,
      state2: null,
    };
  }
  const blocksize = checkBlocksize('blocksize', state.blocksize, BLOCKSIZES_8BIT);
  const dtype = state.dtype;
  if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16') {
    fail('E_DTYPE', 'state.dtype', dtype, 'float32, float16 or bfloat16');
  }
  const code = checkCode('state.code', state.code);
  const n = numel(t.shape);
  const absmax = checkStateAbsmax(state, Math.ceil(n / blocksize));
  const codeT = tensor(code, [256], 'float32');
  const out = checkOutput(o.out, dtype, t.shape, { A: t, ...checkedInputs(absmax), 'state.code': codeT });
  return { A: t, n, blocksize, dtype: dtype as FloatDType, code, absmax, out };
}

export const dequantizeBlockwiseOp = defineOp({
  name: 'dequantizeBlockwise',
  inputs: ['A'],
  state: true,
  attrs: { out: 'tensor' },
  check: checkDequantizeBlockwise,
  outputs: outputs<Tensor>('out'),
  output: 'out',
});
