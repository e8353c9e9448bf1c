import { BnbError, fail } from '../errors.js';
import { readOptions } from '../args.js';
import { dispatch, registerKernel } from '../backend/registry.js';
import { DType, FloatDType, itemsize, reinterpret } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, numel, tensor } from '../tensor.js';
import { QuantType, checkQuantType, get4bitType } from '../maps.js';
import { DTYPE_ID, QTYPE_ID } from '../backend/abi.js';
import { chunkElements } from '../wasm/runtime.js';
import { compressAbsmax } from './blockwise.js';
import { FiniteCheck } from './finite.js';
import { absmaxSpan, checkFinite, finiteCall, loadFloatChunk } from './chunk.js';
import { kernelsFor, runChunks } from '../threads/parallel.js';
import { BLOCKSIZES_4BIT, checkBlocksize, checkBoolean, checkFloatInput, checkOptions, checkOptionsObject } from './validate.js';

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

/** The kernel: packed nibbles (ceil(n/2) bytes) and f32 absmax of n elements (src: elements of dtype). */
export function quantize4bitRaw(
  src: ArrayBufferView, n: number, dtype: FloatDType, blocksize: number, quantType: QuantType,
  finite: FiniteCheck | null = null,
): { packed: Uint8Array; absmax: Float32Array } {
  const size = dtype === 'float32' ? 4 : 2;
  const packed = new Uint8Array(Math.ceil(n / 2));
  const absmax = new Float32Array(Math.ceil(n / blocksize));
  const { m, threads } = kernelsFor(n, src);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    slot: [chunk * size, Math.ceil(chunk / 2), Math.ceil(chunk / blocksize) * 4],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = loadFloatChunk(m, p[0]!, src, start, len, dtype);
    },
    calls(j, [pIn, pOut, pAbs]) {
      const len = span(j)[1];
      return [
        ...finiteCall(pIn!, len, dtype, finite),
        ['quantize4bit', pIn!, len, DTYPE_ID[dtype], blocksize, QTYPE_ID[quantType], pOut!, pAbs!, m.nf4Ptr],
      ];
    },
    store(j, [, pOut, pAbs], results) {
      const [start, len] = span(j);
      checkFinite(finite, results, start);
      m.read(pOut!, packed, start / 2, Math.ceil(len / 2));
      absmaxSpan(absmax, start, len, blocksize).set(m.bytes(pAbs!, Math.ceil(len / blocksize) * 4));
    },
  });
  return { packed, absmax };
}

/**
 * bnb's quantize_4bit. Returns the packed nibbles (first element in the high
 * nibble) as a [(n+1)/(2*itemsize), 1] tensor of `quantStorage` (a
 * reinterpretation of the same bytes) and the QuantState.
 */
export function quantize4bit(A: Tensor, opts: Quantize4bitOptions = {}): [Tensor, QuantState] {
  checkOptionsObject('quantize4bit', opts);
  return dispatch('quantize4bit', { A })(A, opts);
}

/** quantize4bit's arguments, checked and with their defaults (every backend's kernel starts here). */
export function checkQuantize4bit(A: Tensor, opts: Quantize4bitOptions = {}) {
  const o = checkOptions('quantize4bit', opts, ['blocksize', 'compressStatistics', 'quantType', 'quantStorage', 'allowNonFinite']) as Quantize4bitOptions;
  const { blocksize = 64, compressStatistics = false, quantType = 'fp4', quantStorage = 'uint8', allowNonFinite = false } = o;
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
    throw new BnbError('E_STORAGE', `quantStorage = '${quantStorage}' needs the ${nbytes} packed bytes of ${n} elements to be a multiple of its itemsize ${k}`);
  }
  return { A: a, n, blocksize, compressStatistics, quantType, quantStorage, allowNonFinite };
}

/** The packed tensor's shape: [(n+1)/(2*itemsize), 1] elements of the storage dtype. */
export function packedShape(n: number, quantStorage: DType): number[] {
  return [Math.floor((n + 1) / (2 * itemsize(quantStorage))), 1];
}

/** The WebAssembly kernel of quantize4bit. */
export function quantize4bitWasm(A: Tensor, opts: Quantize4bitOptions = {}): [Tensor, QuantState] {
  const { A: a, n, blocksize, compressStatistics, quantType, quantStorage, allowNonFinite } = checkQuantize4bit(A, opts);
  const r = quantize4bitRaw(a.data, n, a.dtype, blocksize, quantType, allowNonFinite ? null : { argument: 'A', tensor: a });
  const common = { shape: [...a.shape], code: get4bitType(quantType), blocksize, quantType, dtype: a.dtype };
  const state = compressStatistics
    ? new QuantState({ ...common, ...compressAbsmax(r.absmax, NESTED_BLOCKSIZE_4BIT) })
    : new QuantState({ ...common, absmax: tensor(r.absmax, [r.absmax.length], 'float32') });
  const packed = tensor(reinterpret(r.packed, quantStorage), packedShape(n, quantStorage), quantStorage);
  return [packed, state];
}

type Quantize4bitTypedOptions = Omit<Quantize4bitOptions, 'quantType'>;

export function quantizeNf4(A: Tensor, opts: Quantize4bitTypedOptions = {}): [Tensor, QuantState] {
  return quantize4bit(A, { ...readOptions('quantizeNf4', opts, TYPED_OPTIONS), quantType: 'nf4' });
}

export function quantizeFp4(A: Tensor, opts: Quantize4bitTypedOptions = {}): [Tensor, QuantState] {
  return quantize4bit(A, { ...readOptions('quantizeFp4', opts, TYPED_OPTIONS), quantType: 'fp4' });
}

const TYPED_OPTIONS = ['blocksize', 'compressStatistics', 'quantStorage', 'allowNonFinite'];

registerKernel('quantize4bit', 'cpu', quantize4bitWasm);
