// dequantizeFp8: its declaration, its check (the scale layouts), the public function.
import { BnbError, show } from '../errors.js';
import { defineOp, outputs } from './registry.js';
import { FloatDType, FLOAT_DTYPES } from '../dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../float16.js';
import { Tensor, numel, toDevice, toFloat32 } from '../tensor.js';
import { checkFloatDType, checkOutput, checkTensorArg, checkTensorOf, onHost } from './validate.js';

export interface DequantizeFp8Options {
  /** output dtype (default bfloat16, as axolotl) */
  dtype?: FloatDType;
  /** block edge of 2-D tiles or 1-D K-blocks (default 128) */
  blockSize?: number;
  out?: Tensor;
}

export interface Layout {
  rows: number;
  cols: number;
  scaleCols: number;
  blockRows: number;
  blockCols: number;
}

/** Which scale layout `scaleInv` is, for W viewed as [rows, cols]. */
export function layoutOf(W: { shape: number[] }, S: { shape: number[] }, b: number): Layout {
  const n = numel(W.shape);
  if (numel(S.shape) === 1) {
    const cols = W.shape.length ? W.shape[W.shape.length - 1]! : 1;
    const rows = cols === 0 ? 0 : n / cols;
    return { rows, cols, scaleCols: 1, blockRows: Math.max(rows, 1), blockCols: Math.max(cols, 1) };
  }
  if (W.shape.length !== 2) {
    throw new BnbError('E_SHAPE', `W.shape = ${show(W.shape)} is not accepted with a non-scalar scaleInv: expected a 2-D weight`);
  }
  const [rows, cols] = W.shape as [number, number];
  const sr = S.shape[0]!,
    sc = S.shape.length === 2 ? S.shape[1]! : 1;
  const tr = Math.ceil(rows / b),
    tc = Math.ceil(cols / b);
  // a block longer than the matrix is the whole extent (the kernels take 32-bit sizes)
  const br = Math.min(b, Math.max(rows, 1)),
    bc = Math.min(b, Math.max(cols, 1));
  if (S.shape.length === 2 && sr === tr && sc === tc) return { rows, cols, scaleCols: sc, blockRows: br, blockCols: bc };
  if (S.shape.length === 2 && sr === rows && sc === tc) return { rows, cols, scaleCols: sc, blockRows: 1, blockCols: bc };
  if (sr === rows && sc === 1 && S.shape.length <= 2) return { rows, cols, scaleCols: 1, blockRows: 1, blockCols: Math.max(cols, 1) };
  throw new BnbError(
    'E_SHAPE',
    `scaleInv.shape = ${show(S.shape)} does not fit W.shape = ${show(W.shape)} with blockSize ${b}: expected [1] (per tensor), ` +
      `[${tr}, ${tc}] (${b}x${b} tiles), [${rows}, ${tc}] (1-D blocks of ${b} along each row) or [${rows}, 1] (per row)`,
  );
}

/**
 * Dequantizes float8_e4m3fn weights: out = dtype(W * dtype(scale)), the scale
 * rounded to the output dtype first (as torch's `W.to(dtype) * scale_inv.to(dtype)`).
 * Scales are per tensor, per DeepSeek-style 2-D tile (`scaleInv[i / b, j / b]`,
 * partial edge tiles included), per 1-D block of each row (ONNX Runtime's
 * `[N, ceil(K/b)]`), or per row.
 */
export function dequantizeFp8(W: Tensor, scaleInv: Tensor, opts: DequantizeFp8Options = {}): Tensor {
  return dequantizeFp8Op.call(W, scaleInv, opts);
}

/**
 * dequantizeFp8's arguments (the options copied), checked: what every backend's kernel
 * gets; `scales` are the scales rounded to the output dtype, `out` as in checkDequantize4bit.
 */
export function checkDequantizeFp8(W: Tensor, scaleInv: Tensor, o: DequantizeFp8Options) {
  const w = checkTensorOf('W', W, 'float8_e4m3fn');
  const s = checkTensorArg('scaleInv', scaleInv);
  if (!(FLOAT_DTYPES as readonly string[]).includes(s.dtype)) {
    throw new BnbError('E_DTYPE', `scaleInv.dtype = ${show(s.dtype)} is not accepted: expected one of ${FLOAT_DTYPES.join(', ')}`);
  }
  const dtype = checkFloatDType('dtype', o.dtype ?? 'bfloat16', 'dequantizeFp8');
  const b = o.blockSize ?? 128;
  if (!Number.isSafeInteger(b) || b < 1) {
    throw new BnbError('E_ARGUMENT', `blockSize = ${show(b)} is not accepted: expected a positive integer`);
  }
  const layout = layoutOf(w, s, b);
  const out = checkOutput(o.out, dtype, w.shape, { W: w, scaleInv: s });
  const round =
    dtype === 'float16'
      ? (x: number) => f16ToNumber(numberToF16(x))
      : dtype === 'bfloat16'
        ? (x: number) => bf16ToNumber(numberToBf16(x))
        : (x: number) => x;
  const scales = toFloat32(onHost(s) ? s : toDevice(s, 'cpu')).map(round); // scale tables are small: read on the host
  return { W: w, dtype, layout, scales, out };
}

export const dequantizeFp8Op = defineOp({
  name: 'dequantizeFp8',
  inputs: ['W', 'scaleInv'],
  attrs: { dtype: 'value', blockSize: 'value', out: 'tensor' },
  check: checkDequantizeFp8,
  outputs: outputs<Tensor>('out'),
  output: 'out',
});
