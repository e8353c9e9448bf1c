// The HPU (Intel Gaudi) backend. bitsandbytes registers one HPU kernel,
// dequantize_4bit, through Habana's dequantize_nf4 (SPEC §9). No Gaudi device or
// SDK can be reached from this project's machines, so the kernel is emulated on the
// WebAssembly kernels, following the HPU contract exactly; see native/gaudi/README.md.
import { BnbError, fail, show } from '../../errors.js';
import { DType, FloatDType } from '../../dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../../float16.js';
import { QuantState } from '../../quant-state.js';
import { Tensor, bytesOf, checkNotDetached, checkShape, checkTensor, numel, registerDeviceMover, tensor } from '../../tensor.js';
import { freshView, viewOf } from '../../views.js';
import { dequantize4bitWasm } from '../wasm/quant4bit.js';
import { stateAbsmax } from '../wasm/blockwise.js';
import { BLOCKSIZES_4BIT, checkBlocksize, checkFloatDType } from '../../ops/validate.js';
import { canonicalDevice, forcedBackend, registerKernel } from '../../ops/registry.js';
import { GaudiProbe, GaudiVersion, needsNibbleSwap, parseGaudiVersion, probeGaudi } from './probe.js';

let probed: GaudiProbe | null = null;
let versionOverride: GaudiVersion | null | undefined;

/** The Gaudi probe, run once. */
export function gaudi(): GaudiProbe {
  probed ??= probeGaudi();
  return probed;
}

/** Sets the Gaudi software version the emulated kernel and the nibble rule use ('1.21.0'; null: unknown; undefined: probe). */
export function setGaudiSoftwareVersion(version: string | null | undefined): void {
  if (version === undefined || version === null) versionOverride = version;
  else {
    if (typeof version !== 'string') fail('E_ARGUMENT', 'version', version, 'a version such as "1.22.0", null (unknown) or undefined (probe)');
    const v = parseGaudiVersion(version);
    if (!v) fail('E_ARGUMENT', 'version', version, 'a version such as "1.22.0"');
    versionOverride = v;
  }
}

export function gaudiSoftwareVersion(): GaudiVersion | null {
  return versionOverride !== undefined ? versionOverride : gaudi().version;
}

function available(): boolean {
  return forcedBackend() === 'hpu' || gaudi().available;
}

/** Tensors on 'hpu:N' (emulated: their data stays in host memory). */
function moveHpu(t: Tensor, device: string): Tensor {
  const to = canonicalDevice(device);
  if (to !== 'cpu' && !available()) throw new BnbError('E_DEVICE', `device = ${show(device)} is not available: ${gaudi().reason ?? 'no Gaudi device'} (BNBJS_BACKEND=hpu forces the emulated backend)`);
  const data = t.data.slice();
  if (to === 'cpu') return tensor(data, [...t.shape], t.dtype);
  return hpuTensor(tensor(data, [...t.shape], t.dtype), to);
}

function hpuTensor(t: Tensor, device: string): Tensor {
  return { dtype: t.dtype, shape: t.shape, data: t.data, device, to(d: string) { return moveHpu(this, d); }, dispose() {} };
}

/** x with each byte's two nibbles exchanged: (b >> 4) | ((b & 0xf) << 4). */
export function swapNibbles(bytes: Uint8Array): Uint8Array {
  const v = viewOf(bytes);
  if (v === null || v.kind !== 'Uint8Array') fail('E_ARGUMENT', 'bytes', bytes, 'a Uint8Array');
  checkNotDetached('bytes', bytes);
  return freshView(v).map((b) => (b >> 4) | ((b & 0x0f) << 4)) as Uint8Array;
}

/**
 * Habana's dequantize_nf4 as the device computes it: dtype(nf4[q] * absmax) with
 * absmax as given (already in the output dtype); software older than 1.22 reads
 * the first element of each byte from the low nibble.
 */
export function habanaDequantizeNf4(
  bytes: Uint8Array, absmax: Float32Array, blocksize: number, shape: number[], dtype: FloatDType, version: GaudiVersion | null,
): Tensor {
  const codes = needsNibbleSwap(version) ? swapNibbles(bytes) : bytes;
  const n = numel(shape);
  return dequantize4bitWasm(tensor(codes, [codes.length, 1], 'uint8'), {
    absmax: tensor(absmax, [absmax.length], 'float32'), shape: [n === 1 ? 1 : n], blocksize, quantType: 'nf4', dtype,
  });
}

const HPU_STORAGE: readonly DType[] = ['uint8', 'bfloat16'];

/** bitsandbytes' HPU dequantize_4bit: nf4 only, uint8/bf16 storage, nibble swap for old software, absmax in the output dtype. */
export function dequantize4bitHpu(A: Tensor, stateOrOptions: QuantState, { out }: { out?: Tensor } = {}): Tensor {
  const state = stateOrOptions;
  if (!(QuantState.isState(state))) throw new BnbError('E_STATE', 'dequantize4bit on hpu requires a QuantState');
  if (state.quantType !== 'nf4') throw new BnbError('E_QUANT_TYPE', `HPU backend only supports quant_type 'nf4', got ${show(state.quantType)}`);
  if (!HPU_STORAGE.includes(A.dtype)) throw new BnbError('E_DTYPE', `HPU backend only supports uint8 or bfloat16 storage, got ${show(A.dtype)}`);
  const blocksize = checkBlocksize('blocksize', state.blocksize, BLOCKSIZES_4BIT);
  const dtype = checkFloatDType('dtype', state.dtype, 'Blockwise 4bit dequantization');
  const shape = checkShape('state.shape', state.shape);
  const host = (t: Tensor) => ({ ...t, device: 'cpu' });
  const s = new QuantState({ ...state, absmax: host(state.absmax), state2: state.state2 ? new QuantState({ ...state.state2, absmax: host(state.state2.absmax) }) : null });
  const absmax = stateAbsmax(s, Math.ceil(numel(shape) / blocksize));
  // absmax.to(dtype): rounded to the output dtype before scaling, unlike every other backend
  const round = dtype === 'float16' ? (x: number) => f16ToNumber(numberToF16(x)) : dtype === 'bfloat16' ? (x: number) => bf16ToNumber(numberToBf16(x)) : (x: number) => x;
  const rounded = Float32Array.from(absmax, round);
  const version = gaudiSoftwareVersion();
  let bytes: Uint8Array = bytesOf(A).slice();
  if (needsNibbleSwap(version)) bytes = swapNibbles(bytes); // what bnb does before calling the old kernel
  const flat = habanaDequantizeNf4(bytes, rounded, blocksize, shape, dtype, version);
  const result = hpuTensor(tensor(flat.data, shape, dtype), A.device);
  if (out) {
    const o = checkTensor('out', { ...out, device: 'cpu' }); // read once: the snapshot is written
    if (o.dtype !== dtype || o.shape.length !== shape.length || o.shape.some((d, i) => d !== shape[i])) {
      throw new BnbError('E_SHAPE', `out = ${o.dtype} ${show(o.shape)} is not accepted: expected ${dtype} ${show(shape)}`);
    }
    bytesOf(o).set(bytesOf(result));
    return out;
  }
  return result;
}

registerDeviceMover('hpu', moveHpu);
registerKernel('dequantize4bit', 'hpu', dequantize4bitHpu);
