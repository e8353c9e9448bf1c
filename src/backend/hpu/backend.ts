// The HPU (Intel Gaudi) backend. bitsandbytes registers one HPU kernel,
// dequantize_4bit, through Habana's dequantize_nf4 (docs/bit-exactness.md#gaudi-dequantization). No Gaudi device or
// SDK can be reached from this project's machines, so the kernel is emulated on the
// WebAssembly kernels, following the HPU contract exactly; see native/gaudi/README.md.
import { BnbError, fail, show } from '../../errors.js';
import { DType, FloatDType } from '../../dtypes.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../../float16.js';
import { Tensor, bytesOf, checkNotDetached, checkTensor, numel, registerDeviceMover, tensor } from '../../tensor.js';
import { freshView, viewOf } from '../../views.js';
import { canonicalDevice, forcedBackend } from '../../devices.js';
import { Checked, registerBackend } from '../../ops/registry.js';
import { registerKernels } from '../../ops/index.js';
import { checkDequantize4bit, dequantize4bitOp } from '../../ops/dequantize4bit.js';
import { dequantize4bitWasm } from '../wasm/quant4bit.js';
import { absmaxF32 } from '../wasm/blockwise.js';
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
    if (typeof version !== 'string')
      fail('E_ARGUMENT', 'version', version, 'a version such as "1.22.0", null (unknown) or undefined (probe)');
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
  if (to !== 'cpu' && !available())
    throw new BnbError(
      'E_DEVICE',
      `device = ${show(device)} is not available: ${gaudi().reason ?? 'no Gaudi device'} (BNBJS_BACKEND=hpu forces the emulated backend)`,
    );
  const data = t.data.slice();
  if (to === 'cpu') return tensor(data, [...t.shape], t.dtype);
  return hpuTensor(tensor(data, [...t.shape], t.dtype), to);
}

function hpuTensor(t: Tensor, device: string): Tensor {
  return {
    dtype: t.dtype,
    shape: t.shape,
    data: t.data,
    device,
    to(d: string) {
      return moveHpu(this, d);
    },
    dispose() {},
  };
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
  bytes: Uint8Array,
  absmax: Float32Array,
  blocksize: number,
  shape: number[],
  dtype: FloatDType,
  version: GaudiVersion | null,
): Tensor {
  const codes = needsNibbleSwap(version) ? swapNibbles(bytes) : bytes;
  const n = numel(shape);
  return dequantize4bitWasm(
    checkDequantize4bit(
      tensor(codes, [codes.length, 1], 'uint8'),
      {
        absmax: tensor(absmax, [absmax.length], 'float32'),
        shape: [n === 1 ? 1 : n],
        blocksize,
        quantType: 'nf4',
        dtype,
      },
      {},
    ),
  );
}

const HPU_STORAGE: readonly DType[] = ['uint8', 'bfloat16'];

/** Emulated device memory is host memory: the same tensors, read as host ones. */
function onHostView(t: Tensor): Tensor {
  return { ...t, device: 'cpu' };
}

/**
 * bitsandbytes' HPU dequantize_4bit, on the shared check's arguments: nf4 only, a
 * QuantState, uint8/bf16 storage, nibble swap for old software, absmax in the output dtype.
 */
export function dequantize4bitHpu(c: Checked<typeof dequantize4bitOp>): Tensor {
  const { A, isState, quantType, blocksize, dtype, shape, absmax, out } = c;
  if (!isState) throw new BnbError('E_STATE', 'dequantize4bit on hpu requires a QuantState');
  if (quantType !== 'nf4') throw new BnbError('E_QUANT_TYPE', `HPU backend only supports quant_type 'nf4', got ${show(quantType)}`);
  if (!HPU_STORAGE.includes(A.dtype))
    throw new BnbError('E_DTYPE', `HPU backend only supports uint8 or bfloat16 storage, got ${show(A.dtype)}`);
  const host = absmaxF32({
    absmax: onHostView(absmax.absmax),
    nested: absmax.nested && { ...absmax.nested, absmax: onHostView(absmax.nested.absmax) },
  });
  // absmax.to(dtype): rounded to the output dtype before scaling, unlike every other backend
  const round =
    dtype === 'float16'
      ? (x: number) => f16ToNumber(numberToF16(x))
      : dtype === 'bfloat16'
        ? (x: number) => bf16ToNumber(numberToBf16(x))
        : (x: number) => x;
  const rounded = Float32Array.from(host, round);
  const version = gaudiSoftwareVersion();
  let bytes: Uint8Array = bytesOf(A).slice();
  if (needsNibbleSwap(version)) bytes = swapNibbles(bytes); // what bnb does before calling the old kernel
  const flat = habanaDequantizeNf4(bytes, rounded, blocksize, shape, dtype, version);
  if (out === undefined) return hpuTensor(tensor(flat.data, shape, dtype), A.device);
  // the shared check accepted out (dtype, shape, device); its emulated memory is written, read once
  bytesOf(checkTensor('out', onHostView(out))).set(bytesOf(flat));
  return out;
}

registerDeviceMover('hpu', moveHpu);
registerBackend('hpu', { device: 'hpu' });
registerKernels('hpu', { dequantize4bit: dequantize4bitHpu });
