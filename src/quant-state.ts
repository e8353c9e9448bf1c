import { BnbError, fail, show } from './errors.js';
import { guard, isInstance, isPlainObject, readOptions, readShape } from './args.js';
import { viewOf } from './views.js';
import { DType, FLOAT_DTYPES, FloatDType } from './dtypes.js';
import { Tensor, checkNotDetached, checkTensor, isTensor, numel, tensor } from './tensor.js';
import { BLOCKSIZES_4BIT, BLOCKSIZES_8BIT, checkBlocksize } from './checks.js';
import { QuantType } from './maps.js';
import { PyFloat, PyJson, pyJsonDumps } from './json/dumps.js';
import { pyLoads, toPlain } from './json/parse.js';

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

/** fromDict's options. */
export interface FromDictOptions {
  /** accept NaN or Inf in absmax, nested_absmax or nested_offset (bitsandbytes' CUDA behaviour: they dequantize to NaN or Inf) */
  allowNonFinite?: boolean;
}

/** What fromDict takes: either form of asDict, keys with or without a module prefix. */
export type QuantStateDict = Record<string, unknown>;

/**
 * asDict({ packed: true }) of a 4-bit state: its tensors (absmax, quant_map; nested_absmax and
 * nested_quant_map with nested statistics) and `quant_state.bitsandbytes__<type>`, the uint8
 * tensor of the JSON of the other fields. All tensors: what a checkpoint stores.
 */
export type PackedQuantStateDict = Record<string, Tensor>;

/** asDict(): every field under bitsandbytes' names, the nested_* ones with nested statistics. */
export type UnpackedQuantStateDict = {
  quant_type: QuantType | null;
  absmax: Tensor;
  blocksize: number;
  quant_map: Tensor;
  dtype: DType;
  shape: number[] | null;
  nested_absmax?: Tensor;
  nested_blocksize?: number;
  nested_quant_map?: Tensor;
  nested_dtype?: DType;
  nested_offset?: number | null;
};

const QS_SUFFIXES = ['bitsandbytes__fp4', 'bitsandbytes__nf4'];
const NESTED_KEYS = ['nested_absmax', 'nested_quant_map', 'nested_blocksize', 'nested_dtype', 'nested_offset'];
const VALID_KEYS = [
  'absmax',
  'quant_map',
  'nested_absmax',
  'nested_quant_map',
  'quant_state',
  'quant_type',
  'blocksize',
  'dtype',
  'shape',
  'nested_blocksize',
  'nested_dtype',
  'nested_offset',
];

function copyTensor(argument: string, t: Tensor): Tensor {
  const c = checkTensor(argument, t);
  return tensor(c.data.slice(), [...c.shape], c.dtype);
}

/**
 * bitsandbytes' QuantState: what dequantization needs besides the quantized data.
 * `offset` is the f32 value of bnb's 0-dim offset tensor.
 */
export class QuantState {
  readonly #brand = true;
  absmax: Tensor;
  shape: number[] | null;
  code: Tensor;
  blocksize: number;
  quantType: QuantType | null;
  dtype: DType;
  offset: number | null;
  state2: QuantState | null;

  constructor(f: QuantStateFields) {
    if (typeof f !== 'object' || f === null)
      fail('E_STATE', 'fields', f, 'an object of QuantState fields ({ absmax, code, blocksize, ... })');
    // each field read once (the ops check them where they use them)
    const g = guard(
      'fields',
      () => ({
        absmax: f.absmax,
        shape: f.shape,
        code: f.code,
        blocksize: f.blocksize,
        quantType: f.quantType,
        dtype: f.dtype,
        offset: f.offset,
        state2: f.state2,
      }),
      'E_STATE',
    );
    this.absmax = g.absmax;
    this.shape = g.shape ?? null;
    this.code = g.code;
    this.blocksize = g.blocksize;
    this.quantType = g.quantType ?? null;
    this.dtype = g.dtype ?? 'float32';
    this.offset = g.offset ?? null;
    this.state2 = g.state2 ?? null;
  }

  /**
   * True for a QuantState, or an object made with its prototype (a copy such as
   * Object.assign(Object.create(QuantState.prototype), s)); a Proxy whose traps throw
   * is not one. Its fields are read (once) where it is used.
   */
  static isState(x: unknown): x is QuantState {
    return typeof x === 'object' && x !== null && (#brand in x || isInstance(x, QuantState));
  }

  get nested(): boolean {
    return this.state2 !== null;
  }

  /**
   * bnb's as_dict. Unpacked: every field under bnb's key names. Packed (4-bit
   * states only, as in bnb, whose blob is named by the quant type): the tensors plus
   * `quant_state.bitsandbytes__<type>`, a uint8 tensor of the JSON that Python's
   * json.dumps writes for the other fields.
   */
  asDict(options: { packed: true }): PackedQuantStateDict;
  asDict(options?: { packed?: false }): UnpackedQuantStateDict;
  asDict(options?: { packed?: boolean }): PackedQuantStateDict | UnpackedQuantStateDict;
  asDict(options: { packed?: boolean } = {}): PackedQuantStateDict | UnpackedQuantStateDict {
    const packed = readOptions('asDict', options, ['packed']).packed ?? false;
    if (typeof packed !== 'boolean') fail('E_ARGUMENT', 'packed', packed, 'true or false');
    const d: UnpackedQuantStateDict = {
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
        nested_quant_map: copyTensor('state2.code', s2.code),
        nested_dtype: s2.dtype,
        nested_offset: this.offset,
      });
    }
    if (!packed) return d;
    if (this.quantType === null)
      throw new BnbError(
        'E_STATE',
        'an 8-bit state has no packed form (bitsandbytes packs 4-bit states, naming the blob by their quant_type): use asDict()',
      );
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
    const out: PackedQuantStateDict = {};
    for (const [k, v] of Object.entries(d)) if (isTensor(v)) out[k] = v;
    const blob = new TextEncoder().encode(pyJsonDumps(json));
    out[`quant_state.bitsandbytes__${this.quantType}`] = tensor(blob, [blob.length], 'uint8');
    return out;
  }

  /**
   * bnb's from_dict: packed or unpacked form, keys with or without a module prefix.
   * The fields are checked against each other (absmax length vs shape and blocksize,
   * code lengths, nested statistics all present or all absent), so that a hostile or
   * damaged state dict fails here with the field named, never later with a wrong answer.
   */
  static fromDict(dict: QuantStateDict, opts: FromDictOptions = {}): QuantState {
    if (!isPlainObject('dict', dict)) fail('E_STATE', 'dict', dict, 'an object of QuantState items');
    const o = readOptions('QuantState.fromDict', opts, ['allowNonFinite']);
    const allowNonFinite = o.allowNonFinite ?? false;
    if (typeof allowNonFinite !== 'boolean') fail('E_ARGUMENT', 'allowNonFinite', allowNonFinite, 'true or false');
    // every item read once, into a Map: what follows never reads `dict` again
    const entries = new Map<string, unknown>(guard('dict', () => Object.entries(dict), 'E_STATE'));
    const qsKeys = [...entries].filter(([k, v]) => k.includes('quant_state') && isBlob(v)).map(([k]) => k);
    if (!entries.has('quant_type')) {
      if (qsKeys.length === 0) {
        throw new BnbError('E_STATE', 'Expected packed or unpacked quant_state items, found neither');
      }
      if (qsKeys.length !== 1 || !QS_SUFFIXES.includes(qsKeys[0]!.split('.').pop()!)) {
        throw new BnbError(
          'E_STATE',
          `There should be exactly one \`quant_state\` item with ending from ${show(QS_SUFFIXES)}; found ${show(qsKeys)}`,
        );
      }
    }
    if (qsKeys.length === 1) {
      const key = qsKeys[0]!;
      const blob = parseBlob(key, entries.get(key));
      entries.delete(key);
      const suffix = key.split('.').pop()!;
      if (QS_SUFFIXES.includes(suffix) && blob.quant_type !== suffix.slice('bitsandbytes__'.length)) {
        throw new BnbError(
          'E_STATE',
          `${key} holds quant_type = ${show(blob.quant_type)} but its name says ${show(suffix.slice('bitsandbytes__'.length))}`,
        );
      }
      for (const [k, v] of Object.entries(blob)) entries.set(k, v);
    }
    const d: Record<string, unknown> = Object.create(null);
    for (const [k, v] of entries) {
      const name = k.split('.').pop()!;
      if (!VALID_KEYS.includes(name)) {
        throw new BnbError(
          'E_STATE_KEY',
          `QuantState dict key ${show(k)} is not a QuantState item: expected keys ending in one of ${VALID_KEYS.join(', ')}`,
        );
      }
      d[name] = v;
    }
    const nestedHave = NESTED_KEYS.filter((k) => Object.hasOwn(d, k));
    if (nestedHave.length > 0 && nestedHave.length < NESTED_KEYS.length) {
      throw new BnbError(
        'E_STATE',
        `the nested statistics are partly present: found ${nestedHave.join(', ')} but not ` +
          `${NESTED_KEYS.filter((k) => !Object.hasOwn(d, k)).join(', ')} (expected all of ${NESTED_KEYS.join(', ')} or none)`,
      );
    }
    let offset: number | null = null;
    let state2: QuantState | null = null;
    if (Object.hasOwn(d, 'nested_absmax')) {
      const given = need(d, 'nested_offset', isNumber, 'a number');
      offset = Math.fround(given);
      if (!allowNonFinite && !Number.isFinite(offset)) {
        throw new BnbError(
          'E_STATE',
          `nested_offset = ${given} is not finite as a float32 (${offset}): every dequantized value would be NaN or Inf; ` +
            'pass allowNonFinite: true to accept non-finite statistics',
        );
      }
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
    const SHAPE = 'an array of non-negative integers (at most 2^53 - 1 elements) or null';
    const shape = d.shape === undefined || d.shape === null ? null : readShape('shape', d.shape, 'E_STATE', SHAPE);
    if (shape !== null && !Number.isSafeInteger(numel(shape))) fail('E_STATE', 'shape', shape, SHAPE);
    const state = new QuantState({
      quantType: quantType as QuantType | null,
      absmax: needTensor(d, 'absmax'),
      blocksize: need(d, 'blocksize', isPositiveInt, 'a positive integer'),
      code: needTensor(d, 'quant_map'),
      dtype: need(d, 'dtype', isFloatDType, `one of ${FLOAT_DTYPES.join(', ')}`),
      shape: shape as number[] | null,
      offset,
      state2,
    });
    checkConsistent(state);
    if (!allowNonFinite) {
      checkFiniteStats('absmax', state.state2 === null ? state.absmax : null);
      checkFiniteStats('nested_absmax', state.state2?.absmax ?? null);
    }
    return state;
  }

  /** bnb's __eq__: tensors within 1e-6, everything else exactly. */
  equals(other: QuantState): boolean {
    if (!QuantState.isState(other)) return false; // as bnb's __eq__
    const close = (name: string, a: unknown, b: unknown) => {
      if (!isTensor(a) || !isTensor(b)) return a === b;
      const x = checkTensor(`state.${name}`, a),
        y = checkTensor(`other.${name}`, b);
      return (
        x.dtype === y.dtype &&
        x.data.length === y.data.length &&
        x.data.every((v, i) => Math.abs(v - y.data[i]!) <= 1e-6 + 1e-5 * Math.abs(y.data[i]!))
      );
    };
    // each field of both read once (a state's fields may be getters)
    const fields = (argument: string, s: QuantState) =>
      guard(
        argument,
        () => ({
          absmax: s.absmax as unknown,
          code: s.code as unknown,
          shape: s.shape as unknown,
          dtype: s.dtype as unknown,
          blocksize: s.blocksize as unknown,
          quantType: s.quantType as unknown,
          offset: s.offset as unknown,
          state2: s.state2 as unknown,
        }),
        'E_STATE',
      );
    const a = fields('state', this),
      b = fields('other', other);
    const sameShape =
      a.shape === null || b.shape === null
        ? a.shape === b.shape
        : JSON.stringify(readShape('state.shape', a.shape, 'E_STATE')) === JSON.stringify(readShape('other.shape', b.shape, 'E_STATE'));
    return (
      close('absmax', a.absmax, b.absmax) &&
      close('code', a.code, b.code) &&
      sameShape &&
      a.dtype === b.dtype &&
      a.blocksize === b.blocksize &&
      a.quantType === b.quantType &&
      Object.is(a.offset, b.offset) &&
      (a.state2 === null || b.state2 === null
        ? a.state2 === b.state2
        : QuantState.isState(a.state2) && QuantState.isState(b.state2) && a.state2.equals(b.state2))
    );
  }
}

/** The fields of a state checked against each other (what fromDict accepts). */
function checkConsistent(s: QuantState): void {
  const fourBit = s.quantType !== null;
  checkBlocksize('blocksize', s.blocksize, fourBit ? BLOCKSIZES_4BIT : BLOCKSIZES_8BIT);
  const codeLength = fourBit ? 16 : 256;
  if (s.code.data.length !== codeLength) {
    throw new BnbError(
      'E_CODE',
      `quant_map has ${s.code.data.length} entries: a ${fourBit ? `4-bit (${s.quantType})` : '8-bit'} code has ${codeLength}`,
    );
  }
  const s2 = s.state2;
  const absmaxDType = s2 === null ? 'float32' : 'uint8';
  if (s.absmax.dtype !== absmaxDType) {
    fail('E_DTYPE', 'absmax.dtype', s.absmax.dtype, `'${absmaxDType}' (${s2 === null ? 'plain' : 'nested, double-quantized'} statistics)`);
  }
  if (s.shape !== null) {
    const blocks = Math.ceil(numel(s.shape) / s.blocksize);
    if (s.absmax.data.length !== blocks) {
      throw new BnbError(
        'E_STATE',
        `absmax has ${s.absmax.data.length} entries but shape ${show(s.shape)} with blocksize ${s.blocksize} has ${blocks} blocks`,
      );
    }
  }
  if (s2 !== null) {
    checkBlocksize('nested_blocksize', s2.blocksize, BLOCKSIZES_8BIT);
    if (s2.code.data.length !== 256) throw new BnbError('E_CODE', `nested_quant_map has ${s2.code.data.length} entries: expected 256`);
    if (s2.absmax.dtype !== 'float32') fail('E_DTYPE', 'nested_absmax.dtype', s2.absmax.dtype, "'float32'");
    const blocks = Math.ceil(s.absmax.data.length / s2.blocksize);
    if (s2.absmax.data.length !== blocks) {
      throw new BnbError(
        'E_STATE',
        `nested_absmax has ${s2.absmax.data.length} entries but ${s.absmax.data.length} absmax codes with nested_blocksize ${s2.blocksize} make ${blocks} blocks`,
      );
    }
  }
}

/** f32 statistics with a NaN or Inf are E_STATE: they decode to NaN or Inf silently (null: nothing to check). */
function checkFiniteStats(key: string, t: Tensor | null): void {
  if (t === null || t.dtype !== 'float32') return;
  const at = firstNonFinite(t.data as Float32Array);
  if (at >= 0) {
    throw new BnbError(
      'E_STATE',
      `${key} has a non-finite value (${t.data[at]}) at index ${at}: the values of its blocks would dequantize to NaN or Inf; ` +
        'pass allowNonFinite: true to accept non-finite statistics',
    );
  }
}

function isBlob(v: unknown): boolean {
  return isTensor(v) || viewOf(v)?.kind === 'Uint8Array';
}

/** bnb writes about 150 bytes; anything this large is not a quant_state blob. */
export const MAX_BLOB_BYTES = 1 << 16;

function parseBlob(key: string, v: unknown): Record<string, unknown> {
  const data = isTensor(v) ? checkTensor(key, v).data : (v as Uint8Array);
  checkNotDetached(key, data);
  const g = viewOf(data)!;
  if (g.byteLength > MAX_BLOB_BYTES) {
    throw new BnbError('E_STATE', `${key} has ${g.byteLength} bytes: a quant_state JSON blob has at most ${MAX_BLOB_BYTES}`);
  }
  const bytes = new Uint8Array(g.buffer, g.byteOffset, g.byteLength);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BnbError('E_STATE', `${key} is not valid UTF-8`);
  }
  // Python's json.loads: NaN and +-Infinity are floats. Numbers are parsed as numbers
  // (JsonNumber), never recognised inside strings, so a string stays a string.
  const parsed = pyLoads(text, 'E_STATE', key, 'a JSON object of QuantState fields');
  if (!(parsed instanceof Map)) throw new BnbError('E_STATE', `${key} must hold a JSON object, got ${show(toPlain(parsed))}`);
  return toPlain(parsed) as Record<string, unknown>;
}

const isNumber = (x: unknown): x is number => typeof x === 'number';
const isPositiveInt = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;
const isFloatDType = (x: unknown): x is FloatDType => (FLOAT_DTYPES as readonly unknown[]).includes(x);

function need<T>(d: Record<string, unknown>, key: string, ok: (x: unknown) => x is T, accepted: string): T {
  if (!Object.hasOwn(d, key)) throw new BnbError('E_STATE', `QuantState dict is missing ${show(key)} (${accepted})`);
  const v = d[key];
  if (!ok(v)) fail('E_STATE', key, v, accepted);
  return v;
}

function needTensor(d: Record<string, unknown>, key: string): Tensor {
  if (!Object.hasOwn(d, key)) throw new BnbError('E_STATE', `QuantState dict is missing ${show(key)} (a Tensor)`);
  return checkTensor(key, d[key]);
}

/** Index of the first NaN or Inf in `x`, or -1. */
function firstNonFinite(x: ArrayLike<number>): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}
