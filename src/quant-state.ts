import { BnbError, fail, show } from './errors.js';
import { DType, FLOAT_DTYPES, FloatDType } from './dtypes.js';
import { Tensor, checkTensor, isTensor, tensor } from './tensor.js';
import { QuantType } from './maps.js';
import { PyFloat, PyJson, pyJsonDumps } from './pyjson.js';

export interface QuantStateFields {
  absmax: Tensor;
  shape?: number[] | null;
  code: Tensor;
  blocksize: number;
  quantType?: QuantType | null;
  dtype?: DType;
  offset?: number | null;
  state2?: QuantState | null;
}

export type QuantStateDict = Record<string, unknown>;

const QS_SUFFIXES = ['bitsandbytes__fp4', 'bitsandbytes__nf4'];
const VALID_KEYS = [
  'absmax', 'quant_map', 'nested_absmax', 'nested_quant_map', 'quant_state', 'quant_type',
  'blocksize', 'dtype', 'shape', 'nested_blocksize', 'nested_dtype', 'nested_offset',
];

function copyTensor(t: Tensor): Tensor {
  return { ...t, shape: [...t.shape], data: t.data.slice() };
}

/**
 * bitsandbytes' QuantState: what dequantization needs besides the quantized data.
 * `offset` is the f32 value of bnb's 0-dim offset tensor.
 */
export class QuantState {
  absmax: Tensor;
  shape: number[] | null;
  code: Tensor;
  blocksize: number;
  quantType: QuantType | null;
  dtype: DType;
  offset: number | null;
  state2: QuantState | null;

  constructor(f: QuantStateFields) {
    this.absmax = f.absmax;
    this.shape = f.shape ?? null;
    this.code = f.code;
    this.blocksize = f.blocksize;
    this.quantType = f.quantType ?? null;
    this.dtype = f.dtype ?? 'float32';
    this.offset = f.offset ?? null;
    this.state2 = f.state2 ?? null;
  }

  get nested(): boolean {
    return this.state2 !== null;
  }

  /**
   * bnb's as_dict. Unpacked: every field under bnb's key names. Packed (4-bit
   * states only): the tensors plus `quant_state.bitsandbytes__<type>`, a uint8
   * tensor of the JSON that Python's json.dumps writes for the other fields.
   */
  asDict({ packed = false }: { packed?: boolean } = {}): QuantStateDict {
    const d: QuantStateDict = {
      quant_type: this.quantType,
      absmax: this.absmax,
      blocksize: this.blocksize,
      quant_map: this.code,
      dtype: this.dtype,
      shape: this.shape === null ? null : [...this.shape],
    };
    const s2 = this.state2;
    if (s2 !== null) {
      Object.assign(d, {
        nested_absmax: s2.absmax,
        nested_blocksize: s2.blocksize,
        nested_quant_map: copyTensor(s2.code),
        nested_dtype: s2.dtype,
        nested_offset: this.offset,
      });
    }
    if (!packed || this.quantType === null) return d;
    const json: Record<string, PyJson> = {
      quant_type: this.quantType,
      blocksize: this.blocksize,
      dtype: this.dtype,
      shape: this.shape === null ? null : [...this.shape],
    };
    if (s2 !== null) {
      json.nested_blocksize = s2.blocksize;
      json.nested_dtype = s2.dtype;
      json.nested_offset = new PyFloat(this.offset ?? NaN);
    }
    const out: QuantStateDict = {};
    for (const [k, v] of Object.entries(d)) if (isTensor(v)) out[k] = v;
    const blob = new TextEncoder().encode(pyJsonDumps(json));
    out[`quant_state.bitsandbytes__${this.quantType}`] = tensor(blob, [blob.length], 'uint8');
    return out;
  }

  /** bnb's from_dict: packed or unpacked form, keys with or without a module prefix. */
  static fromDict(dict: QuantStateDict): QuantState {
    if (typeof dict !== 'object' || dict === null) fail('E_STATE', 'dict', dict, 'an object of QuantState items');
    const qsKeys = Object.keys(dict).filter((k) => k.includes('quant_state') && isBlob(dict[k]));
    const entries: Record<string, unknown> = { ...dict };
    if (!('quant_type' in dict)) {
      if (qsKeys.length === 0) {
        throw new BnbError('E_STATE', 'Expected packed or unpacked quant_state items, found neither');
      }
      if (qsKeys.length !== 1 || !QS_SUFFIXES.includes(qsKeys[0]!.split('.').pop()!)) {
        throw new BnbError('E_STATE', `There should be exactly one \`quant_state\` item with ending from ${show(QS_SUFFIXES)}; found ${show(qsKeys)}`);
      }
    }
    if (qsKeys.length === 1) {
      const key = qsKeys[0]!;
      delete entries[key];
      Object.assign(entries, parseBlob(key, dict[key]));
    }
    const d: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(entries)) {
      const name = k.split('.').pop()!;
      if (!VALID_KEYS.includes(name)) {
        throw new BnbError('E_STATE_KEY', `QuantState dict key ${show(k)} is not a QuantState item: expected keys ending in one of ${VALID_KEYS.join(', ')}`);
      }
      d[name] = v;
    }
    let offset: number | null = null;
    let state2: QuantState | null = null;
    if ('nested_absmax' in d) {
      offset = Math.fround(need(d, 'nested_offset', isNumber, 'a number'));
      state2 = new QuantState({
        absmax: needTensor(d, 'nested_absmax'),
        blocksize: need(d, 'nested_blocksize', isPositiveInt, 'a positive integer'),
        code: needTensor(d, 'nested_quant_map'),
        dtype: need(d, 'nested_dtype', isFloatDType, `one of ${FLOAT_DTYPES.join(', ')}`),
      });
    }
    const quantType = d.quant_type ?? null;
    if (quantType !== null && quantType !== 'nf4' && quantType !== 'fp4') {
      fail('E_QUANT_TYPE', 'quant_type', quantType, "'nf4', 'fp4' or null");
    }
    const shape = d.shape ?? null;
    if (shape !== null && !(Array.isArray(shape) && shape.every((x) => Number.isSafeInteger(x) && x >= 0))) {
      fail('E_STATE', 'shape', shape, 'an array of non-negative integers or null');
    }
    return new QuantState({
      quantType: quantType as QuantType | null,
      absmax: needTensor(d, 'absmax'),
      blocksize: need(d, 'blocksize', isPositiveInt, 'a positive integer'),
      code: needTensor(d, 'quant_map'),
      dtype: need(d, 'dtype', isFloatDType, `one of ${FLOAT_DTYPES.join(', ')}`),
      shape: shape as number[] | null,
      offset,
      state2,
    });
  }

  /** bnb's __eq__: tensors within 1e-6, everything else exactly. */
  equals(other: QuantState): boolean {
    const close = (a: Tensor, b: Tensor) =>
      a.dtype === b.dtype && a.data.length === b.data.length &&
      a.data.every((v, i) => Math.abs(v - b.data[i]!) <= 1e-6 + 1e-5 * Math.abs(b.data[i]!));
    return close(this.absmax, other.absmax) && close(this.code, other.code) &&
      JSON.stringify(this.shape) === JSON.stringify(other.shape) && this.dtype === other.dtype &&
      this.blocksize === other.blocksize && this.quantType === other.quantType &&
      Object.is(this.offset, other.offset) &&
      (this.state2 === null ? other.state2 === null : other.state2 !== null && this.state2.equals(other.state2));
  }
}

function isBlob(v: unknown): boolean {
  return isTensor(v) || v instanceof Uint8Array;
}

function parseBlob(key: string, v: unknown): Record<string, unknown> {
  const bytes = isTensor(v) ? new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength) : (v as Uint8Array);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BnbError('E_STATE', `${key} is not valid UTF-8`);
  }
  // Python's json accepts NaN and +-Infinity; JSON.parse does not.
  const mark = '\\u0000pyfloat:';
  const safe = text.replace(/(:\s*)(-?Infinity|NaN)(?=\s*[,}])/g, `$1"${mark}$2"`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(safe, (_k, x) => (typeof x === 'string' && x.startsWith('\u0000pyfloat:') ? Number(x.slice(9)) : x));
  } catch (e) {
    throw new BnbError('E_STATE', `${key} does not hold valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new BnbError('E_STATE', `${key} must hold a JSON object, got ${show(parsed)}`);
  }
  return parsed as Record<string, unknown>;
}

const isNumber = (x: unknown): x is number => typeof x === 'number';
const isPositiveInt = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;
const isFloatDType = (x: unknown): x is FloatDType => (FLOAT_DTYPES as readonly unknown[]).includes(x);

function need<T>(d: Record<string, unknown>, key: string, ok: (x: unknown) => x is T, accepted: string): T {
  if (!(key in d)) throw new BnbError('E_STATE', `QuantState dict is missing ${show(key)} (${accepted})`);
  const v = d[key];
  if (!ok(v)) fail('E_STATE', key, v, accepted);
  return v;
}

function needTensor(d: Record<string, unknown>, key: string): Tensor {
  if (!(key in d)) throw new BnbError('E_STATE', `QuantState dict is missing ${show(key)} (a Tensor)`);
  return checkTensor(key, d[key]);
}
