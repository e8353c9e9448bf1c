// Registers the CUDA kernels: 'cuda' for device tensors, and 'cuda-host' for host
// tensors when BNBJS_BACKEND=cuda routes them through CUDA (the test suite runs
// unchanged that way: inputs are copied in, outputs copied back).
import { guard } from '../../args.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, bytesOf, checkTensor, isTensor } from '../../tensor.js';
import { checkDequantizeBlockwise, checkQuantizeBlockwise } from '../../ops/blockwise.js';
import { checkDequantize4bit } from '../../ops/dequantize4bit.js';
import { checkDequantizeFp8 } from '../../ops/fp8.js';
import { checkGemv4bit } from '../../ops/gemv4bit.js';
import { checkInt8LinearMatmul, checkInt8MmDequant, checkInt8Quant, checkInt8VectorwiseDequant } from '../../ops/int8.js';
import { checkQuantize4bit } from '../../ops/quantize4bit.js';
import { OpName, registerKernel } from '../../ops/registry.js';
import * as q4 from './quant4bit.js';
import * as bw from './blockwise.js';
import * as int8 from './int8.js';
import * as gemv from './gemv.js';
import * as fp8 from './fp8.js';
import { DeviceTensor, isDeviceTensor, toDevice } from './tensor.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Kernel = (...args: any[]) => any;

const KERNELS: Record<OpName, Kernel> = {
  quantize4bit: q4.quantize4bit,
  dequantize4bit: q4.dequantize4bit,
  quantizeBlockwise: bw.quantizeBlockwise,
  dequantizeBlockwise: bw.dequantizeBlockwise,
  int8VectorwiseQuant: int8.int8VectorwiseQuant,
  int8DoubleQuant: int8.int8DoubleQuant,
  int8VectorwiseDequant: int8.int8VectorwiseDequant,
  int8LinearMatmul: int8.int8LinearMatmul,
  int8MmDequant: int8.int8MmDequant,
  gemv4bit: gemv.gemv4bit,
  dequantizeFp8: fp8.dequantizeFp8,
};

/** The state with f applied to its absmax (and its state2's), each field read once. */
function mapState(s: QuantState, f: (t: Tensor) => Tensor): QuantState {
  const g = guard('state', () => ({
    absmax: s.absmax, shape: s.shape, code: s.code, blocksize: s.blocksize, quantType: s.quantType, dtype: s.dtype, offset: s.offset, state2: s.state2,
  }));
  return new QuantState({ ...g, absmax: f(g.absmax), state2: QuantState.isState(g.state2) ? mapState(g.state2, f) : g.state2 });
}

/** A host tensor argument as checkTensor's snapshot (read once); anything else as it is. */
function snapshot(name: string, t: unknown): unknown {
  if (typeof t !== 'object' || t === null) return t;
  const device = guard(`${name}.device`, () => (t as Tensor).device);
  return device === undefined || device === 'cpu' ? checkTensor(name, t) : t;
}

/** Option keys whose values are tensors. */
const TENSOR_KEYS = ['out', 'bias', 'absmax', 'code'];

// Each op's argument checks (shared with the WebAssembly kernels). The kernels run
// them on the device tensors; host mode runs them first on the caller's host
// tensors, for what only host data shows (an out sharing an input's buffer, data
// that does not match its shape, detached buffers).
const CHECKS: Record<OpName, Kernel> = {
  quantize4bit: checkQuantize4bit,
  dequantize4bit: checkDequantize4bit,
  quantizeBlockwise: checkQuantizeBlockwise,
  dequantizeBlockwise: checkDequantizeBlockwise,
  int8VectorwiseQuant: checkInt8Quant,
  int8DoubleQuant: checkInt8Quant,
  int8VectorwiseDequant: checkInt8VectorwiseDequant,
  int8LinearMatmul: checkInt8LinearMatmul,
  int8MmDequant: checkInt8MmDequant,
  gemv4bit: checkGemv4bit,
  dequantizeFp8: checkDequantizeFp8,
};

// Positional argument names, for the same messages as the WebAssembly ops.
const ARG_NAMES: Record<OpName, string[]> = {
  quantize4bit: ['A'], dequantize4bit: ['A'], quantizeBlockwise: ['A'], dequantizeBlockwise: ['A'],
  int8VectorwiseQuant: ['A'], int8DoubleQuant: ['A'], int8VectorwiseDequant: ['A', 'stats'], int8LinearMatmul: ['A', 'B'],
  int8MmDequant: ['A', 'rowStats', 'colStats'], gemv4bit: ['A', 'B'], dequantizeFp8: ['W', 'scaleInv'],
};

/** Host tensors in, host tensors out, CUDA in between. */
function hostMode(op: OpName, kernel: Kernel): Kernel {
  return (...given: unknown[]) => {
    // every host tensor read once: the snapshot is what is checked, uploaded, and (out) written
    let outGiven: unknown;
    const snap = (v: unknown, name: string): unknown => {
      if (QuantState.isState(v)) return mapState(v, (t) => snapshot('state.absmax', t) as Tensor);
      if (typeof v !== 'object' || v === null || guard(name, () => Array.isArray(v))) return v;
      return Object.fromEntries(guard(name, () => Object.entries(v)).map(([k, x]) => {
        if (k === 'out') outGiven = x;
        return [k, TENSOR_KEYS.includes(k) ? snapshot(k, x) : x];
      }));
    };
    const names = ARG_NAMES[op];
    const args = given.map((a, i) => (i < names.length ? snapshot(names[i]!, a) : snap(a, `arg${i}`)));
    CHECKS[op](...args);
    const uploaded: DeviceTensor[] = [];
    const up = (t: Tensor, name: string): Tensor => {
      checkTensor(name, t); // the host data must match its shape before it is copied
      const d = toDevice(t, 'cuda:0') as DeviceTensor;
      uploaded.push(d);
      return d;
    };
    const toCuda = (v: unknown, name: string, key = ''): unknown => {
      if (QuantState.isState(v)) return mapState(v, (t) => up(t, 'state.absmax'));
      if (isTensor(v)) return key === 'code' ? v : up(v, name);
      if (Array.isArray(v)) return v.map((x, i) => toCuda(x, `${name}[${i}]`));
      if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'out').map(([k, x]) => [k, toCuda(x, k, k)]));
      return v;
    };
    const down = (t: Tensor): Tensor => {
      if (!isDeviceTensor(t)) return t;
      const h = toDevice(t, 'cpu');
      t.dispose();
      return h;
    };
    const toHost = (v: unknown): unknown => {
      if (QuantState.isState(v)) return mapState(v, down);
      if (isTensor(v)) return down(v);
      if (Array.isArray(v)) return v.map(toHost);
      return v;
    };
    try {
      const result = toHost(kernel(...args.map((a, i) => (i < names.length && !isTensor(a) ? a : toCuda(a, names[i] ?? `arg${i}`)))));
      const out = args.find((a): a is { out: Tensor } => a !== null && typeof a === 'object' && isTensor((a as { out?: unknown }).out))?.out;
      if (out && isTensor(result)) {
        bytesOf(out).set(bytesOf(result)); // out's checked snapshot: it has the result's dtype and shape
        return outGiven;
      }
      return result;
    } finally {
      for (const d of uploaded) d.dispose();
    }
  };
}

for (const [op, kernel] of Object.entries(KERNELS) as [OpName, Kernel][]) {
  registerKernel(op, 'cuda', kernel);
  registerKernel(op, 'cuda-host', hostMode(op, kernel));
}
