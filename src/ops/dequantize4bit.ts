import { BnbError, fail, show } from '../errors.js';
import { guard, isPlainObject, readOptions } from '../args.js';
import { dispatch, registerKernel } from '../backend/registry.js';
import { DType, FloatDType, allocate } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, checkShape, numel, tensor } from '../tensor.js';
import { QuantType, checkQuantType } from '../maps.js';
import { DTYPE_ID, QTYPE_ID } from '../backend/abi.js';
import { chunkElements } from '../wasm/runtime.js';
import { StateFields, absmaxF32, checkStateAbsmax, checkedInputs, readState, stateTensors } from './blockwise.js';
import { absmaxSpan, byteView } from './chunk.js';
import { kernelsFor, runChunks } from '../threads/parallel.js';
import {
  BLOCKSIZES_4BIT, checkBlocksize, checkCode4bit, checkFloatDType, checkOptions, checkOptionsObject, checkOutput, checkTensorArg, emptyTensor, itemBytes,
} from './validate.js';

export interface Dequantize4bitOptions {
  absmax: Tensor;
  shape: number[];
  blocksize?: number;
  quantType?: QuantType;
  dtype?: DType;
}

/**
 * The kernel: n values dtype(code[q] * absmax[block]) from packed nibbles (any
 * view, read as bytes) into `out` (any view, written as bytes).
 */
export function dequantize4bitRaw(
  packed: ArrayBufferView, n: number, absmax: Float32Array, blocksize: number, quantType: QuantType, dtype: FloatDType,
  out: ArrayBufferView = allocate(dtype, n), // typed: a Uint8Array view cannot pass 2^32 bytes
): ArrayBufferView {
  const size = dtype === 'float32' ? 4 : 2;
  const { m, threads } = kernelsFor(n, packed, out, absmax);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    slot: [Math.ceil(chunk / 2), Math.ceil(chunk / blocksize) * 4, chunk * size],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = m.place(p[0]!, byteView(packed, start / 2, Math.ceil(len / 2)));
      p[1] = m.place(p[1]!, absmaxSpan(absmax, start, len, blocksize));
      p[2] = m.target(p[2]!, out, start * size, len * size);
    },
    calls: (j, [pIn, pAbs, pOut]) => [['dequantize4bit', pIn!, span(j)[1], blocksize, QTYPE_ID[quantType], pAbs!, DTYPE_ID[dtype], pOut!]],
    store(j, [, , pOut]) {
      const [start, len] = span(j);
      m.read(pOut!, out, start * size, len * size);
    },
  });
  return out;
}

/** [rows, cols] elements of 2 or 4 bytes -> [cols, rows]. */
function transpose2d(data: ArrayBufferView, rows: number, cols: number, size: number, out: ArrayBufferView): void {
  const T = size === 4 ? Uint32Array : Uint16Array;
  const src = new T(data.buffer as ArrayBuffer, data.byteOffset, rows * cols);
  const dst = new T(out.buffer as ArrayBuffer, out.byteOffset, rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c]!;
  }
}

/**
 * bnb's dequantize_4bit, with a QuantState or with `{ absmax, shape, blocksize,
 * quantType, dtype }`. Any storage dtype is read as its bytes. As in bnb, a
 * packed tensor with shape[0] == 1 (a caller passing `qB.t()`) gets the
 * transposed result. `out` (optional) receives the result, like bnb's out=.
 */
export function dequantize4bit(
  A: Tensor, stateOrOptions: QuantState | Dequantize4bitOptions, opts: { out?: Tensor } = {},
): Tensor {
  checkOptionsObject('dequantize4bit', opts);
  return dispatch('dequantize4bit', { A, ...stateTensors(stateOrOptions), out: guard('dequantize4bit option out', () => opts.out) })(A, stateOrOptions, opts);
}

/** dequantize4bit's arguments, checked (every backend's kernel starts here). */
export function checkDequantize4bit(A: Tensor, stateOrOptions: QuantState | Dequantize4bitOptions, opts: { out?: Tensor } = {}) {
  const o = checkOptions('dequantize4bit', opts, ['out']);
  const packed = checkTensorArg('A', A);
  let state: StateFields;
  if (QuantState.isState(stateOrOptions)) state = readState('state', stateOrOptions);
  else {
    const f = isPlainObject('state', stateOrOptions) ? readOptions('dequantize4bit', stateOrOptions, ['absmax', 'shape', 'blocksize', 'quantType', 'dtype']) : null;
    if (f === null || f.absmax === undefined || f.shape === undefined) {
      throw new BnbError('E_STATE', 'dequantize4bit requires a QuantState or both absmax and shape');
    }
    state = {
      absmax: f.absmax, shape: f.shape, blocksize: f.blocksize ?? 64, quantType: f.quantType ?? 'fp4', dtype: f.dtype ?? 'float32',
      code: tensor(new Float32Array(16), [16], 'float32'), // not read: the kernels know the tables
      offset: null, state2: null,
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
    throw new BnbError('E_SHAPE', `A.shape = ${show(packed.shape)} asks for the transposed result, which needs a 2-D shape, got ${show(shape)}`);
  }
  const outShape = transposed ? [shape[1]!, shape[0]!] : shape;
  const out = checkOutput(o.out, dtype, outShape, { A: packed, ...checkedInputs(absmax) });
  return { A: packed, n, shape, quantType, blocksize, dtype, absmax, transposed, outShape, out, outTensor: o.out as Tensor | undefined };
}

/** The WebAssembly kernel of dequantize4bit. */
export function dequantize4bitWasm(
  A: Tensor, stateOrOptions: QuantState | Dequantize4bitOptions, opts: { out?: Tensor } = {},
): Tensor {
  const { A: packed, n, shape, quantType, blocksize, dtype, absmax, transposed, outShape, out, outTensor } = checkDequantize4bit(A, stateOrOptions, opts);
  const result = out ?? emptyTensor(dtype, outShape);
  if (!transposed) {
    dequantize4bitRaw(packed.data, n, absmaxF32(absmax), blocksize, quantType, dtype, result.data);
  } else {
    const rows = dequantize4bitRaw(packed.data, n, absmaxF32(absmax), blocksize, quantType, dtype);
    transpose2d(rows, shape[0]!, shape[1]!, dtype === 'float32' ? 4 : 2, result.data);
  }
  return out ? outTensor! : result; // the caller's out (its checked snapshot was written)
}

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

registerKernel('dequantize4bit', 'cpu', dequantize4bitWasm);
