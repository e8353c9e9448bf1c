// axolotl's dequantize helpers (src/axolotl/kernels/quantize.py; docs/bit-exactness.md#axolotl-helpers) for bnbjs.
//
// What axolotl accepts, and what bnbjs accepts instead:
// - torch tensors with strides: axolotl tells a transposed weight by its strides (`W.t()` is a
//   non-contiguous view). bnbjs tensors are plain row-major data, so a "transposed view" is the
//   same bytes with the shape swapped; that works for bnb's packed [k, 1] weights, whose transpose
//   [1, k] holds the same bytes in the same order.
// - torch tensor subclasses: axolotl's `is_quant_tensor_subclass(W)` is an exact Python type check
//   (`type(W) is not torch.Tensor`), which means nothing without torch, so bnbjs has no such
//   function. `dequantizeWeight` recognises the one torchao form it supports, an NF4Tensor given
//   as its components (`TorchaoNF4Tensor`), by its fields.

import { BnbError, fail, show } from './errors.js';
import { guard } from './args.js';
import { FLOAT_DTYPES, FloatDType, allocate } from './dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from './float16.js';
import { QuantState } from './quant-state.js';
import { Tensor, checkShape, checkTensor, isTensor, numel, tensor, toFloat32 } from './tensor.js';
import { QuantType, checkQuantType, get4bitType } from './maps.js';
import { dequantize4bit } from './ops/dequantize4bit.js';
import { dequantizeFp8 } from './ops/fp8.js';
import { checkBoolean, checkOptions } from './ops/validate.js';

/**
 * The state list of bitsandbytes 0.40.1–0.41.x for a double-quantized 4-bit weight:
 * `[absmax (uint8), shape, dtype, blocksize, [offset, state2], quant_type, datatype]`.
 * `offset` is a number (the f32 value of bnb's 0-dim tensor) or a one-element float tensor;
 * `datatype` is not read.
 */
export type LegacyQuantStateList = [
  absmax: Tensor,
  shape: number[],
  dtype: FloatDType,
  blocksize: number,
  compressedStats: [offset: number | Tensor, state2: LegacyNestedStateList] | null,
  quantType: QuantType,
  datatype: unknown,
];

/**
 * The nested state list of bitsandbytes 0.40.1–0.41.x:
 * `[absmax2 (float32), code2 (float32[256]), blocksize2, nested, dtype, offset, state2]`.
 * Only the first three items are read (as in axolotl).
 */
export type LegacyNestedStateList = [
  absmax2: Tensor,
  code2: Tensor,
  blocksize2: number,
  nested: unknown,
  dtype: unknown,
  offset: unknown,
  state2: unknown,
];

/**
 * A torchao `NF4Tensor` (torchao/dtypes/nf4tensor.py) as its components. The field names are
 * torchao's own attribute names, which are also the keys of its `__tensor_flatten__` (the inner
 * tensors of a saved state dict) and of its flatten context, so the values of a torchao checkpoint
 * copy over one to one: `{ quantized_data, quantized_scalers, quantization_factor, scaler_mean,
 * nf4, block_size, scaler_block_size, n_blocks, shape, dtype }`. The components describe the
 * contiguous weight: pass the weight itself, not a transposed NF4Tensor.
 */
export interface TorchaoNF4Tensor {
  /** the shape of the weight (torchao supports 1-D and 2-D) */
  shape: number[];
  /** the weight's dtype; `quantization_factor`, `scaler_mean` and `nf4` are in this dtype */
  dtype: FloatDType;
  /** elements per scaler block (torchao's default 64); even */
  block_size: number;
  /** scalers per quantization-factor block (torchao's default 256) */
  scaler_block_size: number;
  /** number of blocks, `numel / block_size` (optional; checked when given) */
  n_blocks?: number;
  /** uint8 [numel / 2]: element 2k in the high nibble, element 2k+1 in the low nibble */
  quantized_data: Tensor;
  /** int8 [n_blocks]: the double-quantized block scalers */
  quantized_scalers: Tensor;
  /** dtype [n_blocks / scaler_block_size]: `256 / (2 · absmax of the centred scalers)` */
  quantization_factor: Tensor;
  /** dtype, one element (torchao's 0-dim tensor), or a number (rounded to dtype as torch stores it) */
  scaler_mean: Tensor | number;
  /** dtype [16]: torchao's NF4 table as stored in the tensor (its 4-decimal values in dtype) */
  nf4: Tensor;
}

/** What `dequantize` takes as its state: see there. */
export type AxolotlQuantState = QuantState | LegacyQuantStateList | Tensor | null | undefined;

const LEGACY_ITEMS = '[absmax, shape, dtype, blocksize, [offset, state2], quant_type, datatype]';
const LEGACY_NESTED_ITEMS = '[absmax2, code2, blocksize2, nested, dtype, offset, state2]';
const ACCEPTED_STATES =
  `null, a QuantState, the 7-item legacy list of bitsandbytes 0.40.1–0.41.x ${LEGACY_ITEMS}, ` +
  "or the scale_inv Tensor of a 'float8_e4m3fn' weight";

/**
 * axolotl's `dequantize(W, quant_state, out)`:
 *
 * - `quantState` null or undefined: `W` is returned as it is (`out` is not used, as in axolotl).
 * - `W.dtype === 'float8_e4m3fn'`: `quantState` is the `scale_inv` tensor and the result is
 *   `dequantizeFp8(W, scaleInv)` in bfloat16, axolotl's default. bnbjs uses the true 128×128 (or
 *   per-tensor, per-row) layout of `dequantizeFp8`, not axolotl's ceil guess of the block size,
 *   which puts the wrong scale on some rows of partial edge blocks (docs/bit-exactness.md#fp8-block-dequantization).
 * - a 4-bit `QuantState`, nested or not: bitsandbytes' `dequantize4bit` with the state's own
 *   quant type and dtype. ⚠ axolotl decodes every nested state with the NF4 kernel (so a nested
 *   FP4 weight comes out wrong) and, on its feat/lora-fp8-kernels branch, writes bfloat16 data into
 *   the float32 buffer of a float32 state; bnbjs does neither, because both are bugs, not
 *   conventions any caller relies on. The nested absmax is rebuilt as axolotl and bnb do:
 *   `code2[q]·absmax2[i / blocksize2]`, then `+ offset`, two f32 roundings.
 * - the legacy list of bitsandbytes 0.40.1–0.41.x (`LegacyQuantStateList`, 7 items, its `state2`
 *   also 7 items). As in axolotl, only double-quantized lists are accepted: a list whose
 *   compressed statistics are null is an error (a TypeError in axolotl, a BnbError here). Unlike
 *   axolotl, the list's quant_type is used.
 * - the transposed-input convention: a packed weight with `W.shape[0] === 1` (bnb's packed
 *   `[k, 1]` weight passed as its transpose `[1, k]`, the same bytes) gives the transposed
 *   result, `[in, out]` for a `[out, in]` weight, as bnb's `dequantize_4bit` and axolotl do.
 *
 * `out` receives the result and must have its dtype and shape (else a BnbError). Without views,
 * the result of the transposed convention is a new row-major `[in, out]` tensor, so there `out`
 * must be `[in, out]` too (axolotl checks `out` against `[out, in]` and returns its transposed
 * view). axolotl ignores `out` for a non-nested state; bnbjs fills it.
 */
export function dequantize(W: Tensor, quantState?: AxolotlQuantState, opts: { out?: Tensor } = {}): Tensor {
  const o = checkOptions('dequantize', opts, ['out']);
  if (isTorchaoNF4(W)) {
    throw new BnbError(
      'E_ARGUMENT',
      'W is a torchao NF4Tensor (its components): dequantize takes a Tensor; use dequantizeWeight(W) for an NF4Tensor',
    );
  }
  const w = checkTensor('W', W);
  if (quantState === null || quantState === undefined) return W;
  const out = o.out as Tensor | undefined;
  if (w.dtype === 'float8_e4m3fn') {
    if (!isTensor(quantState)) {
      fail('E_STATE', 'quantState', quantState, "the scale_inv Tensor of the 'float8_e4m3fn' weight W");
    }
    return dequantizeFp8(w, quantState, out === undefined ? {} : { out });
  }
  if (QuantState.isState(quantState)) {
    if (guard('quantState.quantType', () => quantState.quantType) === null) {
      throw new BnbError(
        'E_STATE',
        'quantState is an 8-bit blockwise state (quantType null): dequantize takes 4-bit states; use dequantizeBlockwise for 8-bit ones',
      );
    }
    return dequantize4bit(w, quantState, { out });
  }
  if (guard('quantState', () => Array.isArray(quantState)))
    return dequantize4bit(w, fromLegacyList(readList('quantState', quantState)), { out });
  if (isTensor(quantState)) {
    throw new BnbError(
      'E_STATE',
      `quantState is a Tensor, which is the scale_inv of a 'float8_e4m3fn' weight, but W.dtype = ${show(w.dtype)}: expected ${ACCEPTED_STATES}`,
    );
  }
  fail('E_STATE', 'quantState', quantState, ACCEPTED_STATES);
}

/**
 * axolotl's `dequantize_weight(W, quant_state, transpose)` (docs/bit-exactness.md#axolotl-helpers). It accepts:
 *
 * - a torchao NF4Tensor as its components (`TorchaoNF4Tensor`) with no `quantState`: torchao's
 *   `get_original_weight()`, in the tensor's dtype with torch's rounding at every step;
 * - a bnb packed 4-bit weight with a `QuantState` or a legacy list, an fp8 weight with its
 *   `scale_inv`, or an unquantized weight with no state: as `dequantize`.
 *
 * There is no `isQuantTensorSubclass`: a torch type check has no meaning here, and the
 * NF4Tensor components are the only tensor-subclass form bnbjs reads.
 *
 * `transpose: true` returns the transposed `[in, out]` weight, always as a new row-major tensor:
 * - bnb packed weight: passed to `dequantize` as its transposed view, `[k, 1]` → `[1, k]` (the
 *   same bytes), so the transposed-input convention gives `[in, out]`. A packed weight must be
 *   2-D with a dimension of 1 (a `[1, k]` one becomes `[k, 1]`, as `W.t()` would).
 * - fp8 weight: dequantized, then transposed;
 * - unquantized weight (no state): transposed (`t()` semantics: at most 2-D, 0-D and 1-D unchanged
 *   but copied);
 * - NF4Tensor: its original weight, transposed.
 */
export function dequantizeWeight(W: Tensor | TorchaoNF4Tensor, quantState?: AxolotlQuantState, opts: { transpose?: boolean } = {}): Tensor {
  const o = checkOptions('dequantizeWeight', opts, ['transpose']);
  const transpose = checkBoolean('transpose', o.transpose ?? false);
  if (isTorchaoNF4(W)) {
    if (quantState !== null && quantState !== undefined) {
      fail('E_STATE', 'quantState', quantState, 'null or undefined with a torchao NF4Tensor W (its components carry the state)');
    }
    const weight = torchaoOriginalWeight(readNF4(W));
    return transpose ? transposed(weight) : weight;
  }
  const w = checkTensor('W', W);
  if (!transpose) return quantState === null || quantState === undefined ? (W as Tensor) : dequantize(w, quantState);
  if (quantState === null || quantState === undefined) return transposed(w);
  if (w.dtype === 'float8_e4m3fn') return transposed(dequantize(w, quantState));
  if (w.shape.length !== 2 || (w.shape[0] !== 1 && w.shape[1] !== 1)) {
    throw new BnbError(
      'E_SHAPE',
      `W.shape = ${show(w.shape)} is not accepted with transpose and a 4-bit state: expected bnb's packed [k, 1] layout (or its transpose [1, k])`,
    );
  }
  return dequantize({ ...w, shape: [w.shape[1]!, w.shape[0]!] }, quantState);
}

function fromLegacyList(list: unknown[]): QuantState {
  if (list.length !== 7) {
    const hint =
      list.length === 6 ? " (bitsandbytes' current QuantState list view has 6 items and does not fit this form; pass the QuantState)" : '';
    throw new BnbError(
      'E_STATE',
      `quantState is a list of ${list.length} items: expected the 7-item legacy list of bitsandbytes 0.40.1–0.41.x, ${LEGACY_ITEMS}${hint}`,
    );
  }
  const [absmax, shape, dtype, blocksize, compressed, quantType] = list;
  if (compressed === null || compressed === undefined) {
    throw new BnbError(
      'E_STATE',
      `quantState[4] (compressed statistics [offset, state2]) = ${show(compressed)}: the legacy list form is read for double-quantized (nested) states only, as in axolotl; pass a QuantState for a non-nested one`,
    );
  }
  const pair = guard('quantState[4]', () => Array.isArray(compressed)) ? readList('quantState[4]', compressed) : null;
  if (pair === null || pair.length !== 2) {
    fail('E_STATE', 'quantState[4] (compressed statistics)', compressed, 'a list [offset, state2]');
  }
  const [offset, state2] = pair;
  const nested = guard('quantState[4][1]', () => Array.isArray(state2)) ? readList('quantState[4][1]', state2) : null;
  if (nested === null || nested.length !== 7) {
    fail('E_STATE', 'quantState[4][1] (state2)', state2, `the 7-item legacy nested list ${LEGACY_NESTED_ITEMS}`);
  }
  const [absmax2, code2, blocksize2] = nested;
  const qAbsmax = checkTensor('quantState[0] (absmax)', absmax);
  if (qAbsmax.dtype !== 'uint8') fail('E_DTYPE', 'quantState[0] (absmax).dtype', qAbsmax.dtype, "'uint8' (the double-quantized absmax)");
  const a2 = checkTensor('quantState[4][1][0] (absmax2)', absmax2);
  if (a2.dtype !== 'float32') fail('E_DTYPE', 'quantState[4][1][0] (absmax2).dtype', a2.dtype, "'float32'");
  const c2 = checkTensor('quantState[4][1][1] (code2)', code2);
  if (!(FLOAT_DTYPES as readonly string[]).includes(dtype as string)) {
    fail('E_DTYPE', 'quantState[2] (dtype)', dtype, `one of ${FLOAT_DTYPES.join(', ')}`);
  }
  if (!Number.isSafeInteger(blocksize)) fail('E_BLOCKSIZE', 'quantState[3] (blocksize)', blocksize, 'an integer');
  if (!Number.isSafeInteger(blocksize2)) fail('E_BLOCKSIZE', 'quantState[4][1][2] (blocksize2)', blocksize2, 'an integer');
  const qt = checkQuantType('quantState[5] (quant_type)', quantType);
  return new QuantState({
    absmax: qAbsmax,
    shape: checkShape('quantState[1] (shape)', shape),
    dtype: dtype as FloatDType,
    blocksize: blocksize as number,
    quantType: qt,
    code: get4bitType(qt),
    offset: offsetValue(offset),
    state2: new QuantState({ absmax: a2, code: c2, blocksize: blocksize2 as number, dtype: 'float32' }),
  });
}

/** The legacy offset: a number or a one-element float tensor, as its f32 value. */
function offsetValue(offset: unknown): number {
  if (typeof offset === 'number') return Math.fround(offset);
  if (isTensor(offset)) {
    const t = checkTensor('quantState[4][0] (offset)', offset);
    if ((FLOAT_DTYPES as readonly string[]).includes(t.dtype) && t.data.length === 1) return Math.fround(toFloat32(t)[0]!);
  }
  fail('E_STATE', 'quantState[4][0] (offset)', offset, 'a number or a one-element float tensor');
}

function isTorchaoNF4(x: unknown): x is TorchaoNF4Tensor {
  return typeof x === 'object' && x !== null && !isTensor(x) && guard('W', () => 'quantized_data' in x);
}

/** A list's items, copied (the list read once; at most 64 items are read: the longest accepted list has 7). */
function readList(argument: string, list: unknown): unknown[] {
  return guard(
    argument,
    () => {
      const a = list as unknown[];
      const n = a.length;
      const out: unknown[] = [];
      for (let i = 0; i < Math.min(n, 64); i++) out.push(a[i]);
      if (n > 64) out.length = n; // only its length is reported
      return out;
    },
    'E_STATE',
  );
}

const NF4_KEYS = [
  'shape',
  'dtype',
  'block_size',
  'scaler_block_size',
  'n_blocks',
  'quantized_data',
  'quantized_scalers',
  'quantization_factor',
  'scaler_mean',
  'nf4',
] as const;

/** The components of a torchao NF4Tensor, each read once (absent ones left out). */
function readNF4(W: TorchaoNF4Tensor): TorchaoNF4Tensor {
  return guard('W', () => {
    const out: Record<string, unknown> = {};
    for (const k of NF4_KEYS) if (k in W) out[k] = W[k];
    return out as unknown as TorchaoNF4Tensor;
  });
}

/** `torch.Tensor.t()` materialised: a new row-major tensor (0-D and 1-D copied unchanged). */
function transposed(t: Tensor): Tensor {
  if (t.shape.length > 2) {
    throw new BnbError('E_SHAPE', `W.shape = ${show(t.shape)} cannot be transposed: expected at most 2 dimensions (as torch's t())`);
  }
  if (t.shape.length < 2) return tensor(t.data.slice(), [...t.shape], t.dtype);
  const [rows, cols] = t.shape as [number, number];
  const src = t.data,
    dst = allocate(t.dtype, src.length);
  const T = 32; // tiles keep both sides in cache
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c]!;
    }
  }
  return tensor(dst, [cols, rows], t.dtype);
}

/** Rounds a number to the nearest value of `dtype` (RNE), via f32 as torch's conversions do. */
function rounder(dtype: FloatDType): (x: number) => number {
  if (dtype === 'float16') return (x) => f16ToNumber(numberToF16(x));
  if (dtype === 'bfloat16') return (x) => bf16ToNumber(numberToBf16(x));
  return Math.fround;
}

function nf4Component(W: TorchaoNF4Tensor, key: keyof TorchaoNF4Tensor, dtype: string, length: number, what: string): Tensor {
  if (!(key in W)) throw new BnbError('E_STATE', `torchao NF4Tensor W is missing ${show(key)} (${what})`);
  const t = checkTensor(`W.${key}`, W[key]);
  if (t.dtype !== dtype) fail('E_DTYPE', `W.${key}.dtype`, t.dtype, `${show(dtype)} (${what})`);
  if (t.data.length !== length) {
    throw new BnbError(
      'E_SHAPE',
      `W.${key} has ${t.data.length} elements but W.shape ${show(W.shape)} with block_size ${W.block_size} and scaler_block_size ${W.scaler_block_size} needs ${length} (${what})`,
    );
  }
  return t;
}

/**
 * torchao's `NF4Tensor.get_original_weight()`, with torch's dtype semantics at each step
 * (D = the tensor's dtype; float16/bfloat16 arithmetic is computed in f32 and rounded to D):
 *
 *   scaler[b] = D( D(f32(quantized_scalers[b]) / f32(quantization_factor[b / scaler_block_size]))
 *                  + scaler_mean )                                      (dequantize_scalers)
 *   out[i]    = D( nf4[code_i] · scaler[i / block_size] )
 *
 * code_{2k} is the high nibble of quantized_data[k], code_{2k+1} the low nibble.
 */
function torchaoOriginalWeight(W: TorchaoNF4Tensor): Tensor {
  const shape = checkShape('W.shape', W.shape);
  if (shape.length > 2) fail('E_SHAPE', 'W.shape', shape, 'at most 2 dimensions (torchao NF4Tensor)');
  const dtype = W.dtype;
  if (!(FLOAT_DTYPES as readonly unknown[]).includes(dtype)) fail('E_DTYPE', 'W.dtype', dtype, `one of ${FLOAT_DTYPES.join(', ')}`);
  const bs = W.block_size,
    sbs = W.scaler_block_size;
  if (!Number.isSafeInteger(bs) || bs < 2 || bs % 2 !== 0) fail('E_BLOCKSIZE', 'W.block_size', bs, 'an even positive integer');
  if (!Number.isSafeInteger(sbs) || sbs < 1) fail('E_BLOCKSIZE', 'W.scaler_block_size', sbs, 'a positive integer');
  const n = numel(shape);
  if (n % bs !== 0) throw new BnbError('E_SHAPE', `W.shape ${show(shape)} holds ${n} elements, not a multiple of W.block_size = ${bs}`);
  const nBlocks = n / bs;
  if (W.n_blocks !== undefined && W.n_blocks !== nBlocks) fail('E_STATE', 'W.n_blocks', W.n_blocks, `${nBlocks} (numel / block_size)`);
  if (nBlocks % sbs !== 0) {
    throw new BnbError('E_SHAPE', `W has ${nBlocks} blocks, not a multiple of W.scaler_block_size = ${sbs}`);
  }
  const data = nf4Component(W, 'quantized_data', 'uint8', n / 2, 'packed nibbles').data as Uint8Array;
  const qs = nf4Component(W, 'quantized_scalers', 'int8', nBlocks, 'one per block').data as Int8Array;
  const qf = toFloat32(nf4Component(W, 'quantization_factor', dtype, nBlocks / sbs, 'one per scaler block, in W.dtype'));
  const table = toFloat32(nf4Component(W, 'nf4', dtype, 16, 'the 16-entry NF4 table, in W.dtype'));
  const round = rounder(dtype);
  let mean: number;
  if (typeof W.scaler_mean === 'number') mean = round(W.scaler_mean);
  else if (isTensor(W.scaler_mean)) mean = toFloat32(nf4Component(W, 'scaler_mean', dtype, 1, 'one value, in W.dtype'))[0]!;
  else fail('E_STATE', 'W.scaler_mean', W.scaler_mean, 'a number or a one-element tensor in W.dtype');

  // dequantize_scalers: int8 / D promotes to D; `.to(dtype)` is then a no-op; + the 0-dim mean in D.
  const scalers = new Float64Array(nBlocks);
  for (let b = 0; b < nBlocks; b++) {
    const s = round(Math.fround(qs[b]! / qf[Math.floor(b / sbs)]!));
    scalers[b] = round(Math.fround(s + mean));
  }
  // nf4[code] * scaler in D; the two halves interleave back to flat order.
  const out = allocate(dtype, n);
  const encode = dtype === 'float16' ? numberToF16 : dtype === 'bfloat16' ? numberToBf16 : Math.fround;
  const half = bs / 2;
  for (let k = 0; k < n / 2; k++) {
    const s = scalers[Math.floor(k / half)]!;
    const byte = data[k]!;
    out[2 * k] = encode(Math.fround(table[byte >> 4]! * s));
    out[2 * k + 1] = encode(Math.fround(table[byte & 15]! * s));
  }
  return tensor(out, shape, dtype);
}
