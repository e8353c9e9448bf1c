// quantize4bit: its declaration, its check, and the public functions.
import { BnbError, fail } from '../errors.js';
import { readOptions } from '../args.js';
import { defineOp, outputs } from './registry.js';
import { DType, itemsize } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, numel } from '../tensor.js';
import { QuantType, checkQuantType } from '../maps.js';
import { BLOCKSIZES_4BIT, checkBlocksize, checkBoolean, checkFloatInput } from './validate.js';

export const QUANT_STORAGES: readonly DType[] = ['uint8', 'float16', 'bfloat16', 'float32'];
/** bnb's nested blocksize for 4-bit absmax. */
export const NESTED_BLOCKSIZE_4BIT = 256;

export interface Quantize4bitOptions {
  blocksize?: number;
  compressStatistics?: boolean;
  quantType?: QuantType;
  quantStorage?: DType;
  allowNonFinite?: boolean;
}

/**
 * bnb's quantize_4bit. Returns the packed nibbles (first element in the high
 * nibble) as a [(n+1)/(2*itemsize), 1] tensor of `quantStorage` (a
 * reinterpretation of the same bytes) and the QuantState.
 */
export function quantize4bit(A: Tensor, opts: Quantize4bitOptions = {}): [Tensor, QuantState] {
  return quantize4bitOp.call(A, opts);
}

/** quantize4bit's arguments (the options copied), checked and with their defaults: what every backend's kernel gets. */
export function checkQuantize4bit(A: Tensor, opts: Quantize4bitOptions) {
  const { blocksize = 64, compressStatistics = false, quantType = 'fp4', quantStorage = 'uint8', allowNonFinite = false } = opts;
  const a = checkFloatInput('A', A, 'Blockwise 4bit quantization');
  checkBlocksize('blocksize', blocksize, BLOCKSIZES_4BIT);
  checkQuantType('quantType', quantType);
  checkBoolean('compressStatistics', compressStatistics);
  checkBoolean('allowNonFinite', allowNonFinite);
  if (!QUANT_STORAGES.includes(quantStorage)) fail('E_DTYPE', 'quantStorage', quantStorage, QUANT_STORAGES.join(', '));
  const n = numel(a.shape);
  const k = itemsize(quantStorage);
  const nbytes = Math.ceil(n / 2);
  if (nbytes % k !== 0) {
    throw new BnbError(
      'E_STORAGE',
      `quantStorage = '${quantStorage}' needs the ${nbytes} packed bytes of ${n} elements to be a multiple of its itemsize ${k}`,
    );
  }
  return { A: a, n, blocksize, compressStatistics, quantType, quantStorage, allowNonFinite };
}

/** The packed tensor's shape: [(n+1)/(2*itemsize), 1] elements of the storage dtype. */
export function packedShape(n: number, quantStorage: DType): number[] {
  return [Math.floor((n + 1) / (2 * itemsize(quantStorage))), 1];
}

export const quantize4bitOp = defineOp({
  name: 'quantize4bit',
  inputs: ['A'],
  attrs: { blocksize: 'value', compressStatistics: 'value', quantType: 'value', quantStorage: 'value', allowNonFinite: 'value' },
  check: checkQuantize4bit,
  outputs: outputs<[Tensor, QuantState]>('packed', 'state'),
  output: 'new',
});

type Quantize4bitTypedOptions = Omit<Quantize4bitOptions, 'quantType'>;

export function quantizeNf4(A: Tensor, opts: Quantize4bitTypedOptions = {}): [Tensor, QuantState] {
  return quantize4bit(A, { ...readOptions('quantizeNf4', opts, TYPED_OPTIONS), quantType: 'nf4' });
}

export function quantizeFp4(A: Tensor, opts: Quantize4bitTypedOptions = {}): [Tensor, QuantState] {
  return quantize4bit(A, { ...readOptions('quantizeFp4', opts, TYPED_OPTIONS), quantType: 'fp4' });
}

const TYPED_OPTIONS = ['blocksize', 'compressStatistics', 'quantStorage', 'allowNonFinite'];
