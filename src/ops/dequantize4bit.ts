// dequantize4bit: its declaration, its check, and the public functions.
import { BnbError, fail, show } from '../errors.js';
import { isPlainObject, readOptions } from '../args.js';
import { defineOp, outputs } from './registry.js';
import { DType } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, checkShape, numel, tensor } from '../tensor.js';
import { QuantType, checkQuantType } from '../maps.js';
import { StateFields, checkStateAbsmax, checkedInputs, readState } from './state.js';
import { BLOCKSIZES_4BIT, checkBlocksize, checkCode4bit, checkFloatDType, checkOutput, checkTensorArg, itemBytes } from './validate.js';

export interface Dequantize4bitOptions {
  absmax: Tensor;
  shape: number[];
  blocksize?: number;
  quantType?: QuantType;
  dtype?: DType;
}

/**
 * bnb's dequantize_4bit, with a QuantState or with `{ absmax, shape, blocksize,
 * quantType, dtype }`. Any storage dtype is read as its bytes. As in bnb, a
 * packed tensor with shape[0] == 1 (a caller passing `qB.t()`) gets the
 * transposed result. `out` (optional) receives the result, like bnb's out=.
 */
export function dequantize4bit(A: Tensor, stateOrOptions: QuantState | Dequantize4bitOptions, opts: { out?: Tensor } = {}): Tensor {
  return dequantize4bitOp.call(A, stateOrOptions, opts);
}

/**
 * dequantize4bit's arguments (the options copied), checked: what every backend's
 * kernel gets. `out` is the caller's out checked (a host tensor's snapshot, which the
 * kernel writes); `isState`: a QuantState was given, not its fields.
 */
export function checkDequantize4bit(A: Tensor, stateOrOptions: QuantState | Dequantize4bitOptions, opts: { out?: Tensor }) {
  const packed = checkTensorArg('A', A);
  let state: StateFields;
  const isState = QuantState.isState(stateOrOptions);
  if (isState) state = readState('state', stateOrOptions);
  else {
    const f = isPlainObject('state', stateOrOptions)
      ? readOptions('dequantize4bit', stateOrOptions, ['absmax', 'shape', 'blocksize', 'quantType', 'dtype'])
      : null;
    if (f === null || f.absmax === undefined || f.shape === undefined) {
      throw new BnbError('E_STATE', 'dequantize4bit requires a QuantState or both absmax and shape');
    }
    state = {
      absmax: f.absmax,
      shape: f.shape,
      blocksize: f.blocksize ?? 64,
      quantType: f.quantType ?? 'fp4',
      dtype: f.dtype ?? 'float32',
      code: tensor(new Float32Array(16), [16], 'float32'), // not read: the kernels know the tables
      offset: null,
      state2: null,
    };
  }
  const quantType = checkQuantType('quantType', state.quantType);
  const blocksize = checkBlocksize('blocksize', state.blocksize, BLOCKSIZES_4BIT);
  const dtype = checkFloatDType('dtype', state.dtype, 'Blockwise 4bit dequantization');
  if (state.shape === null) fail('E_STATE', 'state.shape', state.shape, 'the shape of the quantized tensor');
  const shape = checkShape('state.shape', state.shape);
  const n = numel(shape);
  checkCode4bit('state.code', state.code);
  const nbytes = itemBytes(packed);
  if (!(nbytes >= Math.ceil(n / 2))) {
    throw new BnbError('E_SHAPE', `A holds ${nbytes} bytes but shape ${show(shape)} needs ${Math.ceil(n / 2)} packed bytes`);
  }
  const absmax = checkStateAbsmax(state, Math.ceil(n / blocksize));
  const transposed = packed.shape[0] === 1 && shape.length >= 2;
  if (transposed && shape.length > 2) {
    throw new BnbError(
      'E_SHAPE',
      `A.shape = ${show(packed.shape)} asks for the transposed result, which needs a 2-D shape, got ${show(shape)}`,
    );
  }
  const outShape = transposed ? [shape[1]!, shape[0]!] : shape;
  const out = checkOutput(opts.out, dtype, outShape, { A: packed, ...checkedInputs(absmax) });
  return { A: packed, n, shape, quantType, blocksize, dtype, absmax, transposed, outShape, out, isState };
}

export const dequantize4bitOp = defineOp({
  name: 'dequantize4bit',
  inputs: ['A'],
  state: true,
  attrs: { out: 'tensor' },
  check: checkDequantize4bit,
  outputs: outputs<Tensor>('out'),
  output: 'out',
});

type Dequantize4bitTypedOptions = Omit<Dequantize4bitOptions, 'quantType'>;

export function dequantizeNf4(A: Tensor, stateOrOptions: QuantState | Dequantize4bitTypedOptions, opts: { out?: Tensor } = {}): Tensor {
  return dequantize4bit(A, typed('dequantizeNf4', stateOrOptions, 'nf4'), opts);
}

export function dequantizeFp4(A: Tensor, stateOrOptions: QuantState | Dequantize4bitTypedOptions, opts: { out?: Tensor } = {}): Tensor {
  return dequantize4bit(A, typed('dequantizeFp4', stateOrOptions, 'fp4'), opts);
}

/** A QuantState as it is, or the options (copied) with the quant type. */
function typed(op: string, s: QuantState | Dequantize4bitTypedOptions, quantType: QuantType): QuantState | Dequantize4bitOptions {
  if (QuantState.isState(s) || !isPlainObject('state', s)) return s as QuantState;
  return { ...readOptions(op, s, ['absmax', 'shape', 'blocksize', 'dtype']), quantType } as Dequantize4bitOptions;
}
