// The LLM.int8 ops: their declarations, checks and public functions.
import { BnbError, fail, show } from '../errors.js';
import { defineOp, outputs } from './registry.js';
import { FLOAT_DTYPES, FloatDType } from '../dtypes.js';
import { f16ToNumber, numberToF16 } from '../float16.js';
import { Tensor, numel } from '../tensor.js';
import { checkBoolean, checkDTypeIs, checkFloatDType, checkOptionsObject, checkTensorArg, checkTensorOf } from './validate.js';

export interface Int8QuantOptions {
  /** outlier threshold: |x| >= threshold is an outlier (0: none). Compared in float16, as bnb. */
  threshold?: number;
  allowNonFinite?: boolean;
}

/** [rows, cols] of a tensor seen as a matrix over its last dimension. */
export function matrix(argument: string, t: Tensor): [number, number] {
  if (t.shape.length < 1 || numel(t.shape) === 0) {
    throw new BnbError('E_SHAPE', `${argument}.shape = ${show(t.shape)} is not accepted: expected at least one dimension and one element`);
  }
  const cols = t.shape[t.shape.length - 1]!;
  return [numel(t.shape) / cols, cols];
}

function checkThreshold(threshold: unknown): number {
  if (typeof threshold !== 'number' || !(threshold >= 0) || threshold === Infinity) {
    fail('E_ARGUMENT', 'threshold', threshold, 'a finite number >= 0 (0: no outliers)');
  }
  // torch compares the float16 |A| with the threshold in float16
  return f16ToNumber(numberToF16(threshold));
}

function checkStats(argument: string, t: unknown, length: number, what: string): Tensor {
  const s = checkTensorOf(argument, t, 'float32');
  if (numel(s.shape) !== length) {
    throw new BnbError('E_SHAPE', `${argument} has ${numel(s.shape)} entries but ${what} needs ${length}`);
  }
  return s;
}

/**
 * int8VectorwiseQuant's (and int8DoubleQuant's) arguments (the options copied),
 * checked: what every backend's kernel gets. Float16 A seen as [rows, cols].
 */
export function checkInt8Quant(A: Tensor, o: Int8QuantOptions) {
  const a = checkTensorOf('A', A, 'float16');
  const threshold = checkThreshold(o.threshold ?? 0);
  const allowNonFinite = checkBoolean('allowNonFinite', o.allowNonFinite ?? false);
  const [rows, cols] = matrix('A', a);
  return { A: a, threshold, allowNonFinite, rows, cols };
}

const INT8_QUANT_ATTRS = { threshold: 'value', allowNonFinite: 'value' } as const;

export const int8VectorwiseQuantOp = defineOp({
  name: 'int8VectorwiseQuant',
  inputs: ['A'],
  attrs: INT8_QUANT_ATTRS,
  check: checkInt8Quant,
  outputs: outputs<[Tensor, Tensor, Tensor | null]>('CB', 'rowStats', 'outlierCols'),
  output: 'new',
});

export const int8DoubleQuantOp = defineOp({
  name: 'int8DoubleQuant',
  inputs: ['A'],
  attrs: INT8_QUANT_ATTRS,
  check: checkInt8Quant,
  outputs: outputs<[Tensor, Tensor, Tensor, Tensor, Tensor | null]>('CArow', 'CAcol', 'rowStats', 'colStats', 'outlierCols'),
  output: 'new',
});

/**
 * bnb's int8_vectorwise_quant (LLM.int8 row-wise absmax quantization of float16
 * A). Returns [CB int8 like A, rowStats float32 [rows], outlierCols int32 | null].
 */
export function int8VectorwiseQuant(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor | null] {
  return int8VectorwiseQuantOp.call(A, opts);
}

/**
 * bnb's int8_double_quant: the row-wise quantization plus the column-wise one
 * (CAt = rint(f16(A * 127) / colStats)). Returns [CArow, CAcol, rowStats, colStats, outlierCols | null].
 */
export function int8DoubleQuant(A: Tensor, opts: Int8QuantOptions = {}): [Tensor, Tensor, Tensor, Tensor, Tensor | null] {
  return int8DoubleQuantOp.call(A, opts);
}

/** bnb's int8_vectorwise_dequant: A * stats[row] * f32(1/127), float32. */
export function int8VectorwiseDequant(A: Tensor, stats: Tensor): Tensor {
  return int8VectorwiseDequantOp.call(A, stats);
}

/** int8VectorwiseDequant's arguments, checked: what every backend's kernel gets. */
export function checkInt8VectorwiseDequant(A: Tensor, stats: Tensor) {
  const a = checkTensorOf('A', A, 'int8');
  const [rows, cols] = matrix('A', a);
  return { A: a, stats: checkStats('stats', stats, rows, `A with ${rows} rows`), rows, cols };
}

export const int8VectorwiseDequantOp = defineOp({
  name: 'int8VectorwiseDequant',
  inputs: ['A', 'stats'],
  check: checkInt8VectorwiseDequant,
  outputs: outputs<Tensor>('out'),
  output: 'new',
});

/** bnb's int8_linear_matmul: out = A @ B^T in exact int32 arithmetic, for any K. */
export function int8LinearMatmul(A: Tensor, B: Tensor): Tensor {
  return int8LinearMatmulOp.call(A, B);
}

/** int8LinearMatmul's arguments, checked: what every backend's kernel gets. Int8 A [..., K] and B [N, K]. */
export function checkInt8LinearMatmul(A: Tensor, B: Tensor) {
  const a = checkTensorArg('A', A),
    b = checkTensorArg('B', B);
  checkDTypeIs('A', a, 'int8');
  checkDTypeIs('B', b, 'int8');
  if (b.shape.length !== 2) throw new BnbError('E_SHAPE', `B.shape = ${show(b.shape)} is not accepted: expected a 2-D [N, K] matrix`);
  const [M, K] = matrix('A', a);
  const [N, KB] = b.shape as [number, number];
  if (K !== KB) {
    throw new BnbError(
      'E_SHAPE',
      `int8LinearMatmul computes A @ B^T: A.shape = ${show(a.shape)} and B.shape = ${show(b.shape)} have inner dimensions ${K} and ${KB}`,
    );
  }
  return { A: a, B: b, M, K, N };
}

export const int8LinearMatmulOp = defineOp({
  name: 'int8LinearMatmul',
  inputs: ['A', 'B'],
  check: checkInt8LinearMatmul,
  outputs: outputs<Tensor>('out'),
  output: 'new',
});

export interface Int8MmDequantOptions {
  bias?: Tensor | null;
  dtype?: FloatDType;
}

/** The kernels' bias dtype ids (0: no bias). */
const BIAS_KIND: Record<FloatDType, number> = { float16: 1, float32: 2, bfloat16: 3 };

/**
 * bnb's int8_mm_dequant with CUDA's arithmetic: half(fma(A * row * col, 1/16129, bias))
 * for a float16 bias; another bias dtype is added to the float16 result; other
 * output dtypes are casts of that float16 result (docs/bit-exactness.md#int8-matmul-dequantization).
 */
export function int8MmDequant(A: Tensor, rowStats: Tensor, colStats: Tensor, opts: Int8MmDequantOptions = {}): Tensor {
  return int8MmDequantOp.call(A, rowStats, colStats, opts);
}

/** int8MmDequant's arguments (the options copied), checked: what every backend's kernel gets. */
export function checkInt8MmDequant(A: Tensor, rowStats: Tensor, colStats: Tensor, o: Int8MmDequantOptions) {
  const a = checkTensorOf('A', A, 'int32');
  const [rows, cols] = matrix('A', a);
  const rs = checkStats('rowStats', rowStats, rows, `A with ${rows} rows`);
  const cs = checkStats('colStats', colStats, cols, `A with ${cols} columns`);
  const dtype = checkFloatDType('dtype', o.dtype ?? 'float16', 'int8MmDequant');
  let bias: Tensor | null = null;
  if (o.bias !== undefined && o.bias !== null) {
    bias = checkTensorArg('bias', o.bias);
    if (!(FLOAT_DTYPES as readonly string[]).includes(bias.dtype)) fail('E_DTYPE', 'bias.dtype', bias.dtype, FLOAT_DTYPES.join(', '));
    if (numel(bias.shape) !== cols) throw new BnbError('E_SHAPE', `bias has ${numel(bias.shape)} entries but A has ${cols} columns`);
  }
  return { A: a, rowStats: rs, colStats: cs, rows, cols, dtype, bias, biasKind: bias ? BIAS_KIND[bias.dtype as FloatDType] : 0 };
}

export const int8MmDequantOp = defineOp({
  name: 'int8MmDequant',
  inputs: ['A', 'rowStats', 'colStats'],
  attrs: { bias: 'tensor', dtype: 'value' },
  check: checkInt8MmDequant,
  outputs: outputs<Tensor>('out'),
  output: 'new',
});

/** bnb's int8_scaled_mm: int8LinearMatmul then int8MmDequant. */
export function int8ScaledMm(A: Tensor, B: Tensor, rowStats: Tensor, colStats: Tensor, opts: Int8MmDequantOptions = {}): Tensor {
  checkOptionsObject('int8ScaledMm', opts);
  return int8MmDequant(int8LinearMatmul(A, B), rowStats, colStats, opts);
}
