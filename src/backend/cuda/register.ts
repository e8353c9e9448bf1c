// Registers the CUDA kernels: 'cuda' for device tensors, and 'cuda-host' for host
// tensors when BNBJS_BACKEND=cuda routes them through CUDA (the test suite runs
// unchanged that way: inputs are copied in, outputs copied back).
import { QuantState } from '../../quant-state.js';
import { Tensor, bytesOf, checkTensor, isTensor } from '../../tensor.js';
import { checkDequantizeBlockwise, checkQuantizeBlockwise } from '../../ops/blockwise.js';
import { checkDequantize4bit } from '../../ops/dequantize4bit.js';
import { checkDequantizeFp8 } from '../../ops/fp8.js';
import { checkGemv4bit } from '../../ops/gemv4bit.js';
import { checkInt8LinearMatmul, checkInt8MmDequant, checkInt8Quant, checkInt8VectorwiseDequant } from '../../ops/int8.js';
import { checkQuantize4bit } from '../../ops/quantize4bit.js';
import { OpName, registerKernel } from '../registry.js';
import * as core from './ops.js';
import * as functional from './ops-functional.js';
import { DeviceTensor, isDeviceTensor, toDevice } from './tensor.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Kernel = (...args: any[]) => any;

const KERNELS: Record<OpName, Kernel> = {
  quantize4bit: core.quantize4bit,
  dequantize4bit: core.dequantize4bit,
  quantizeBlockwise: core.quantizeBlockwise,
  dequantizeBlockwise: core.dequantizeBlockwise,
  int8VectorwiseQuant: functional.int8VectorwiseQuant,
  int8DoubleQuant: functional.int8DoubleQuant,
  int8VectorwiseDequant: functional.int8VectorwiseDequant,
  int8LinearMatmul: functional.int8LinearMatmul,
  int8MmDequant: functional.int8MmDequant,
  gemv4bit: functional.gemv4bit,
  dequantizeFp8: functional.dequantizeFp8,
};

function mapState(s: QuantState, f: (t: Tensor) => Tensor): QuantState {
  return new QuantState({ ...s, absmax: f(s.absmax), state2: s.state2 ? mapState(s.state2, f) : null });
}

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
  return (...args: unknown[]) => {
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
      const names = ARG_NAMES[op];
      const result = toHost(kernel(...args.map((a, i) => (i < names.length && !isTensor(a) ? a : toCuda(a, names[i] ?? `arg${i}`)))));
      const out = args.find((a): a is { out: Tensor } => a !== null && typeof a === 'object' && isTensor((a as { out?: unknown }).out))?.out;
      if (out && isTensor(result)) {
        bytesOf(out).set(bytesOf(result)); // checked above: out has the result's dtype and shape
        return out;
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
