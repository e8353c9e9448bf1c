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
 * gemv4bit's (and matmul4bit's) arguments (the options copied), checked: what every
 * backend's kernel gets. A [..., K] of a float dtype, the packed weight B of
 * state.shape = [N, K], an optional bias of N entries.
 */
export function checkGemv4bit(A: Tensor, B: Tensor, state: QuantState, opts: { bias?: Tensor | null }) {
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
    absmax,
    outShape: [...a.shape.slice(0, -1), N],
    shape: wshape,
  };
}

/** bnb's gemv_4bit: A [..., K] times the 4-bit weight [N, K] transposed, for any M and K. */
export function gemv4bit(A: Tensor, B: Tensor, state: QuantState): Tensor {
  return gemv4bitOp.call(A, B, state, {});
}

/** bnb's matmul_4bit (inference): A @ W^T + bias. */
export function matmul4bit(A: Tensor, B: Tensor, state: QuantState, opts: { bias?: Tensor | null } = {}): Tensor {
  const o = checkOptions('matmul4bit', opts, ['bias']);
  const bias = (o.bias ?? null) as Tensor | null;
  return gemv4bitOp.call(A, B, state, { bias });
}

export const gemv4bitOp = defineOp({
  name: 'gemv4bit',
  inputs: ['A', 'B'],
  state: true,
  attrs: { bias: 'tensor' },
  check: checkGemv4bit,
  outputs: outputs<Tensor>('out'),
  output: 'new',
});
