import { BnbError, fail } from '../errors.js';
import { guard, isPlainObject, readOptions } from '../args.js';
import { dispatch, registerKernel } from '../backend/registry.js';
import { FloatDType, allocate } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, numel, tensor, toDevice } from '../tensor.js';
import { defaultDynamicMap } from '../maps.js';
import { DTYPE_ID } from '../backend/abi.js';
import { chunkElements } from '../wasm/runtime.js';
import { meanF32 } from './stats.js';
import {
  BLOCKSIZES_8BIT, checkAbsmax, checkBlocksize, checkBoolean, checkFloatInput, checkOptions, checkOptionsObject, checkOutput, checkTensorArg,
  checkTensorOf, emptyTensor, onHost,
} from './validate.js';
import { FiniteCheck } from './finite.js';
import { absmaxSpan, checkFinite, finiteCall, loadFloatChunk } from './chunk.js';
import { kernelsFor, runChunks } from '../threads/parallel.js';

export interface QuantizeBlockwiseOptions {
  /** 256 sorted f32 values; default: createDynamicMap() */
  code?: Tensor;
  blocksize?: number;
  nested?: boolean;
  allowNonFinite?: boolean;
}

/** A 256-entry f32 code, sorted ascending (every kernel binary-searches it). */
export function checkCode(argument: string, t: unknown): Float32Array {
  const c = checkTensorArg(argument, t);
  if (c.dtype !== 'float32' || numel(c.shape) !== 256) {
    throw new BnbError('E_CODE', `${argument} must be a float32 tensor of 256 entries, got ${c.dtype} with ${numel(c.shape)}`);
  }
  const d = (onHost(c) ? c : toDevice(c, 'cpu')).data as Float32Array; // 1 KiB: every backend reads the code on the host
  for (let i = 0; i < 256; i++) {
    if (!Number.isFinite(d[i]!)) throw new BnbError('E_CODE', `${argument}[${i}] = ${d[i]} is not finite`);
    if (i > 0 && d[i]! < d[i - 1]!) {
      throw new BnbError('E_CODE', `${argument} must be sorted ascending, but ${argument}[${i - 1}] = ${d[i - 1]} > ${argument}[${i}] = ${d[i]}`);
    }
  }
  return d;
}

/** The kernel: (q, absmax) of n elements of `dtype` (src: any view of them). */
export function quantizeBlockwiseRaw(
  src: ArrayBufferView, n: number, dtype: FloatDType, code: Float32Array, blocksize: number,
  finite: FiniteCheck | null = null,
): { q: Uint8Array; absmax: Float32Array } {
  const size = dtype === 'float32' ? 4 : 2;
  const nb = Math.ceil(n / blocksize);
  const q = new Uint8Array(n);
  const absmax = new Float32Array(nb);
  const { m, threads } = kernelsFor(n, src);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  m.useCode(code);
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    slot: [chunk * size, chunk, Math.ceil(chunk / blocksize) * 4],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = loadFloatChunk(m, p[0]!, src, start, len, dtype);
    },
    calls(j, [pIn, pQ, pAbs]) {
      const len = span(j)[1];
      return [...finiteCall(pIn!, len, dtype, finite), ['quantizeBlockwise', pIn!, len, DTYPE_ID[dtype], blocksize, m.codePtr, m.lutPtr, pQ!, pAbs!]];
    },
    store(j, [, pQ, pAbs], results) {
      const [start, len] = span(j);
      checkFinite(finite, results, start);
      m.read(pQ!, q, start, len);
      absmaxSpan(absmax, start, len, blocksize).set(m.bytes(pAbs!, Math.ceil(len / blocksize) * 4));
    },
  });
  return { q, absmax };
}

/** out = f32(code[q] * absmax[block]) for n elements, to `dtype`, as raw bytes. */
export function dequantizeBlockwiseRaw(
  q: Uint8Array, n: number, absmax: Float32Array, code: Float32Array, blocksize: number, dtype: FloatDType,
  out: ArrayBufferView = allocate(dtype, n), // typed: a Uint8Array view cannot pass 2^32 bytes
): ArrayBufferView {
  const size = dtype === 'float32' ? 4 : 2;
  const { m, threads } = kernelsFor(n, q, out, absmax);
  const chunk = Math.min(chunkElements(blocksize, threads, n), Math.max(n, 1));
  const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
  runChunks(m, threads, {
    count: Math.ceil(n / chunk),
    shared: [1024],
    prepare: ([pCode]) => m.write(pCode!, new Uint8Array(code.buffer, code.byteOffset, 1024)),
    slot: [chunk, Math.ceil(chunk / blocksize) * 4, chunk * size],
    load(j, p) {
      const [start, len] = span(j);
      p[0] = m.place(p[0]!, q.subarray(start, start + len));
      p[1] = m.place(p[1]!, absmaxSpan(absmax, start, len, blocksize));
      p[2] = m.target(p[2]!, out, start * size, len * size);
    },
    calls: (j, [pQ, pAbs, pOut], [pCode]) => [['dequantizeBlockwise', pQ!, span(j)[1], blocksize, pCode!, pAbs!, DTYPE_ID[dtype], pOut!]],
    store(j, [, , pOut]) {
      const [start, len] = span(j);
      m.read(pOut!, out, start * size, len * size);
    },
  });
  return out;
}

/**
 * Double quantization of absmax (bnb's nested statistics): subtract the mean,
 * then quantize blockwise with the default dynamic map. 4-bit uses blocksize
 * 256, 8-bit its own blocksize. `offset` replaces the computed mean (to replay
 * a stored state).
 */
export function compressAbsmax(absmax: Float32Array, blocksize: number, offset = meanF32(absmax)): { absmax: Tensor; offset: number; state2: QuantState } {
  const centered = absmax.map((a) => Math.fround(a - offset));
  const code = defaultDynamicMap();
  const r = quantizeBlockwiseRaw(centered, centered.length, 'float32', code, blocksize);
  const state2 = new QuantState({
    absmax: tensor(r.absmax, [r.absmax.length], 'float32'),
    code: tensor(code.slice(), [256], 'float32'),
    blocksize,
    dtype: 'float32',
  });
  return { absmax: tensor(r.q, [r.q.length], 'uint8'), offset, state2 };
}

/** A state's statistics, checked: f32 absmax, or uint8 codes and the nested statistics that decode them. */
export interface CheckedAbsmax {
  absmax: Tensor;
  nested: { offset: number; blocksize: number; code: Float32Array; absmax: Tensor } | null;
}

/** A QuantState's fields, each read once (a state's fields may be getters), state2's too. */
export interface StateFields {
  absmax: unknown;
  shape: unknown;
  code: unknown;
  blocksize: unknown;
  quantType: unknown;
  dtype: unknown;
  offset: unknown;
  state2: StateFields | null | undefined | unknown;
}

export function readState(argument: string, s: unknown): StateFields {
  return guard(argument, () => {
    const x = s as Record<string, unknown>;
    const s2 = x.state2;
    return {
      absmax: x.absmax, shape: x.shape, code: x.code, blocksize: x.blocksize, quantType: x.quantType, dtype: x.dtype, offset: x.offset,
      state2: typeof s2 === 'object' && s2 !== null ? readState(`${argument}.state2`, s2) : s2,
    };
  });
}

/** The tensors of a state (or of dequantize options) that decide the device an op runs on. */
export function stateTensors(s: unknown): { absmax?: Tensor; nested_absmax?: Tensor } {
  if (typeof s !== 'object' || s === null) return {};
  return guard('state', () => {
    const x = s as { absmax?: Tensor; state2?: { absmax?: Tensor } | null };
    const s2 = x.state2;
    return { absmax: x.absmax, nested_absmax: typeof s2 === 'object' && s2 !== null ? s2.absmax : undefined };
  });
}

/** The checked statistics by name, for checkOutput's overlap check. */
export function checkedInputs(c: CheckedAbsmax): Record<string, Tensor> {
  return c.nested === null ? { 'state.absmax': c.absmax } : { 'state.absmax': c.absmax, 'state.state2.absmax': c.nested.absmax };
}

export function checkStateAbsmax(state: StateFields, nblocks: number): CheckedAbsmax {
  const s2 = state.state2;
  if (s2 === null || s2 === undefined) return { absmax: checkAbsmax('state.absmax', state.absmax, nblocks), nested: null };
  if (typeof s2 !== 'object') fail('E_STATE', 'state.state2', s2, 'null or the QuantState of the nested statistics');
  const n2 = s2 as StateFields;
  const q = checkAbsmax('state.absmax', state.absmax, nblocks, 'uint8');
  const offset = state.offset;
  if (typeof offset !== 'number') fail('E_STATE', 'state.offset', offset, 'a number for a nested state');
  const blocksize = checkBlocksize('state.state2.blocksize', n2.blocksize, BLOCKSIZES_8BIT);
  const code = checkCode('state.state2.code', n2.code);
  const absmax = checkAbsmax('state.state2.absmax', n2.absmax, Math.ceil(nblocks / blocksize));
  return { absmax: q, nested: { offset, blocksize, code, absmax } };
}

/** f32 absmax of checked host statistics, de-nested if needed: code2[q] * absmax2 + offset (two roundings). */
export function absmaxF32({ absmax, nested }: CheckedAbsmax): Float32Array {
  if (nested === null) return absmax.data as Float32Array;
  const nblocks = absmax.data.length;
  const bytes = dequantizeBlockwiseRaw(absmax.data as Uint8Array, nblocks, nested.absmax.data as Float32Array, nested.code, nested.blocksize, 'float32');
  const out = new Float32Array(bytes.buffer, bytes.byteOffset, nblocks);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! + nested.offset);
  return out;
}

/** f32 absmax of a state on the host (checked), de-nested if needed. */
export function stateAbsmax(state: QuantState, nblocks: number): Float32Array {
  return absmaxF32(checkStateAbsmax(readState('state', state), nblocks));
}

/** bnb's quantize_blockwise: 8-bit codes (same shape as A) and a QuantState. */
export function quantizeBlockwise(A: Tensor, opts: QuantizeBlockwiseOptions = {}): [Tensor, QuantState] {
  checkOptionsObject('quantizeBlockwise', opts);
  return dispatch('quantizeBlockwise', { A })(A, opts);
}

/** quantizeBlockwise's arguments, checked and with their defaults (every backend's kernel starts here). */
export function checkQuantizeBlockwise(A: Tensor, opts: QuantizeBlockwiseOptions = {}) {
  const o = checkOptions('quantizeBlockwise', opts, ['code', 'blocksize', 'nested', 'allowNonFinite']) as QuantizeBlockwiseOptions;
  const { blocksize = 4096, nested = false, allowNonFinite = false } = o;
  const a = checkFloatInput('A', A, 'Blockwise quantization');
  checkBlocksize('blocksize', blocksize, BLOCKSIZES_8BIT);
  checkBoolean('nested', nested);
  checkBoolean('allowNonFinite', allowNonFinite);
  const code = o.code === undefined ? defaultDynamicMap() : checkCode('code', o.code);
  return { A: a, n: numel(a.shape), blocksize, nested, allowNonFinite, code };
}

/** The WebAssembly kernel of quantizeBlockwise. */
export function quantizeBlockwiseWasm(A: Tensor, opts: QuantizeBlockwiseOptions = {}): [Tensor, QuantState] {
  const { A: a, n, blocksize, nested, allowNonFinite, code } = checkQuantizeBlockwise(A, opts);
  const r = quantizeBlockwiseRaw(a.data, n, a.dtype, code, blocksize, allowNonFinite ? null : { argument: 'A', tensor: a });
  const absmax = tensor(r.absmax, [r.absmax.length], 'float32');
  const codeT = tensor(code.slice(), [256], 'float32');
  const state = nested
    ? new QuantState({ ...compressAbsmax(r.absmax, blocksize), code: codeT, blocksize, dtype: a.dtype })
    : new QuantState({ absmax, code: codeT, blocksize, dtype: a.dtype });
  return [tensor(r.q, [...a.shape], 'uint8'), state];
}

export interface DequantizeBlockwiseOptions {
  absmax: Tensor;
  code?: Tensor;
  blocksize?: number;
}

/**
 * bnb's dequantize_blockwise: with a QuantState, or with `{ absmax, code,
 * blocksize }` (then the output is float32, as in bnb).
 */
export function dequantizeBlockwise(
  q: Tensor, stateOrOptions: QuantState | DequantizeBlockwiseOptions, opts: { out?: Tensor } = {},
): Tensor {
  checkOptionsObject('dequantizeBlockwise', opts);
  return dispatch('dequantizeBlockwise', { A: q, ...stateTensors(stateOrOptions), out: guard('dequantizeBlockwise option out', () => opts.out) })(q, stateOrOptions, opts);
}

/** dequantizeBlockwise's arguments, checked (every backend's kernel starts here). */
export function checkDequantizeBlockwise(q: Tensor, stateOrOptions: QuantState | DequantizeBlockwiseOptions, opts: { out?: Tensor } = {}) {
  const o = checkOptions('dequantizeBlockwise', opts, ['out']);
  const t = checkTensorOf('A', q, 'uint8');
  let state: StateFields;
  if (QuantState.isState(stateOrOptions)) state = readState('state', stateOrOptions);
  else {
    const f = isPlainObject('state', stateOrOptions) ? readOptions('dequantizeBlockwise', stateOrOptions, ['absmax', 'code', 'blocksize']) : null;
    if (f === null || f.absmax === undefined) {
      throw new BnbError('E_STATE', 'dequantizeBlockwise requires either a QuantState or { absmax }');
    }
    const code = f.code ?? tensor(defaultDynamicMap().slice(), [256], 'float32');
    state = { absmax: f.absmax, code, blocksize: f.blocksize ?? 4096, dtype: 'float32', shape: null, quantType: null, offset: null, state2: null };
  }
  const blocksize = checkBlocksize('blocksize', state.blocksize, BLOCKSIZES_8BIT);
  const dtype = state.dtype;
  if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16') {
    fail('E_DTYPE', 'state.dtype', dtype, 'float32, float16 or bfloat16');
  }
  const code = checkCode('state.code', state.code);
  const n = numel(t.shape);
  const absmax = checkStateAbsmax(state, Math.ceil(n / blocksize));
  const codeT = tensor(code, [256], 'float32');
  const out = checkOutput(o.out, dtype, t.shape, { A: t, ...checkedInputs(absmax), 'state.code': codeT });
  return { A: t, n, blocksize, dtype: dtype as FloatDType, code, absmax, out, outTensor: o.out as Tensor | undefined };
}

/** The WebAssembly kernel of dequantizeBlockwise. */
export function dequantizeBlockwiseWasm(
  q: Tensor, stateOrOptions: QuantState | DequantizeBlockwiseOptions, opts: { out?: Tensor } = {},
): Tensor {
  const { A: t, n, blocksize, dtype, code, absmax, out, outTensor } = checkDequantizeBlockwise(q, stateOrOptions, opts);
  const result = out ?? emptyTensor(dtype, t.shape);
  dequantizeBlockwiseRaw(t.data as Uint8Array, n, absmaxF32(absmax), code, blocksize, dtype, result.data);
  return out ? outTensor! : result; // the caller's out (its checked snapshot was written)
}

registerKernel('quantizeBlockwise', 'cpu', quantizeBlockwiseWasm);
registerKernel('dequantizeBlockwise', 'cpu', dequantizeBlockwiseWasm);
