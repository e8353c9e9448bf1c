// CUDA kernels of the LLM.int8, GEMV and FP8 ops, on device tensors.
import { BnbError, fail, show } from '../../errors.js';
import { FLOAT_DTYPES, FloatDType } from '../../dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../../float16.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, numel, tensor, toFloat32 } from '../../tensor.js';
import { checkQuantType } from '../../maps.js';
import { BLOCKSIZES_4BIT, checkBlocksize, checkFloatDType, checkOptions } from '../../ops/validate.js';
import { int8VectorwiseQuantWasm } from '../../ops/int8.js';
import { WASM_DTYPE, WASM_QTYPE } from '../../wasm/exports.js';
import { layoutOf } from '../../ops/fp8.js';
import { cudaCall } from './addon.js';
import { cudaFor, dev } from './util.js';
import { DeviceTensor, deviceEmpty, toDevice } from './tensor.js';

const DT = WASM_DTYPE;

function matrix(argument: string, t: DeviceTensor): [number, number] {
  if (t.shape.length < 1 || numel(t.shape) === 0) fail('E_SHAPE', `${argument}.shape`, t.shape, 'at least one dimension and one element');
  const cols = t.shape[t.shape.length - 1]!;
  return [numel(t.shape) / cols, cols];
}

function stats(argument: string, t: unknown, length: number, what: string): DeviceTensor {
  const s = dev(argument, t, ['float32']);
  if (numel(s.shape) !== length) throw new BnbError('E_SHAPE', `${argument} has ${numel(s.shape)} entries but ${what} needs ${length}`);
  return s;
}

function threshold16(threshold: unknown): number {
  if (typeof threshold !== 'number' || !(threshold >= 0) || threshold === Infinity) fail('E_ARGUMENT', 'threshold', threshold, 'a finite number >= 0 (0: no outliers)');
  return f16ToNumber(numberToF16(threshold));
}

export function int8VectorwiseQuant(A: Tensor, opts: { threshold?: number; allowNonFinite?: boolean } = {}): [Tensor, Tensor, Tensor | null] {
  checkOptions('int8VectorwiseQuant', opts, ['threshold', 'allowNonFinite']);
  const a = dev('A', A, ['float16']);
  const t = threshold16(opts.threshold ?? 0);
  if (t > 0) {
    // Outlier columns (and zeroing them) are computed on the host for now.
    const [CB, s, oc] = int8VectorwiseQuantWasm(a.to('cpu'), opts);
    return [toDevice(CB, a.device), toDevice(s, a.device), oc];
  }
  const [rows, cols] = matrix('A', a);
  const cuda = cudaFor(a.device);
  if (!(opts.allowNonFinite ?? false)) {
    const i = cudaCall(() => cuda.firstNonFinite(a.ptr, rows * cols, DT.float16));
    if (i >= 0) throw new BnbError('E_NON_FINITE', `A has a non-finite value at flat index ${i}: quantization needs finite input; pass allowNonFinite: true to reproduce the bitsandbytes CUDA behaviour`);
  }
  const cb = deviceEmpty('int8', [...a.shape], a.device), s = deviceEmpty('float32', [rows], a.device);
  cudaCall(() => cuda.int8VectorwiseQuant(a.ptr, rows, cols, 0, cb.ptr, s.ptr));
  return [cb, s, null];
}

export function int8DoubleQuant(A: Tensor, opts: { threshold?: number; allowNonFinite?: boolean } = {}): [Tensor, Tensor, Tensor, Tensor, Tensor | null] {
  const [CA, rowStats, outliers] = int8VectorwiseQuant(A, opts);
  const a = dev('A', A, ['float16']);
  const [rows, cols] = matrix('A', a);
  const cuda = cudaFor(a.device);
  const cat = deviceEmpty('int8', [...a.shape], a.device), colStats = deviceEmpty('float32', [cols], a.device);
  cudaCall(() => cuda.int8ColumnQuant(a.ptr, rows, cols, threshold16(opts.threshold ?? 0), cat.ptr, colStats.ptr));
  return [CA, cat, rowStats, colStats, outliers];
}

export function int8VectorwiseDequant(A: Tensor, statsT: Tensor): Tensor {
  const a = dev('A', A, ['int8']);
  const [rows, cols] = matrix('A', a);
  const s = stats('stats', statsT, rows, `A with ${rows} rows`);
  const cuda = cudaFor(a.device);
  const out = deviceEmpty('float32', [...a.shape], a.device);
  cudaCall(() => cuda.int8VectorwiseDequant(a.ptr, rows, cols, s.ptr, out.ptr));
  return out;
}

export function int8LinearMatmul(A: Tensor, B: Tensor): Tensor {
  const a = dev('A', A, ['int8']), b = dev('B', B, ['int8']);
  if (b.shape.length !== 2) fail('E_SHAPE', 'B.shape', b.shape, 'a 2-D [N, K] matrix');
  const [M, K] = matrix('A', a);
  const [N, KB] = b.shape as [number, number];
  if (K !== KB) throw new BnbError('E_SHAPE', `int8LinearMatmul computes A @ B^T: A.shape = ${show(a.shape)} and B.shape = ${show(b.shape)} have inner dimensions ${K} and ${KB}`);
  const cuda = cudaFor(a.device);
  const out = deviceEmpty('int32', [...a.shape.slice(0, -1), N], a.device);
  cudaCall(() => cuda.int8LinearMatmul(a.ptr, M, K, b.ptr, N, out.ptr));
  return out;
}

const BIAS_KIND: Record<FloatDType, number> = { float16: 1, float32: 2, bfloat16: 3 };

export function int8MmDequant(A: Tensor, rowStats: Tensor, colStats: Tensor, opts: { bias?: Tensor | null; dtype?: FloatDType } = {}): Tensor {
  checkOptions('int8MmDequant', opts, ['bias', 'dtype']);
  const a = dev('A', A, ['int32']);
  const [rows, cols] = matrix('A', a);
  const rs = stats('rowStats', rowStats, rows, `A with ${rows} rows`), cs = stats('colStats', colStats, cols, `A with ${cols} columns`);
  const dtype = checkFloatDType('dtype', opts.dtype ?? 'float16', 'int8MmDequant');
  const bias = opts.bias ? dev('bias', opts.bias, FLOAT_DTYPES) : null;
  if (bias && numel(bias.shape) !== cols) throw new BnbError('E_SHAPE', `bias has ${numel(bias.shape)} entries but A has ${cols} columns`);
  const cuda = cudaFor(a.device);
  const out = deviceEmpty(dtype, [...a.shape], a.device);
  cudaCall(() => cuda.int8MmDequant(a.ptr, rows, cols, rs.ptr, cs.ptr, bias?.ptr ?? 0, bias ? BIAS_KIND[bias.dtype as FloatDType] : 0, DT[dtype], out.ptr));
  return out;
}

export function gemv4bit(A: Tensor, B: Tensor, state: QuantState, opts: { bias?: Tensor | null } = {}): Tensor {
  const a = dev('A', A, FLOAT_DTYPES), b = dev('B', B);
  if (!(state instanceof QuantState)) throw new BnbError('E_STATE', `state = ${show(state)} is not accepted: gemv4bit() requires the QuantState from quantize4bit()`);
  const qt = checkQuantType('state.quantType', state.quantType);
  const blocksize = checkBlocksize('state.blocksize', state.blocksize, BLOCKSIZES_4BIT);
  if (state.shape === null || state.shape.length !== 2) fail('E_STATE', 'state.shape', state.shape, 'the 2-D [out_features, in_features] shape of the quantized weight');
  const [N, K] = state.shape as [number, number];
  if (a.shape[a.shape.length - 1] !== K) throw new BnbError('E_SHAPE', `A.shape = ${show(a.shape)} does not match the weight: A's last dimension must be ${K}`);
  const M = numel(a.shape.slice(0, -1)); // not numel / K: K may be 0 (the result is then the bias)
  const cuda = cudaFor(a.device);
  const temps: DeviceTensor[] = [];
  try {
    let absmax = dev('state.absmax', state.absmax);
    if (state.state2) {
      // de-nest with the dequantize path (the same f32 values as WebAssembly)
      const n = N * K;
      absmax = deviceEmpty('float32', [Math.ceil(n / blocksize)], a.device);
      temps.push(absmax);
      const s2 = state.state2;
      const code2 = toDevice(tensor(Float32Array.from(toFloat32(s2.code)), [256]), a.device) as DeviceTensor;
      temps.push(code2);
      cudaCall(() => cuda.dequantizeBlockwise((state.absmax as DeviceTensor).ptr, numel(state.absmax.shape), s2.blocksize, code2.ptr, (s2.absmax as DeviceTensor).ptr, DT.float32, absmax.ptr));
      cudaCall(() => cuda.addScalarF32(absmax.ptr, numel(state.absmax.shape), state.offset!));
    }
    let biasPtr = 0;
    if (opts.bias) {
      const bias = opts.bias.device === 'cpu' ? opts.bias : opts.bias.to!('cpu');
      if (numel(bias.shape) !== N) throw new BnbError('E_SHAPE', `bias has ${numel(bias.shape)} entries but the weight has ${N} output features`);
      const f = toDevice(tensor(toFloat32(bias), [N]), a.device) as DeviceTensor;
      temps.push(f);
      biasPtr = f.ptr;
    }
    const out = deviceEmpty(a.dtype, [...a.shape.slice(0, -1), N], a.device);
    cudaCall(() => cuda.gemv4bit(a.ptr, M, K, DT[a.dtype as FloatDType], b.ptr, N, absmax.ptr, blocksize, WASM_QTYPE[qt], biasPtr, DT[a.dtype as FloatDType], out.ptr));
    return out;
  } finally {
    for (const t of temps) t.dispose();
  }
}

export function dequantizeFp8(W: Tensor, scaleInv: Tensor, opts: { dtype?: FloatDType; blockSize?: number } = {}): Tensor {
  checkOptions('dequantizeFp8', opts, ['dtype', 'blockSize']);
  const w = dev('W', W, ['float8_e4m3fn']);
  const dtype = checkFloatDType('dtype', opts.dtype ?? 'bfloat16', 'dequantizeFp8');
  const b = opts.blockSize ?? 128;
  const s = scaleInv.device === 'cpu' ? scaleInv : scaleInv.to!('cpu');
  const round = dtype === 'float16' ? (x: number) => f16ToNumber(numberToF16(x)) : dtype === 'bfloat16' ? (x: number) => bf16ToNumber(numberToBf16(x)) : (x: number) => x;
  const scales = toFloat32(s).map(round);
  if (!Number.isSafeInteger(b) || b < 1) fail('E_ARGUMENT', 'blockSize', b, 'a positive integer');
  const { rows, cols, scaleCols, blockRows, blockCols } = layoutOf(w, s, b);
  const cuda = cudaFor(w.device);
  const scaleDev = toDevice(tensor(scales, [scales.length]), w.device) as DeviceTensor;
  try {
    const out = deviceEmpty(dtype, [...w.shape], w.device);
    cudaCall(() => cuda.dequantizeFp8(w.ptr, rows, cols, 0, scaleDev.ptr, scaleCols, blockRows, blockCols, DT[dtype], out.ptr));
    return out;
  } finally {
    scaleDev.dispose();
  }
}
