// BNBJS_BACKEND=cuda: host tensors run on the CUDA kernels (the test suite runs
// unchanged that way). The registry has already run the op's check on the caller's
// host tensors, so the checked arguments hold their snapshots: those are copied to
// the device, the kernel runs, the results come back to the host (into the checked
// `out` where the caller gave one), and what was copied in is freed, whatever happens.
import { guard } from '../../args.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, bytesOf, isTensor } from '../../tensor.js';
import { OpSpec } from '../../ops/registry.js';
import { onHost } from '../../ops/validate.js';
import { DeviceTensor, isDeviceTensor, toDevice } from './tensor.js';

/** The state with f applied to its absmax (and its state2's), each field read once. */
function mapState(s: QuantState, f: (t: Tensor) => Tensor): QuantState {
  const g = guard('state', () => ({
    absmax: s.absmax,
    shape: s.shape,
    code: s.code,
    blocksize: s.blocksize,
    quantType: s.quantType,
    dtype: s.dtype,
    offset: s.offset,
    state2: s.state2,
  }));
  return new QuantState({ ...g, absmax: f(g.absmax), state2: QuantState.isState(g.state2) ? mapState(g.state2, f) : g.state2 });
}

/** An object literal (the checked arguments and their parts), not a tensor, a typed array or a class instance. */
function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/** A result on the host: device tensors copied back and freed. */
function toHost(v: unknown): unknown {
  if (QuantState.isState(v)) return mapState(v, (t) => toHost(t) as Tensor);
  if (isDeviceTensor(v)) {
    const h = toDevice(v, 'cpu');
    v.dispose();
    return h;
  }
  if (Array.isArray(v)) return v.map(toHost);
  return v;
}

/** The CUDA kernel of `op` on host tensors: checked host arguments in, host results out. */
export function hostAdapter(op: OpSpec, kernel: (checked: unknown) => unknown): (checked: unknown) => unknown {
  return (checked) => {
    const uploaded: DeviceTensor[] = [];
    const up = (v: unknown): unknown => {
      if (isTensor(v)) {
        if (!onHost(v)) return v;
        const d = toDevice(v, 'cuda:0') as DeviceTensor;
        uploaded.push(d);
        return d;
      }
      if (Array.isArray(v)) return v.map(up);
      if (isRecord(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, up(x)]));
      return v;
    };
    // the kernel makes a new output on the device; the caller's out (its checked snapshot) gets its bytes
    const c = checked as { out?: Tensor };
    const out = op.output === 'out' ? c.out : undefined;
    try {
      const result = toHost(kernel(up(out === undefined ? c : { ...c, out: undefined })));
      if (out !== undefined && isTensor(result)) {
        bytesOf(out).set(bytesOf(result)); // it has the result's dtype and shape (checked)
        return out;
      }
      return result;
    } finally {
      for (const d of uploaded) d.dispose();
    }
  };
}
