// Robustness properties: chunking never changes a bit; QuantState and safetensors
// round trips; and no input at all — junk arguments, damaged states, mutated files —
// makes a public function throw anything but a BnbError (or hang).
import fc from 'fast-check';
import * as bnb from '../../src/index.js';
import {
  BnbError,
  QuantState,
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  parseSafetensors,
  quantize4bit,
  quantizeBlockwise,
  serializeSafetensors,
  tensor,
} from '../../src/index.js';
import { DTYPES } from '../../src/dtypes.js';
import { StoredTensor } from '../../src/io/safetensors/tensors.js';
import { BLOCKSIZES_4BIT, BLOCKSIZES_8BIT } from '../../src/ops/validate.js';
import { setChunkElements } from '../../src/backend/wasm/chunk.js';
import { Rng } from '../helpers/random.js';
import { FLOAT_DTYPES, assertSame, check, floatTensor, values } from './gen.js';

const DEFAULT_CHUNK = 1 << 18;

/** Every chunked op at the default chunk and at a random one: identical bytes. */
export const chunkProperty = () =>
  fc.property(
    fc.record({
      chunk: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 5000 })),
      seed: fc.integer(),
      op: fc.constantFrom(
        '4bit',
        'blockwise',
        'int8quant',
        'int8double',
        'int8dequant',
        'int8matmul',
        'mmdequant',
        'gemv',
        'fp8tensor',
        'fp8rows',
      ),
      blocksize4: fc.constantFrom(...BLOCKSIZES_4BIT),
      blocksize8: fc.constantFrom(...BLOCKSIZES_8BIT),
      dtype: fc.constantFrom(...FLOAT_DTYPES),
      rows: fc.integer({ min: 1, max: 40 }),
      cols: fc.integer({ min: 1, max: 300 }),
    }),
    (c) => {
      const rng = new Rng(c.seed);
      const n = c.rows * c.cols;
      const x = values(c.seed, n, ['zero', 'ties']);
      const i8a = Int8Array.from({ length: n }, () => rng.int(-128, 127)),
        i8b = Int8Array.from({ length: 7 * c.cols }, () => rng.int(-128, 127));
      const e4m3 = Uint8Array.from({ length: n }, () => rng.int(0, 255));
      const scales = Float32Array.from({ length: c.rows }, () => rng.next() * 4);
      const run = (): Tensor[] => {
        switch (c.op) {
          case '4bit': {
            const [p, s] = quantize4bit(floatTensor(x, [c.rows, c.cols], c.dtype), {
              blocksize: c.blocksize4,
              compressStatistics: true,
              quantType: 'nf4',
            });
            return [p, s.absmax, s.state2!.absmax, dequantize4bit(p, s)];
          }
          case 'blockwise': {
            const [q, s] = quantizeBlockwise(floatTensor(x, [n], c.dtype), { blocksize: c.blocksize8, nested: true });
            return [q, s.absmax, s.state2!.absmax, dequantizeBlockwise(q, s)];
          }
          case 'int8quant':
            return int8VectorwiseQuant(floatTensor(x, [c.rows, c.cols], 'float16'), { threshold: 1 }).filter(
              (t): t is Tensor => t !== null,
            );
          case 'int8double':
            return int8DoubleQuant(floatTensor(x, [c.rows, c.cols], 'float16'), { threshold: 1.5 }).filter((t): t is Tensor => t !== null);
          case 'int8dequant':
            return [
              int8VectorwiseDequant(
                tensor(
                  Int8Array.from(x, (v) => Math.max(-127, Math.min(127, Math.round(v * 30)))),
                  [c.rows, c.cols],
                ),
                tensor(values(c.seed + 1, c.rows, [])),
              ),
            ];
          case 'int8matmul': {
            return [int8LinearMatmul(tensor(i8a, [c.rows, c.cols]), tensor(i8b, [7, c.cols]))];
          }
          case 'mmdequant': {
            const A = tensor(
              Int32Array.from(x, (v) => Math.round(v * 1000)),
              [c.rows, c.cols],
            );
            return [
              int8MmDequant(A, tensor(new Float32Array(c.rows).fill(1.5)), tensor(new Float32Array(c.cols).fill(0.5)), {
                bias: floatTensor(new Float32Array(c.cols).fill(0.25), [c.cols], 'float32'),
              }),
            ];
          }
          case 'gemv': {
            const [p, s] = quantize4bit(floatTensor(x, [c.rows, c.cols], c.dtype), { blocksize: c.blocksize4, quantType: 'fp4' });
            const A = floatTensor(values(c.seed + 2, 3 * c.cols, []), [3, c.cols], c.dtype);
            return [gemv4bit(A, p, s)];
          }
          case 'fp8tensor':
          case 'fp8rows': {
            const W = tensor(e4m3, [c.rows, c.cols], 'float8_e4m3fn');
            const S = c.op === 'fp8tensor' ? tensor(scales.subarray(0, 1), [1]) : tensor(scales, [c.rows, 1]);
            return [dequantizeFp8(W, S, { dtype: c.dtype })];
          }
        }
        throw new Error(c.op);
      };
      const whole = run();
      setChunkElements(c.chunk);
      let chunked: Tensor[];
      try {
        chunked = run();
      } finally {
        setChunkElements(DEFAULT_CHUNK);
      }
      whole.forEach((t, i) => assertSame(chunked[i]!, t, `${c.op} output ${i} with chunk ${c.chunk}`));
    },
  );

/** asDict / fromDict (packed or not, with a module prefix): the same state and the same dequantized bytes. */
export const stateRoundTripProperty = () =>
  fc.property(
    fc.record({
      n: fc.integer({ min: 1, max: 5000 }),
      blocksize: fc.constantFrom(...BLOCKSIZES_4BIT),
      quantType: fc.constantFrom('nf4' as const, 'fp4' as const),
      nested: fc.boolean(),
      packed: fc.boolean(),
      prefix: fc.constantFrom('', 'model.layers.0.mlp.up_proj.weight.'),
      dtype: fc.constantFrom(...FLOAT_DTYPES),
      seed: fc.integer(),
    }),
    (c) => {
      const [p, s] = quantize4bit(floatTensor(values(c.seed, c.n, []), [c.n], c.dtype), {
        blocksize: c.blocksize,
        quantType: c.quantType,
        compressStatistics: c.nested,
      });
      // a module prefix needs the packed form (bnb requires the blob; bnbjs also takes an unprefixed unpacked dict)
      const prefix = c.packed ? c.prefix : '';
      const dict = Object.fromEntries(Object.entries(s.asDict({ packed: c.packed })).map(([k, v]) => [prefix + k, v]));
      const back = QuantState.fromDict(dict);
      check(back.equals(s), () => 'fromDict(asDict(s)) differs from s');
      assertSame(dequantize4bit(p, back), dequantize4bit(p, s), 'dequantized from the round-tripped state');
    },
  );

/** Random tensors of every stored dtype through serializeSafetensors and parseSafetensors: the same tensors back. */
export const safetensorsRoundTripProperty = () =>
  fc.property(
    fc.record({
      tensors: fc.uniqueArray(
        fc.record({
          name: fc.string({ maxLength: 12, unit: 'grapheme' }).filter((s) => s !== '__metadata__'),
          dtype: fc.constantFrom(
            'F64',
            'F32',
            'F16',
            'BF16',
            'I64',
            'I32',
            'I16',
            'I8',
            'U64',
            'U32',
            'U16',
            'U8',
            'BOOL',
            'F8_E4M3',
            'F8_E5M2',
          ),
          shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
        }),
        { maxLength: 6, selector: (t) => t.name },
      ),
      metadata: fc.option(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), { nil: null }),
      seed: fc.integer(),
    }),
    (c) => {
      const rng = new Rng(c.seed);
      const entries: [string, StoredTensor][] = [];
      const size: Record<string, number> = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2 };
      const stored: Record<string, string> = {
        F32: 'float32',
        F16: 'float16',
        BF16: 'bfloat16',
        U8: 'uint8',
        I8: 'int8',
        I32: 'int32',
        F8_E4M3: 'float8_e4m3fn',
      };
      for (const t of c.tensors) {
        const count = t.shape.reduce((a, b) => a * b, 1);
        const bytes = Uint8Array.from({ length: count * (size[t.dtype] ?? 1) }, () => rng.int(0, 255));
        const dt = stored[t.dtype];
        if (dt === undefined) {
          const raw = (
            {
              F64: 'float64',
              I64: 'int64',
              I16: 'int16',
              U64: 'uint64',
              U32: 'uint32',
              U16: 'uint16',
              BOOL: 'bool',
              F8_E5M2: 'float8_e5m2',
            } as Record<string, string>
          )[t.dtype]!;
          entries.push([t.name, { dtype: raw as never, shape: t.shape, data: bytes, device: 'cpu' }]);
        } else {
          const T = {
            float32: Float32Array,
            float16: Uint16Array,
            bfloat16: Uint16Array,
            uint8: Uint8Array,
            int8: Int8Array,
            int32: Int32Array,
            float8_e4m3fn: Uint8Array,
          }[dt]!;
          entries.push([t.name, tensor(new T(bytes.buffer, 0, bytes.byteLength / T.BYTES_PER_ELEMENT), t.shape, dt as never)]);
        }
      }
      const tensors = Object.fromEntries(entries); // own properties, even "__proto__"
      const file = serializeSafetensors(tensors, { metadata: c.metadata });
      const back = parseSafetensors(file);
      check(
        JSON.stringify(back.metadata) === JSON.stringify(c.metadata),
        () => `metadata ${JSON.stringify(back.metadata)} vs ${JSON.stringify(c.metadata)}`,
      );
      check(Object.keys(back.tensors).length === c.tensors.length, () => 'tensor count');
      for (const [name, t] of Object.entries(tensors)) {
        const b = Object.hasOwn(back.tensors, name) ? back.tensors[name]! : undefined;
        if (b === undefined || b.dtype !== t.dtype || b.shape.join() !== t.shape.join()) throw new Error(`tensor ${JSON.stringify(name)}`);
        check(
          Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength).equals(
            Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
          ),
          () => `bytes of ${name}`,
        );
      }
      check(
        Buffer.from(serializeSafetensors(back.tensors, { metadata: back.metadata })).equals(Buffer.from(file)),
        () => 'serialize(parse(file)) != file',
      );
    },
  );

/** Returns normally or throws a BnbError; anything else (TypeError, RangeError, a wasm trap) fails. */
export function onlyBnbErrors(what: string, f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof BnbError))
      throw new Error(`${what} threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`, { cause: e });
    if (e.message.length < 24) {
      throw new Error(`${what}: BnbError ${e.code} with an uninformative message ${JSON.stringify(e.message)}`);
    }
  }
}

/** A valid file, then damaged: bytes flipped, truncated, extended, its header edited. */
export const safetensorsFuzzProperty = () =>
  fc.property(
    fc.record({
      seed: fc.integer(),
      edits: fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
          fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
          fc.record({ kind: fc.constant('extend' as const), at: fc.integer({ min: 1, max: 20 }) }),
          fc.record({
            kind: fc.constant('header' as const),
            at: fc.nat(),
            text: fc.constantFrom(
              '"',
              '{',
              '}',
              ']',
              '[',
              ',',
              '0',
              '-1',
              '1e400',
              '18446744073709551617',
              'null',
              '"\\ud800"',
              '"F64"',
              '"BF16"',
              '[1,2]',
              '"__metadata__"',
              '\u00ff',
            ),
          }),
          fc.record({ kind: fc.constant('length' as const), at: fc.integer({ min: 0, max: 7 }), value: fc.integer({ min: 0, max: 255 }) }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
    }),
    (c) => {
      const rng = new Rng(c.seed);
      const tensors: Record<string, Tensor> = {};
      for (let i = rng.int(1, 4); i > 0; i--) tensors[`t${i}`] = tensor(Float32Array.from({ length: rng.int(0, 6) }, () => rng.normal()));
      let file: Uint8Array = serializeSafetensors(tensors, { metadata: rng.next() < 0.5 ? { format: 'pt' } : null });
      for (const e of c.edits) {
        const n = file.length;
        if (e.kind === 'flip') file[e.at % n] = e.value;
        else if (e.kind === 'truncate') file = file.slice(0, e.at % n);
        else if (e.kind === 'extend') file = Uint8Array.from([...file, ...new Uint8Array(e.at)]);
        else if (e.kind === 'length' && n >= 8) file[e.at] = e.value;
        else if (e.kind === 'header' && n > 8) {
          const hl = Math.min(n - 8, new DataView(file.buffer, file.byteOffset).getUint32(0, true));
          const text = new TextDecoder().decode(file.subarray(8, 8 + hl));
          const at = e.at % (text.length + 1);
          const edited = new TextEncoder().encode(text.slice(0, at) + e.text + text.slice(at));
          const out = new Uint8Array(8 + edited.length + (n - 8 - hl));
          out.set(file.subarray(0, 8));
          new DataView(out.buffer).setUint32(0, edited.length, true);
          out.set(edited, 8);
          out.set(file.subarray(8 + hl), 8 + edited.length);
          file = out;
        }
      }
      onlyBnbErrors('parseSafetensors', () => parseSafetensors(file));
    },
  );

// ---------------------------------------------------------------------------
// Junk arguments for every public function

const SMALL = new Float32Array([0.5, -1, 2, 0]);

/** A detached Float32Array (its buffer transferred away). */
function detached(): Float32Array {
  const b = new ArrayBuffer(16);
  const v = new Float32Array(b);
  structuredClone(b, { transfer: [b] });
  return v;
}

const junkTensor = fc.oneof(
  fc
    .record({
      dtype: fc.constantFrom(...DTYPES, 'float64', '', 'F32'),
      shape: fc.constantFrom([4], [2, 2], [0], [], [-1], [4.5], [2 ** 53], 'x'),
      data: fc.constantFrom('f32', 'u16', 'u8', 'i8', 'i32', 'f64', 'detached', 'dataview', 'none'),
    })
    .map((r) => ({
      dtype: r.dtype,
      shape: r.shape,
      device: 'cpu',
      data:
        r.data === 'f32'
          ? SMALL.slice()
          : r.data === 'u16'
            ? new Uint16Array(4)
            : r.data === 'u8'
              ? new Uint8Array(4)
              : r.data === 'i8'
                ? new Int8Array(4)
                : r.data === 'i32'
                  ? new Int32Array(4)
                  : r.data === 'f64'
                    ? new Float64Array(4)
                    : r.data === 'detached'
                      ? detached()
                      : r.data === 'dataview'
                        ? new DataView(new ArrayBuffer(16))
                        : undefined,
    })),
  fc.constantFrom(
    tensor(SMALL.slice(), [2, 2]),
    tensor(new Uint16Array(64).fill(0x3c00), [8, 8], 'float16'),
    tensor(new Int8Array(6), [2, 3]),
    tensor(new Uint8Array(32), [32, 1]),
    tensor(new Uint8Array(32), [1, 32]),
    tensor(new Uint8Array(64), [8, 8]),
    tensor(new Float32Array(16).fill(1), [2, 8]),
    tensor(new Uint16Array(8).fill(0x3f80), [8], 'bfloat16'),
    tensor(new Float32Array(1)),
    tensor(new Float32Array(0), [0]),
    tensor(new Int32Array(6), [3, 2]),
    tensor(new Uint8Array(6), [2, 3], 'float8_e4m3fn'),
    { dtype: 'float32', shape: [4], data: SMALL.slice(), device: 'cuda:0' },
    { dtype: 'float32', shape: [4], data: SMALL.slice(), device: 'tpu' },
  ),
);

function realState(nested: boolean, fourBit: boolean): QuantState {
  const A = tensor(
    Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)),
    [8, 8],
  );
  return fourBit
    ? quantize4bit(A, { compressStatistics: nested, quantType: 'nf4' })[1]
    : quantizeBlockwise(A, { blocksize: 64, nested })[1];
}

const junkState = fc
  .record({
    nested: fc.boolean(),
    fourBit: fc.boolean(),
    field: fc.constantFrom(
      'absmax',
      'shape',
      'code',
      'blocksize',
      'quantType',
      'dtype',
      'offset',
      'state2',
      'state2.absmax',
      'state2.code',
      'state2.blocksize',
      'none',
    ),
    value: fc.constantFrom<unknown>(
      undefined,
      null,
      0,
      -1,
      3.5,
      NaN,
      2 ** 40,
      'nf4',
      'int4',
      'float64',
      [],
      [8, 8],
      [64],
      [-8],
      [2 ** 30, 2 ** 30],
      {},
      SMALL,
      'tensor',
      'detached',
    ),
  })
  .map((j) => {
    const s = realState(j.nested, j.fourBit);
    const v =
      j.value === 'tensor'
        ? tensor(SMALL.slice())
        : j.value === 'detached'
          ? { dtype: 'float32', shape: [4], data: detached(), device: 'cpu' }
          : j.value;
    if (j.field.startsWith('state2.')) {
      if (s.state2) (s.state2 as unknown as Record<string, unknown>)[j.field.slice(7)] = v;
    } else if (j.field !== 'none') (s as unknown as Record<string, unknown>)[j.field] = v;
    return s;
  });

/** A junk value made only when the property runs. */
class Lazy {
  constructor(readonly make: () => unknown) {}
  toString(): string {
    return `hostile ${this.make.toString().slice(6, 70)}`;
  }
}

/** A Proxy whose every trap throws (as a hostile or revoked object does). */
function throwingProxy<T extends object>(target: T): T {
  const trap = () => {
    throw new Error('trap');
  };
  return new Proxy(target, {
    get: trap,
    has: trap,
    ownKeys: trap,
    getPrototypeOf: trap,
    getOwnPropertyDescriptor: trap,
    set: trap,
    defineProperty: trap,
    deleteProperty: trap,
    apply: trap,
    construct: trap,
    isExtensible: trap,
    preventExtensions: trap,
    setPrototypeOf: trap,
  });
}

/** A revoked Proxy: every operation on it is a TypeError. */
function revoked(): object {
  const r = Proxy.revocable({}, {});
  r.revoke();
  return r.proxy;
}

/** Objects whose fields throw or lie when read. */
const hostile = fc.constantFrom<() => unknown>(
  () => throwingProxy({}),
  () => throwingProxy([1, 2]),
  () => throwingProxy(tensor(SMALL.slice(), [2, 2])),
  () => revoked(),
  () => throwingProxy(() => 1),
  // a tensor whose data getter throws, whose shape is a throwing Proxy, whose dtype getter throws
  () =>
    Object.defineProperty({ dtype: 'float32', shape: [4], device: 'cpu' }, 'data', {
      enumerable: true,
      get() {
        throw new RangeError('no');
      },
    }),
  () => ({ dtype: 'float32', shape: throwingProxy([4]), data: SMALL.slice(), device: 'cpu' }),
  () =>
    Object.defineProperty({ shape: [4], data: SMALL.slice(), device: 'cpu' }, 'dtype', {
      enumerable: true,
      get() {
        throw new TypeError('no');
      },
    }),
  () => ({ dtype: 'float32', shape: [4], data: SMALL.slice(), device: throwingProxy({}) }),
  // options and states whose fields throw
  () =>
    Object.defineProperty({}, 'blocksize', {
      enumerable: true,
      get() {
        throw new Error('no');
      },
    }),
  () =>
    Object.defineProperty({}, 'out', {
      enumerable: true,
      get() {
        throw new Error('no');
      },
    }),
  () =>
    Object.defineProperty(realState(true, true), 'absmax', {
      get() {
        throw new Error('no');
      },
    }),
  () =>
    Object.defineProperty(realState(false, false), 'state2', {
      get() {
        throw new Error('no');
      },
    }),
  // a typed array that lies about its length, an object posing as one
  () => ({ dtype: 'float32', shape: [64], data: Object.defineProperty(new Float32Array(1), 'length', { value: 64 }), device: 'cpu' }),
  () => ({ dtype: 'float32', shape: [1], data: Object.create(Float32Array.prototype), device: 'cpu' }),
  () => Object.assign(Object.create(null), { dtype: 'float32', shape: [4], data: SMALL.slice(), device: 'cpu' }),
  () => ({
    toString() {
      throw new Error('no');
    },
    valueOf() {
      throw new Error('no');
    },
  }),
  () => ({
    [Symbol.toPrimitive]() {
      throw new Error('no');
    },
  }),
  () => Object.freeze([Symbol('s')]),
  () => new Proxy([2, 2], { get: (t, k) => (k === 'length' ? 2 ** 40 : Reflect.get(t, k)) }),
);

const junk: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom<unknown>(
      undefined,
      null,
      true,
      0,
      -0,
      -1,
      1.5,
      NaN,
      Infinity,
      -Infinity,
      2 ** 53,
      2 ** 64,
      1e308,
      -1e308,
      Number.MIN_VALUE,
      65535,
      65536,
      64n,
      -(2n ** 70n),
      '',
      'nf4',
      'float32',
      'cuda',
      'cpu',
      'hpu:0',
      '1.21.0',
      '\u0000',
      Symbol('s'),
      [],
      [1, 2],
      [-1],
      [2 ** 53, 2],
      [NaN],
      [[1]],
      () => 1,
      new Date(0),
      /x/g,
      new Map(),
      new Uint8Array(3),
      new Float64Array(2),
      new ArrayBuffer(8),
      new DataView(new ArrayBuffer(4)),
    ),
  },
  // made inside the property, not by fast-check (which inspects the values it generates)
  { weight: 2, arbitrary: hostile.map((make) => new Lazy(make)) },
  { weight: 4, arbitrary: junkTensor },
  { weight: 2, arbitrary: junkState },
  {
    weight: 3,
    arbitrary: fc.dictionary(
      fc.constantFrom(
        'blocksize',
        'quantType',
        'quantStorage',
        'compressStatistics',
        'allowNonFinite',
        'code',
        'nested',
        'threshold',
        'bias',
        'dtype',
        'blockSize',
        'out',
        'absmax',
        'shape',
        'signed',
        'totalBits',
        'maxExponentBits',
        'offset',
        'useExtraValue',
        'addZero',
        'exponentBits',
        'precisionBits',
        'metadata',
        'quant_type',
        'transpose',
      ),
      fc.oneof(
        fc.constantFrom<unknown>(
          undefined,
          null,
          true,
          0,
          -3,
          64,
          4096,
          1e9,
          0.5,
          NaN,
          'nf4',
          'fp4',
          'float16',
          'uint8',
          'x',
          [],
          [4],
          [2, 2],
        ),
        junkTensor,
      ),
      { maxKeys: 3 },
    ),
  },
);

/**
 * Left out here: functions that change global state even with valid junk (init,
 * setWasmBuild, setForcedBackend, registerKernel, setGaudiSoftwareVersion; the Gaudi probes
 * run programs), the async file functions (which write where a junk string points) and the
 * async readback (a rejection, not a throw): test/hardening-validation.test.ts calls each
 * of those with junk instead.
 */
export const LEFT_OUT = [
  'BnbError',
  'QuantState',
  'init',
  'setWasmBuild',
  'registerKernel',
  'setForcedBackend',
  'setGaudiSoftwareVersion',
  'readSafetensors',
  'writeSafetensors',
  'probe',
  'probeGaudi',
  'readTensor',
  'toDeviceAsync',
];
/** Settings that a valid junk value would change for every later call: put back after each call. */
const RESTORE: Record<string, () => () => void> = {
  setWasmMemoryLimit: () => {
    const before = bnb.wasmMemoryLimit();
    return () => bnb.setWasmMemoryLimit(before);
  },
  setNumThreads: () => {
    const before = bnb.numThreads();
    return () => bnb.setNumThreads(before);
  },
};
const FUNCTIONS: [string, (...a: unknown[]) => unknown][] = Object.entries(bnb)
  .filter(([name, f]) => typeof f === 'function' && !LEFT_OUT.includes(name))
  .map(([name, f]) => [
    name,
    RESTORE[name]
      ? (...a: unknown[]) => {
          const restore = RESTORE[name]!();
          try {
            return (f as (...a: unknown[]) => unknown)(...a);
          } finally {
            restore();
          }
        }
      : (f as (...a: unknown[]) => unknown),
  ]);
FUNCTIONS.push(['QuantState.fromDict', (d, o) => QuantState.fromDict(d as never, o as never)]);
FUNCTIONS.push(['new QuantState', (f) => new QuantState(f as never)]);
FUNCTIONS.push(['QuantState.asDict', (o) => realState(true, true).asDict(o as never)]);
FUNCTIONS.push(['QuantState.equals', (o) => realState(true, true).equals(o as never)]);
// the in-memory form only: a string first argument would write a file
FUNCTIONS.push(['writeSafetensors(tensors)', (t, o) => (typeof t === 'string' ? null : bnb.writeSafetensors(t as never, o as never))]);

export const FUNCTION_NAMES = FUNCTIONS.map(([n]) => n);

/** Any public function on 0 to 4 junk arguments: a result or a BnbError with a message, nothing else. */
export const junkArgumentsProperty = () =>
  fc.property(fc.integer({ min: 0, max: FUNCTIONS.length - 1 }), fc.array(junk, { maxLength: 4 }), (i, given) => {
    const [name, f] = FUNCTIONS[i]!;
    const args = given.map((a) => (a instanceof Lazy ? a.make() : a));
    onlyBnbErrors(`${name}(${given.map(describe).join(', ')})`, () => f(...args));
  });

/** A junk argument in a failure message (never throws, whatever it is). */
export function describe(a: unknown): string {
  try {
    return a instanceof Lazy
      ? String(a)
      : typeof a === 'symbol'
        ? 'Symbol'
        : typeof a === 'bigint'
          ? `${a}n`
          : typeof a === 'function'
            ? 'function'
            : String(JSON.stringify(a)?.slice(0, 60));
  } catch {
    return 'a hostile object';
  }
}

/** A real state dict, then damaged: fields removed, replaced, the JSON blob rewritten. */
export const stateDictFuzzProperty = () =>
  fc.property(
    fc.record({
      nested: fc.boolean(),
      packed: fc.boolean(),
      remove: fc.array(
        fc.constantFrom(
          'absmax',
          'quant_map',
          'nested_absmax',
          'nested_quant_map',
          'nested_offset',
          'nested_blocksize',
          'quant_type',
          'shape',
          'dtype',
          'blob',
        ),
        { maxLength: 2 },
      ),
      blob: fc.option(
        fc.oneof(
          fc.constantFrom(
            '{',
            '[]',
            'null',
            '{"quant_type": "nf4"}',
            '{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [8, 8]}',
            '{"quant_type": "nf4", "blocksize": 63, "dtype": "float32", "shape": [8, 8]}',
            '{"quant_type": "nf4", "blocksize": 64, "dtype": "float64", "shape": [8, 8]}',
            '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [9, 9]}',
            '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [-1]}',
            '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [8, 8], "nested_offset": NaN}',
            '{"__proto__": {"x": 1}}',
            '\u00ff\u00fe',
          ),
          fc.json(),
        ),
        { nil: undefined },
      ),
      replace: fc.option(
        fc.record({ key: fc.constantFrom('absmax', 'quant_map', 'nested_absmax', 'nested_quant_map'), value: junkTensor }),
        { nil: undefined },
      ),
    }),
    (c) => {
      const A = tensor(
        Float32Array.from({ length: 64 }, (_, i) => Math.cos(i)),
        [8, 8],
      );
      const [p, s] = quantize4bit(A, { quantType: 'nf4', compressStatistics: c.nested });
      const d: Record<string, unknown> = s.asDict({ packed: c.packed });
      for (const k of c.remove) delete d[k === 'blob' ? 'quant_state.bitsandbytes__nf4' : k];
      if (c.blob !== undefined && c.packed) d['quant_state.bitsandbytes__nf4'] = tensor(new TextEncoder().encode(c.blob));
      if (c.replace) d[c.replace.key] = c.replace.value;
      let state: QuantState | null = null;
      onlyBnbErrors('QuantState.fromDict', () => (state = QuantState.fromDict(d)));
      if (state !== null) onlyBnbErrors('dequantize4bit(fromDict(damaged))', () => dequantize4bit(p, state!));
    },
  );
