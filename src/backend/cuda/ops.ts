// The CUDA kernels of every op, on device tensors: inputs and outputs stay in device
// memory. Validation mirrors the WebAssembly ops; the kernels give the same bits.
import { BnbError, fail, show } from '../../errors.js';
import { DType, FLOAT_DTYPES, FloatDType, itemsize } from '../../dtypes.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, checkShape, numel, tensor, toFloat32 } from '../../tensor.js';
import { QuantType, checkQuantType, defaultDynamicMap, get4bitType } from '../../maps.js';
import { meanF32 } from '../../ops/stats.js';
import { checkCode } from '../../ops/blockwise.js';
import { QUANT_STORAGES, NESTED_BLOCKSIZE_4BIT } from '../../ops/quantize4bit.js';
import { BLOCKSIZES_4BIT, BLOCKSIZES_8BIT, checkBlocksize, checkBoolean, checkFloatDType, checkOptions } from '../../ops/validate.js';
import { WASM_DTYPE, WASM_QTYPE } from '../../wasm/exports.js';
import { CudaAddon, cudaCall } from './addon.js';
import { cudaFor, dev } from './util.js';
import { DeviceTensor, deviceEmpty, isDeviceTensor, toDevice } from './tensor.js';

const DT = WASM_DTYPE;

type NestedKernel = (packed: number, n: number, blocksize: number, qtype: number, qabsmax: number, code2: number, absmax2: number, blocksize2: number, offset: number, dtype: number, out: number) => void;
const QT = WASM_QTYPE;

/** Temporary device buffers freed when the op ends, whatever happens. */
function withTemps<T>(f: (temp: (t: DeviceTensor) => DeviceTensor) => T): T {
  const temps: DeviceTensor[] = [];
  try {
    return f((t) => (temps.push(t), t));
  } finally {
    for (const t of temps) t.dispose();
  }
}

function upload(t: Tensor, device: string): DeviceTensor {
  return toDevice(t, device) as DeviceTensor;
}

function nonFinite(cuda: CudaAddon, A: DeviceTensor, allow: boolean): void {
  if (allow) return;
  const i = cudaCall(() => cuda.firstNonFinite(A.ptr, numel(A.shape), DT[A.dtype as FloatDType]));
  if (i < 0) return;
  const one = new Uint8Array(itemsize(A.dtype));
  cudaCall(() => cuda.copyDtoH(one, A.ptr + i * one.length));
  const host = tensor(A.dtype === 'float32' ? new Float32Array(one.buffer) : new Uint16Array(one.buffer), [1], A.dtype);
  throw new BnbError('E_NON_FINITE', `A has a non-finite value (${toFloat32(host)[0]}) at flat index ${i}: quantization needs finite input; pass allowNonFinite: true to reproduce the bitsandbytes CUDA behaviour`);
}

function floatInput(A: unknown, what: string): DeviceTensor {
  const a = dev('A', A);
  if (!(FLOAT_DTYPES as readonly string[]).includes(a.dtype)) {
    throw new BnbError('E_DTYPE', `A.dtype = ${show(a.dtype)} is not accepted: ${what} only supports 16/32-bit floats (${FLOAT_DTYPES.join(', ')})`);
  }
  if (numel(a.shape) === 0) throw new BnbError('E_SHAPE', `A.shape = ${show(a.shape)} has no elements: nothing to quantize`);
  return a;
}

/** Nested statistics on the device; the offset is the exact mean, computed on the host from the (small) absmax. */
function compress(cuda: CudaAddon, absmax: DeviceTensor, blocksize: number, temp: (t: DeviceTensor) => DeviceTensor) {
  const nb = numel(absmax.shape);
  const offset = meanF32(absmax.to('cpu').data as Float32Array);
  const centered = temp(deviceEmpty('float32', [nb], absmax.device));
  cudaCall(() => cuda.subtractScalarF32(absmax.ptr, nb, offset, centered.ptr));
  const code = defaultDynamicMap();
  const codeDev = temp(upload(tensor(code.slice(), [256]), absmax.device));
  const q = deviceEmpty('uint8', [nb], absmax.device);
  const absmax2 = deviceEmpty('float32', [Math.ceil(nb / blocksize)], absmax.device);
  cudaCall(() => cuda.quantizeBlockwise(centered.ptr, nb, DT.float32, blocksize, codeDev.ptr, q.ptr, absmax2.ptr));
  const state2 = new QuantState({ absmax: absmax2, code: tensor(code.slice(), [256]), blocksize, dtype: 'float32' });
  return { absmax: q as Tensor, offset, state2 };
}

/** f32 absmax of a state on the device, de-nested if needed (a temporary). */
function stateAbsmax(cuda: CudaAddon, state: QuantState, nblocks: number, device: string, temp: (t: DeviceTensor) => DeviceTensor): DeviceTensor {
  const s2 = state.state2;
  const a = dev('state.absmax', state.absmax, s2 ? ['uint8'] : ['float32']);
  if (numel(a.shape) !== nblocks) throw new BnbError('E_STATE', `state.absmax has ${numel(a.shape)} entries but the data needs ${nblocks} (one per block)`);
  if (!s2) return a;
  if (typeof state.offset !== 'number') fail('E_STATE', 'state.offset', state.offset, 'a number for a nested state');
  checkBlocksize('state.state2.blocksize', s2.blocksize, BLOCKSIZES_8BIT);
  const code2 = temp(upload(tensor(checkCode('state.state2.code', s2.code).slice(), [256]), device));
  const a2 = dev('state.state2.absmax', s2.absmax, ['float32']);
  const out = temp(deviceEmpty('float32', [nblocks], device));
  cudaCall(() => cuda.dequantizeBlockwise(a.ptr, nblocks, s2.blocksize, code2.ptr, a2.ptr, DT.float32, out.ptr));
  cudaCall(() => cuda.addScalarF32(out.ptr, nblocks, state.offset!));
  return out;
}

function output(out: unknown, dtype: DType, shape: number[], device: string): DeviceTensor {
  if (out === undefined) return deviceEmpty(dtype, shape, device);
  const o = dev('out', out, [dtype]);
  if (o.device !== device) throw new BnbError('E_DEVICE', `out is on ${o.device} but the inputs are on ${device}`);
  if (o.shape.length !== shape.length || o.shape.some((d, i) => d !== shape[i])) fail('E_SHAPE', 'out.shape', o.shape, show(shape));
  return o;
}

export function quantize4bit(A: Tensor, opts: Record<string, unknown> = {}): [Tensor, QuantState] {
  checkOptions('quantize4bit', opts, ['blocksize', 'compressStatistics', 'quantType', 'quantStorage', 'allowNonFinite']);
  const { blocksize = 64, compressStatistics = false, quantType = 'fp4', quantStorage = 'uint8', allowNonFinite = false } = opts as Record<string, never>;
  const a = floatInput(A, 'Blockwise 4bit quantization');
  checkBlocksize('blocksize', blocksize, BLOCKSIZES_4BIT);
  const qt = checkQuantType('quantType', quantType);
  checkBoolean('compressStatistics', compressStatistics);
  checkBoolean('allowNonFinite', allowNonFinite);
  if (!QUANT_STORAGES.includes(quantStorage)) fail('E_DTYPE', 'quantStorage', quantStorage, QUANT_STORAGES.join(', '));
  const n = numel(a.shape), k = itemsize(quantStorage as DType);
  if (Math.ceil(n / 2) % k !== 0) {
    throw new BnbError('E_STORAGE', `quantStorage = '${quantStorage}' needs the ${Math.ceil(n / 2)} packed bytes of ${n} elements to be a multiple of its itemsize ${k}`);
  }
  const cuda = cudaFor(a.device);
  nonFinite(cuda, a, allowNonFinite);
  return withTemps((temp) => {
    const packed = deviceEmpty(quantStorage as DType, [Math.floor((n + 1) / (2 * k)), 1], a.device);
    const absmax = deviceEmpty('float32', [Math.ceil(n / blocksize)], a.device);
    cudaCall(() => cuda.quantize4bit(a.ptr, n, DT[a.dtype as FloatDType], blocksize, QT[qt], packed.ptr, absmax.ptr));
    const common = { shape: [...a.shape], code: get4bitType(qt), blocksize, quantType: qt, dtype: a.dtype };
    if (!compressStatistics) return [packed, new QuantState({ ...common, absmax })];
    const nested = compress(cuda, temp(absmax), NESTED_BLOCKSIZE_4BIT, temp);
    return [packed, new QuantState({ ...common, ...nested })];
  });
}

function normaliseState4bit(state: unknown): QuantState {
  if (state instanceof QuantState) return state;
  const o = state as { absmax?: Tensor; shape?: number[]; blocksize?: number; quantType?: QuantType; dtype?: DType };
  if (typeof o !== 'object' || o === null || o.absmax === undefined || o.shape === undefined) {
    throw new BnbError('E_STATE', 'dequantize4bit requires a QuantState or both absmax and shape');
  }
  return new QuantState({ absmax: o.absmax, shape: o.shape, blocksize: o.blocksize ?? 64, quantType: o.quantType ?? 'fp4', dtype: o.dtype ?? 'float32', code: tensor(new Float32Array(16), [16]) });
}

export function dequantize4bit(A: Tensor, stateOrOptions: unknown, { out }: { out?: Tensor } = {}): Tensor {
  const packed = dev('A', A);
  const state = normaliseState4bit(stateOrOptions);
  const qt = checkQuantType('quantType', state.quantType);
  const blocksize = checkBlocksize('blocksize', state.blocksize, BLOCKSIZES_4BIT);
  const dtype = checkFloatDType('dtype', state.dtype, 'Blockwise 4bit dequantization');
  if (state.shape === null) fail('E_STATE', 'state.shape', state.shape, 'the shape of the quantized tensor');
  const shape = checkShape('shape', state.shape);
  const n = numel(shape);
  if (packed.byteLength < Math.ceil(n / 2)) throw new BnbError('E_SHAPE', `A holds ${packed.byteLength} bytes but shape ${show(shape)} needs ${Math.ceil(n / 2)} packed bytes`);
  const cuda = cudaFor(packed.device);
  const transposed = packed.shape[0] === 1 && shape.length >= 2;
  if (transposed && shape.length > 2) throw new BnbError('E_SHAPE', `A.shape = ${show(packed.shape)} asks for the transposed result, which needs a 2-D shape, got ${show(shape)}`);
  return withTemps((temp) => {
    const fused = (cuda as { dequantize4bitNested?: NestedKernel }).dequantize4bitNested;
    if (!transposed && state.state2 && typeof fused === 'function') {
      // one kernel de-nests the absmax and dequantizes (the same bits as the two-step path)
      const nb = Math.ceil(n / blocksize), s2 = state.state2;
      const q = dev('state.absmax', state.absmax, ['uint8']);
      if (numel(q.shape) !== nb) throw new BnbError('E_STATE', `state.absmax has ${numel(q.shape)} entries but the data needs ${nb} (one per block)`);
      if (typeof state.offset !== 'number') fail('E_STATE', 'state.offset', state.offset, 'a number for a nested state');
      checkBlocksize('state.state2.blocksize', s2.blocksize, BLOCKSIZES_8BIT);
      const a2 = dev('state.state2.absmax', s2.absmax, ['float32']);
      if (numel(a2.shape) !== Math.ceil(nb / s2.blocksize)) throw new BnbError('E_STATE', `state.state2.absmax has ${numel(a2.shape)} entries but the data needs ${Math.ceil(nb / s2.blocksize)}`);
      const code2 = temp(upload(tensor(checkCode('state.state2.code', s2.code).slice(), [256]), packed.device));
      const result = output(out, dtype, shape, packed.device);
      cudaCall(() => fused.call(cuda, packed.ptr, n, blocksize, QT[qt], q.ptr, code2.ptr, a2.ptr, s2.blocksize, state.offset!, DT[dtype], result.ptr));
      return result;
    }
    const absmax = stateAbsmax(cuda, state, Math.ceil(n / blocksize), packed.device, temp);
    if (!transposed) {
      const result = output(out, dtype, shape, packed.device);
      cudaCall(() => cuda.dequantize4bit(packed.ptr, n, blocksize, QT[qt], absmax.ptr, DT[dtype], result.ptr));
      return result;
    }
    // bnb's compatibility shim for a packed [1, n] argument: the transposed result (through the host)
    const rows = temp(deviceEmpty(dtype, shape, packed.device));
    cudaCall(() => cuda.dequantize4bit(packed.ptr, n, blocksize, QT[qt], absmax.ptr, DT[dtype], rows.ptr));
    const h = rows.to('cpu'), [r, c] = shape as [number, number], size = itemsize(dtype);
    const src = new Uint8Array(h.data.buffer), dst = new Uint8Array(src.length);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst.set(src.subarray((i * c + j) * size, (i * c + j + 1) * size), (j * r + i) * size);
    const result = output(out, dtype, [c, r], packed.device);
    cudaCall(() => cuda.copyHtoD(result.ptr, dst));
    return result;
  });
}

export function quantizeBlockwise(A: Tensor, opts: Record<string, unknown> = {}): [Tensor, QuantState] {
  checkOptions('quantizeBlockwise', opts, ['code', 'blocksize', 'nested', 'allowNonFinite']);
  const { blocksize = 4096, nested = false, allowNonFinite = false } = opts as Record<string, never>;
  const a = floatInput(A, 'Blockwise quantization');
  checkBlocksize('blocksize', blocksize, BLOCKSIZES_8BIT);
  checkBoolean('nested', nested);
  checkBoolean('allowNonFinite', allowNonFinite);
  const code = opts.code === undefined ? defaultDynamicMap() : checkCode('code', opts.code);
  const cuda = cudaFor(a.device);
  nonFinite(cuda, a, allowNonFinite);
  const n = numel(a.shape);
  return withTemps((temp) => {
    const codeDev = temp(upload(tensor(code.slice(), [256]), a.device));
    const q = deviceEmpty('uint8', [...a.shape], a.device);
    const absmax = deviceEmpty('float32', [Math.ceil(n / blocksize)], a.device);
    cudaCall(() => cuda.quantizeBlockwise(a.ptr, n, DT[a.dtype as FloatDType], blocksize, codeDev.ptr, q.ptr, absmax.ptr));
    const codeT = tensor(code.slice(), [256]);
    if (!nested) return [q, new QuantState({ absmax, code: codeT, blocksize, dtype: a.dtype })];
    return [q, new QuantState({ ...compress(cuda, temp(absmax), blocksize, temp), code: codeT, blocksize, dtype: a.dtype })];
  });
}

export function dequantizeBlockwise(q: Tensor, stateOrOptions: unknown, { out }: { out?: Tensor } = {}): Tensor {
  const t = dev('A', q, ['uint8']);
  let state: QuantState;
  if (stateOrOptions instanceof QuantState) state = stateOrOptions;
  else {
    const o = stateOrOptions as { absmax?: Tensor; code?: Tensor; blocksize?: number };
    if (typeof o !== 'object' || o === null || o.absmax === undefined) throw new BnbError('E_STATE', 'dequantizeBlockwise requires either a QuantState or { absmax }');
    state = new QuantState({ absmax: o.absmax, code: o.code ?? tensor(defaultDynamicMap().slice(), [256]), blocksize: o.blocksize ?? 4096, dtype: 'float32' });
  }
  const blocksize = checkBlocksize('blocksize', state.blocksize, BLOCKSIZES_8BIT);
  const dtype = checkFloatDType('state.dtype', state.dtype, 'Blockwise dequantization');
  const code = checkCode('state.code', isDeviceTensor(state.code) ? state.code.to('cpu') : state.code);
  const n = numel(t.shape);
  const cuda = cudaFor(t.device);
  return withTemps((temp) => {
    const absmax = stateAbsmax(cuda, state, Math.ceil(n / blocksize), t.device, temp);
    const codeDev = temp(upload(tensor(code.slice(), [256]), t.device));
    const result = output(out, dtype, t.shape, t.device);
    cudaCall(() => cuda.dequantizeBlockwise(t.ptr, n, blocksize, codeDev.ptr, absmax.ptr, DT[dtype], result.ptr));
    return result;
  });
}

