// gemv4bit (and matmul4bit, its public form with a bias): its declaration, its check, the public functions.
import { BnbError, fail, show } from '../errors.js';
import { guard } from '../args.js';
import { defineOp, outputs } from './registry.js';
import { FLOAT_DTYPES, FloatDType } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, checkShape, numel } from '../tensor.js';
import { checkQuantType } from '../maps.js';
import { checkStateAbsmax, readState } from './state.js';
import { BLOCKSIZES_4BIT, checkBlocksize, checkCode4bit, checkOptions, checkTensorArg, itemBytes } from './validate.js';

/**
 * How gemv4bit / matmul4bit compute: 'exact' (the default) multiplies the f32 activations by
 * the dequantized f32 weights; 'int8' quantizes the activations per group of 64 to int8 and
 * multiplies integers (docs/bit-exactness.md, "4-bit GEMV": both orders are fixed, every
 * backend gives the same bits).
 */
export type Accuracy = 'exact' | 'int8';
export const ACCURACIES: readonly Accuracy[] = ['exact', 'int8'];

/** `accuracy` (undefined: 'exact'); anything else is E_ARGUMENT. */
export function checkAccuracy(x: unknown): Accuracy {
  if (x === undefined) return 'exact';
  if (x !== 'exact' && x !== 'int8') fail('E_ARGUMENT', 'accuracy', x, "'exact' (the default) or 'int8'");
  return x;
}

/**
 * gemv4bit's (and matmul4bit's) arguments (the options copied), checked: what every
 * backend's kernel gets. A [..., K] of a float dtype, the packed weight B of
 * state.shape = [N, K], an optional bias of N entries.
 */
export function checkGemv4bit(A: Tensor, B: Tensor, state: QuantState, opts: { bias?: Tensor | null; accuracy?: Accuracy }) {
  const a = checkTensorArg('A', A);
  if (!(FLOAT_DTYPES as readonly string[]).includes(a.dtype)) {
    throw new BnbError('E_DTYPE', `A.dtype = ${show(a.dtype)} is not accepted: gemv4bit needs ${FLOAT_DTYPES.join(', ')}`);
  }
  const b = checkTensorArg('B', B);
  if (!QuantState.isState(state)) {
    throw new BnbError('E_STATE', `state = ${show(state)} is not accepted: gemv4bit() requires the QuantState from quantize4bit()`);
  }
  const st = readState('state', state);
  const quantType = checkQuantType('state.quantType', st.quantType);
  const blocksize = checkBlocksize('state.blocksize', st.blocksize, BLOCKSIZES_4BIT);
  const wshape = guard('state.shape', () => Array.isArray(st.shape)) ? checkShape('state.shape', st.shape) : null;
  if (wshape === null || wshape.length !== 2) {
    fail('E_STATE', 'state.shape', st.shape, 'the 2-D [out_features, in_features] shape of the quantized weight');
  }
  const [N, K] = wshape as [number, number];
  checkCode4bit('state.code', st.code);
  if (a.shape.length < 1 || a.shape[a.shape.length - 1] !== K) {
    throw new BnbError(
      'E_SHAPE',
      `A.shape = ${show(a.shape)} does not match the weight: gemv4bit computes A @ W^T with W of shape ${show(wshape)}, so A's last dimension must be ${K}`,
    );
  }
  const nbytes = itemBytes(b);
  if (!(nbytes >= Math.ceil((N * K) / 2))) {
    throw new BnbError('E_SHAPE', `B holds ${nbytes} bytes but a ${N}x${K} weight needs ${Math.ceil((N * K) / 2)}`);
  }
  let bias: Tensor | null = null;
  const rawBias = guard('bias', () => opts.bias) ?? null;
  if (rawBias !== null) {
    bias = checkTensorArg('bias', rawBias);
    if (!(FLOAT_DTYPES as readonly string[]).includes(bias.dtype)) fail('E_DTYPE', 'bias.dtype', bias.dtype, FLOAT_DTYPES.join(', '));
    if (numel(bias.shape) !== N)
      throw new BnbError('E_SHAPE', `bias has ${numel(bias.shape)} entries but the weight has ${N} output features`);
  }
  const accuracy = checkAccuracy(guard('accuracy', () => opts.accuracy));
  const absmax = checkStateAbsmax(st, Math.ceil((N * K) / blocksize));
  const M = numel(a.shape.slice(0, -1)); // not numel / K: K may be 0 (the result is then the bias)
  return {
    A: a,
    B: b,
    M,
    N,
    K,
    quantType,
    blocksize,
    dtype: a.dtype as FloatDType,
    bias,
    accuracy,
    absmax,
    outShape: [...a.shape.slice(0, -1), N],
    shape: wshape,
  };
}

/** bnb's gemv_4bit: A [..., K] times the 4-bit weight [N, K] transposed, for any M and K. */
export function gemv4bit(A: Tensor, B: Tensor, state: QuantState): Tensor {
  return gemv4bitOp.call(A, B, state, {});
}

/**
 * bnb's matmul_4bit (inference): A @ W^T + bias. `accuracy: 'int8'` opts in to int8
 * activations (as onnxruntime's accuracy_level 4): faster, with the error documented in
 * bench/RESULTS.md; the default 'exact' keeps f32 activations.
 */
export function matmul4bit(A: Tensor, B: Tensor, state: QuantState, opts: { bias?: Tensor | null; accuracy?: Accuracy } = {}): Tensor {
  const o = checkOptions('matmul4bit', opts, ['bias', 'accuracy']);
  const bias = (o.bias ?? null) as Tensor | null;
  return gemv4bitOp.call(A, B, state, o.accuracy === undefined ? { bias } : { bias, accuracy: o.accuracy as Accuracy });
}

export const gemv4bitOp = defineOp({
  name: 'gemv4bit',
  inputs: ['A', 'B'],
  state: true,
  attrs: { bias: 'tensor', accuracy: 'value' },
  check: checkGemv4bit,
  outputs: outputs<Tensor>('out'),
  output: 'new',
});
