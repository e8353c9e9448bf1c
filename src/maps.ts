import { fail } from './errors.js';
import { Tensor, tensor } from './tensor.js';
import { bitsToF32 } from './float16.js';
import { normPpf } from './normal-ppf.js';
import { checkOptions } from './checks.js';

export type QuantType = 'nf4' | 'fp4';

export function checkQuantType(argument: string, x: unknown): QuantType {
  if (x !== 'nf4' && x !== 'fp4') fail('E_QUANT_TYPE', argument, x, "'nf4' or 'fp4'");
  return x;
}

const NF4_BITS = [
  0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000, 0x3da2faff, 0x3e24cae3, 0x3e7c04dd,
  0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000,
];
// Python's table: code 8 is `-0`, a Python int, so +0.0 (the CUDA decode table has -0.0).
const FP4_RAW = [0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3];

/** bitsandbytes' get_4bit_type: the 16-entry f32 code table of 'nf4' or 'fp4'. */
export function get4bitType(quantType: QuantType): Tensor {
  checkQuantType('quantType', quantType);
  const data = new Float32Array(16);
  if (quantType === 'nf4') NF4_BITS.forEach((b, i) => (data[i] = bitsToF32(b)));
  else FP4_RAW.forEach((v, i) => (data[i] = Math.fround(v / 12)));
  return tensor(data, [16], 'float32');
}

// torch's CPU linspace in f32 (measured; docs/bit-exactness.md#dynamic-map): each half is one FMA from
// its own end. f64 holds step*k + start exactly here, so fround is the one rounding.
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = Math.fround(start),
    e = Math.fround(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = Math.fround(Math.fround(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < half ? Math.fround(step * i + s) : Math.fround(e - step * (steps - 1 - i));
  return out;
}

const DYNAMIC_SIGNED_HEX =
  'bf7e3333bf7a999abf770000bf736666bf6fcccdbf6c3333bf68999abf650000bf616666bf5dcccdbf5a3333bf56999abf530000bf4f6666bf4bcccdbf483333' +
  'bf44999abf410000bf3d6666bf39cccdbf363334bf32999abf2f0000bf2b6666bf27cccdbf243334bf20999abf1d0000bf196666bf15cccdbf123334bf0e999a' +
  'bf0b0000bf076666bf03ccccbf003333bef93332bef20000beeaccccbee3999abedc6666bed53333bece0000bec6ccccbebf999abeb86666beb13333beaa0000' +
  'bea2ccccbe9b999abe946666be8d3334be860000be7d9999be6f3333be60cccdbe526666be440000be35999abe273333be18cccdbe0a6666bdf80000bddb3334' +
  'bdc9eb85bdc428f7bdbe6667bdb8a3d7bdb2e148bdad1eb8bda75c2abda1999abd9bd70abd96147bbd9051ebbd8a8f5dbd84cccdbd7e147bbd728f5dbd670a3d' +
  'bd5b851fbd500000bd447ae1bd38f5c3bd2d70a3bd21eb85bd166667bd0ae148bcfeb852bce7ae15bcd0a3d7bcb9999abca28f5dbc8b851fbc68f5c3bc3ae148' +
  'bc1f3b64bc160418bc0ccccdbc039581bbf4bc6abbe24dd3bbcfdf3bbbbd70a4bbab020dbb989374bb8624ddbb676c8abb428f5cbb1db22dbaf1a9fcbaa7ef9d' +
  'ba7765ffba59e83eba3c6a80ba1eecc1ba016f01b9c7e283b98ce705b923d70bb8ba1f4bb88aefb3b8378034b7b24206b70205ffb65a1a94b513a3b700000000';

/**
 * The default signed dynamic map (docs/bit-exactness.md#dynamic-map). The positive half mirrors
 * the negative half; index 255 is 1.0. Shipped as constants, not regenerated.
 */
function dynamicSignedDefault(): Float32Array {
  const out = new Float32Array(256);
  for (let i = 0; i < 128; i++) out[i] = bitsToF32(parseInt(DYNAMIC_SIGNED_HEX.slice(i * 8, i * 8 + 8), 16));
  for (let i = 1; i < 128; i++) out[127 + i] = -out[127 - i]!;
  out[255] = 1;
  return out;
}

let signedDefault: Float32Array | null = null;

/** The default 8-bit code (create_dynamic_map(signed=true)), shared; do not mutate. */
export function defaultDynamicMap(): Float32Array {
  return (signedDefault ??= dynamicSignedDefault());
}

export interface DynamicMapOptions {
  signed?: boolean;
  maxExponentBits?: number;
  totalBits?: number;
}

/** bitsandbytes' create_dynamic_map, bit-exact with torch 2.11 on x86 (docs/bit-exactness.md#dynamic-map). */
export function createDynamicMap(opts: DynamicMapOptions = {}): Tensor {
  const o = checkOptions('createDynamicMap', opts, ['signed', 'maxExponentBits', 'totalBits']) as DynamicMapOptions;
  const { signed = true, maxExponentBits = 7, totalBits = 8 } = o;
  if (typeof signed !== 'boolean') fail('E_ARGUMENT', 'signed', signed, 'true or false');
  if (!Number.isInteger(totalBits) || totalBits < 2 || totalBits > 8) fail('E_ARGUMENT', 'totalBits', totalBits, 'an integer in 2..8');
  if (!Number.isInteger(maxExponentBits) || maxExponentBits < 1 || maxExponentBits > totalBits - 1) {
    fail('E_ARGUMENT', 'maxExponentBits', maxExponentBits, `an integer in 1..${totalBits - 1} for totalBits ${totalBits}`);
  }
  if (signed && maxExponentBits === 7 && totalBits === 8) return tensor(defaultDynamicMap().slice(), [256], 'float32');
  return tensor(dynamicMapRecipe(signed, maxExponentBits, totalBits), [256], 'float32');
}

/** create_dynamic_map's procedure with torch's f32 arithmetic (docs/bit-exactness.md#dynamic-map). */
export function dynamicMapRecipe(signed: boolean, maxExponentBits: number, totalBits: number): Float32Array {
  // bnb computes with total_bits - 1 non-sign bits for both signed and unsigned maps.
  const nsb = totalBits - 1;
  const additional = 2 ** (nsb - maxExponentBits) - 1;
  const values: number[] = [];
  const pushMeans = (b: Float32Array, scale: number) => {
    const sc = Math.fround(scale);
    for (let j = 0; j + 1 < b.length; j++) {
      const mean = Math.fround(Math.fround(b[j]! + b[j + 1]!) / 2);
      values.push(Math.fround(sc * mean));
      if (signed) values.push(Math.fround(-sc * mean));
    }
  };
  let i = 0;
  for (; i < maxExponentBits; i++) {
    const items = signed ? 2 ** (i + nsb - maxExponentBits) + 1 : 2 ** (i + nsb - maxExponentBits + 1) + 1;
    pushMeans(linspaceF32(0.1, 1, items), parseFloat(`1e${-(maxExponentBits - 1) + i}`));
  }
  if (additional > 0) pushMeans(linspaceF32(0.1, 1, additional + 1), parseFloat(`1e${-(maxExponentBits - 1) + i - 1}`));
  values.push(0, 1);
  if (values.length !== 2 ** totalBits) {
    // bitsandbytes asserts the same; only some unsigned layouts miss it.
    fail('E_ARGUMENT', 'maxExponentBits', maxExponentBits, `a value giving 2^${totalBits} entries (these options give ${values.length})`);
  }
  const out = new Float32Array(256);
  out.set(values.slice(0, 256));
  return out.sort();
}

export interface NormalMapOptions {
  offset?: number;
  useExtraValue?: boolean;
}

/**
 * bitsandbytes' create_normal_map (docs/bit-exactness.md#normal-map): quantiles ppf(linspace_f32(offset, 0.5, n)[:-1]),
 * 8 positive and 7 negative (7 and 7 without the extra value), zero padded, sorted, divided by the max.
 */
export function createNormalMap(opts: NormalMapOptions = {}): Tensor {
  const o = checkOptions('createNormalMap', opts, ['offset', 'useExtraValue']) as NormalMapOptions;
  const { offset = 0.9677083, useExtraValue = true } = o;
  if (typeof offset !== 'number' || !(Math.fround(offset) > 0.5 && Math.fround(offset) < 1)) {
    fail('E_ARGUMENT', 'offset', offset, 'a number in (0.5, 1) (as float32)');
  }
  if (typeof useExtraValue !== 'boolean') fail('E_ARGUMENT', 'useExtraValue', useExtraValue, 'true or false');
  const pos = linspaceF32(offset, 0.5, useExtraValue ? 9 : 8).subarray(0, -1);
  const neg = linspaceF32(offset, 0.5, 8).subarray(0, -1);
  // scipy evaluates ppf in f64 on the f32 probabilities; torch.Tensor rounds the result to f32.
  const out = new Float32Array(256);
  pos.forEach((q, i) => (out[i] = normPpf(q)));
  neg.forEach((q, i) => (out[255 - i] = -normPpf(q)));
  out.sort();
  const max = out[255]!;
  for (let i = 0; i < 256; i++) out[i] = out[i]! / max;
  return tensor(out, [256], 'float32');
}

export interface LinearMapOptions {
  signed?: boolean;
  totalBits?: number;
  addZero?: boolean;
}

/** bitsandbytes' create_linear_map (docs/bit-exactness.md#linear-and-fp8-maps): a f32 linspace, zero padding inserted in its middle. */
export function createLinearMap(opts: LinearMapOptions = {}): Tensor {
  const o = checkOptions('createLinearMap', opts, ['signed', 'totalBits', 'addZero']) as LinearMapOptions;
  const { signed = true, totalBits = 8, addZero = true } = o;
  if (typeof signed !== 'boolean') fail('E_ARGUMENT', 'signed', signed, 'true or false');
  if (!Number.isInteger(totalBits) || totalBits < 2 || totalBits > 8) fail('E_ARGUMENT', 'totalBits', totalBits, 'an integer in 2..8');
  if (typeof addZero !== 'boolean') fail('E_ARGUMENT', 'addZero', addZero, 'true or false');
  // A signed map with a zero has an odd count, so linspace puts a (near-)zero in the middle.
  const n = signed && (addZero || totalBits < 8) ? 2 ** totalBits - 1 : 2 ** totalBits;
  const values = linspaceF32(signed ? -1 : 0, 1, n);
  const l = n >> 1;
  const out = new Float32Array(256);
  out.set(values.subarray(0, l));
  out.set(values.subarray(l), 256 - (n - l));
  return tensor(out, [256], 'float32');
}

export interface Fp8MapOptions {
  signed?: boolean;
  exponentBits?: number;
  precisionBits?: number;
  totalBits?: number;
}

/** bitsandbytes' create_fp8_map (docs/bit-exactness.md#linear-and-fp8-maps): every value of a small float format, scaled to max 1. */
export function createFp8Map(opts: Fp8MapOptions = {}): Tensor {
  const o = checkOptions('createFp8Map', opts, ['signed', 'exponentBits', 'precisionBits', 'totalBits']) as Fp8MapOptions;
  const { signed = true, exponentBits = 5, precisionBits = 2, totalBits = 8 } = o;
  if (typeof signed !== 'boolean') fail('E_ARGUMENT', 'signed', signed, 'true or false');
  if (!Number.isInteger(totalBits) || totalBits < 2 || totalBits > 8) fail('E_ARGUMENT', 'totalBits', totalBits, 'an integer in 2..8');
  // bitsandbytes accepts 0 exponent bits (a scaled fixed-point map) and 8 (overflows f32, NaN map); we do not.
  if (!Number.isInteger(exponentBits) || exponentBits < 1 || exponentBits > 7)
    fail('E_ARGUMENT', 'exponentBits', exponentBits, 'an integer in 1..7');
  const nonSign = totalBits - (signed ? 1 : 0);
  if (!Number.isInteger(precisionBits) || exponentBits + precisionBits !== nonSign) {
    fail(
      'E_ARGUMENT',
      'precisionBits',
      precisionBits,
      `exponentBits + precisionBits == totalBits - ${signed ? 1 : 0} = ${nonSign} (bitsandbytes asserts this)`,
    );
  }
  const bias = 2 ** (exponentBits - 1);
  const values: number[] = [];
  for (let e = 0; e < 2 ** exponentBits; e++) {
    for (let m = 0; m < 2 ** precisionBits; m++) {
      const frac = m / 2 ** precisionBits;
      const v = e === 0 ? frac * 2 ** -bias : (1 + frac) * 2 ** (bias + 1 - e);
      values.push(v);
      if (signed) values.push(-v);
    }
  }
  // Python's list sort is stable and ranks 0.0 == -0.0, so +0 stays before -0 (Float32Array.sort would swap them).
  values.sort((a, b) => a - b);
  while (values.length < 256) values.push(0);
  values.sort((a, b) => a - b);
  const out = Float32Array.from(values);
  const max = out[255]!;
  for (let i = 0; i < 256; i++) out[i] = out[i]! / max;
  return tensor(out, [256], 'float32');
}
