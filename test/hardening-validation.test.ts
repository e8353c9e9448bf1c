// Hostile and careless input, argument by argument: each a BnbError with a stable
// code and a message naming the argument, its value and what is accepted — never a
// TypeError, a hang, or a wrong answer.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MAX_HEADER_BYTES,
  QuantState,
  Tensor,
  createDynamicMap,
  createFp8Map,
  createLinearMap,
  createNormalMap,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  dequantizeNf4,
  gemv4bit,
  int8DoubleQuant,
  int8VectorwiseQuant,
  matmul4bit,
  parseHeader,
  quantize4bit,
  quantizeBlockwise,
  serializeSafetensors,
  tensor,
  toDevice,
  toFloat32,
} from '../src/index.js';
import * as bnb from '../src/index.js';
import * as node from '../src/node.js';
import {
  BnbError,
  bf16ToNumber,
  commonDevice,
  f16ToNumber,
  itemsize,
  needsNibbleSwap,
  numberToBf16,
  numberToF16,
  numel,
  parseGaudiVersion,
  swapNibbles,
} from '../src/index.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { FUNCTION_NAMES, LEFT_OUT } from './property/props-robust.js';
import { MAX_TENSORS } from '../src/io/safetensors/header.js';
import { createSafetensorsWriter } from '../src/io/safetensors/file-sink.js';
import { MAX_BLOB_BYTES } from '../src/quant-state.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { inspectCheckpoint } from '../src/checkpoint/inspect.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { error, rejection } from './helpers/util.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-hardening-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const A = tensor(
  Float32Array.from({ length: 256 }, (_, i) => Math.sin(i)),
  [4, 64],
);
const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** A Float32Array whose buffer has been transferred away. */
function detachedF32(n = 4): Float32Array {
  const v = new Float32Array(n);
  structuredClone(v.buffer, { transfer: [v.buffer] });
  return v;
}

describe('detached buffers', () => {
  const dead = { dtype: 'float32', shape: [4], data: detachedF32(), device: 'cpu' } as Tensor;
  it('are E_DETACHED wherever a tensor is taken, not a shape mismatch or a TypeError', () => {
    const msg = /A\.data is a Float32Array over a detached ArrayBuffer.*copy it before transferring/;
    expect(error(() => quantize4bit(dead))).toMatchObject({ code: 'E_DETACHED', message: msg });
    expect(error(() => quantizeBlockwise(dead))).toMatchObject({ code: 'E_DETACHED', message: msg });
    expect(error(() => tensor(detachedF32(), [4]))).toMatchObject({
      code: 'E_DETACHED',
      message: expect.stringMatching(/^data is a Float32Array over a detached/),
    });
    const [p, s] = quantize4bit(A);
    const out = { dtype: 'float32', shape: [4, 64], data: detachedF32(256), device: 'cpu' } as Tensor;
    expect(error(() => dequantize4bit(p, s, { out }))).toMatchObject({ code: 'E_DETACHED', message: expect.stringMatching(/^out\.data/) });
    expect(error(() => dequantize4bit(p, new QuantState({ ...s, absmax: { ...s.absmax, data: detachedF32(4) } })))).toMatchObject({
      code: 'E_DETACHED',
      message: expect.stringMatching(/^state\.absmax\.data/),
    });
    expect(error(() => toFloat32(dead))).toMatchObject({ code: 'E_DETACHED' });
    const raw = { dtype: 'float64', shape: [2], data: new Uint8Array(16), device: 'cpu' };
    structuredClone(raw.data.buffer, { transfer: [raw.data.buffer] });
    expect(error(() => serializeSafetensors({ x: raw as never }))).toMatchObject({
      code: 'E_DETACHED',
      message: expect.stringMatching(/tensors\["x"\]\.data/),
    });
  });

  it('an empty tensor over a live buffer is not mistaken for a detached one', () => {
    expect(tensor(new Float32Array(0), [0]).shape).toEqual([0]);
    expect(tensor(new Float32Array(new SharedArrayBuffer(8))).shape).toEqual([2]);
  });
});

describe('views and odd offsets', () => {
  it('a Float32Array at byte offset 4, a Uint16Array at 2, a Uint8Array at 1 give the bytes of a fresh copy', () => {
    const x = randn(new Rng(5), 1000);
    const buf = new ArrayBuffer(4 * 1003);
    const f32 = new Float32Array(buf, 4, 1000);
    f32.set(x);
    const fresh = tensor(x.slice(), [10, 100]),
      view = tensor(f32, [10, 100]);
    const [p1, s1] = quantize4bit(fresh, { quantType: 'nf4' }),
      [p2, s2] = quantize4bit(view, { quantType: 'nf4' });
    expect(bytes(p1).equals(bytes(p2)) && bytes(s1.absmax).equals(bytes(s2.absmax))).toBe(true);
    const b16 = asDType(x, [1000], 'bfloat16');
    const u16 = new Uint16Array(new ArrayBuffer(2 * 1001), 2, 1000);
    u16.set(b16.data as Uint16Array);
    expect(
      bytes(quantizeBlockwise(tensor(u16, [1000], 'bfloat16'), { blocksize: 64 })[0]).equals(
        bytes(quantizeBlockwise(b16, { blocksize: 64 })[0]),
      ),
    ).toBe(true);
    const packed = new Uint8Array(new ArrayBuffer(p1.data.length + 1), 1, p1.data.length);
    packed.set(p1.data as Uint8Array);
    expect(bytes(dequantize4bit(tensor(packed, [...p1.shape]), s1)).equals(bytes(dequantize4bit(p1, s1)))).toBe(true);
  });

  it('bfloat16 bytes in a Uint8Array are E_DTYPE (a Uint16Array is needed; JS cannot view odd offsets as 16-bit)', () => {
    expect(error(() => tensor(new Uint8Array(8), [4], 'bfloat16'))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/Uint8Array but dtype "bfloat16" needs a Uint16Array/),
    });
    expect(error(() => tensor(new Float64Array(4) as never))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/data = Float64Array\(4\).*Float32Array, Uint8Array, Int8Array, Int32Array, or a Uint16Array/),
    });
    expect(error(() => tensor([0.5], [1], 'float8_e4m3fn'))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/float8_e4m3fn pass a Uint8Array/),
    });
  });

  it('an out tensor sharing memory with an input is E_ARGUMENT (a chunked kernel would read its own output)', () => {
    const [p, s] = quantize4bit(A);
    const buf = new ArrayBuffer(4096);
    const packedIn = new Uint8Array(buf, 0, 128);
    packedIn.set(p.data as Uint8Array);
    const out = tensor(new Float32Array(buf, 0, 256), [4, 64]);
    expect(error(() => dequantize4bit(tensor(packedIn, [128, 1]), s, { out }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/out shares memory with A \(bytes 0\.\.1024 and 0\.\.128 of one buffer\)/),
    });
    const [q, s8] = quantizeBlockwise(A, { blocksize: 64 });
    const qv = new Uint8Array(buf, 1024, 256);
    qv.set(q.data as Uint8Array);
    expect(
      error(() => dequantizeBlockwise(tensor(qv, [4, 64]), s8, { out: tensor(new Float32Array(buf, 1024, 256), [4, 64]) })),
    ).toMatchObject({ code: 'E_ARGUMENT' });
    // disjoint parts of one buffer are fine
    const ok = tensor(new Float32Array(buf, 2048, 256), [4, 64]);
    expect(bytes(dequantize4bit(tensor(packedIn, [128, 1]), s, { out: ok })).equals(bytes(dequantize4bit(p, s)))).toBe(true);
  });
});

describe('options and non-tensor arguments', () => {
  it('null or non-object options are E_ARGUMENT before any backend reads them', () => {
    const [p, s] = quantize4bit(A);
    for (const f of [
      () => quantize4bit(A, null as never),
      () => dequantize4bit(p, s, null as never),
      () => dequantizeNf4(p, s, 5 as never),
      () => quantizeBlockwise(A, 'x' as never),
      () => int8VectorwiseQuant(tensor(new Uint16Array(4), [4], 'float16'), null as never),
      () => createDynamicMap(null as never),
      () => createLinearMap(null as never),
      () => createNormalMap(null as never),
      () => createFp8Map(null as never),
    ]) {
      expect(error(f)).toMatchObject({
        code: 'E_ARGUMENT',
        message: expect.stringMatching(/options = (null|5|"x") is not accepted: expected an options object/),
      });
    }
    expect(error(() => createDynamicMap({ sign: true } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/createDynamicMap option sign/),
    });
    expect(error(() => dequantize4bit(p, s, { outt: null } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/dequantize4bit option outt/),
    });
    expect(error(() => toFloat32(null as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^t = null is not accepted: expected a Tensor/),
    });
    expect(error(() => toDevice(undefined as never, 'cpu'))).toMatchObject({ code: 'E_ARGUMENT' });
  });
});

describe('NaN and Inf: rejected by default, CUDA behaviour on request', () => {
  it('every quantize op names the first bad flat index; allowNonFinite: true computes', () => {
    const h = tensor(Uint16Array.from([0x3c00, 0x4000, 0x7e00, 0x3c00, 0xfc00, 0]), [2, 3], 'float16');
    for (const op of [int8VectorwiseQuant, int8DoubleQuant] as ((t: Tensor, o?: object) => unknown)[]) {
      expect(error(() => op(h))).toMatchObject({
        code: 'E_NON_FINITE',
        message: expect.stringMatching(/A has a non-finite value \(NaN\) at flat index 2.*allowNonFinite: true/),
      });
      expect(() => op(h, { allowNonFinite: true })).not.toThrow();
    }
    const [cb, stats] = int8VectorwiseQuant(h, { allowNonFinite: true });
    expect([...cb.data]).toEqual([64, 127, 0, 0, 0, 0]); // NaN -> 0; an Inf row's stat is Inf, its finite values 0
    expect([...stats.data]).toEqual([2, Infinity]);
    expect(error(() => int8VectorwiseQuant(h, { allowNonFinite: 'yes' } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/allowNonFinite = "yes".*true or false/),
    });
  });
});

describe('QuantState dicts with inconsistent fields', () => {
  const A2 = tensor(randn(new Rng(9), 1000), [10, 100]);
  const [, s] = quantize4bit(A2, { quantType: 'nf4', compressStatistics: true });
  const d = () => s.asDict({ packed: true }) as Record<string, unknown>;
  const blob = (json: string) => tensor(new TextEncoder().encode(json));
  const fromDict = (x: Record<string, unknown>) => error(() => QuantState.fromDict(x));

  it('nested statistics partly present', () => {
    const x = d();
    delete x.nested_quant_map;
    expect(fromDict(x)).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/nested statistics are partly present: found nested_absmax.*but not nested_quant_map/),
    });
    const y = QuantState.fromDict(d()).asDict() as Record<string, unknown>;
    delete y.nested_absmax;
    expect(fromDict(y)).toMatchObject({ code: 'E_STATE', message: expect.stringMatching(/partly present/) });
  });

  it('the blob: malformed, too large, or naming another quant type than its key', () => {
    const key = 'quant_state.bitsandbytes__nf4';
    expect(fromDict({ ...d(), [key]: blob('{"quant_type": "nf4", ') })).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/is not valid JSON/),
    });
    expect(fromDict({ ...d(), [key]: tensor(new Uint8Array([0xff, 0xfe])) })).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/not valid UTF-8/),
    });
    expect(fromDict({ ...d(), [key]: blob('[1, 2]') })).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/must hold a JSON object, got \[1, 2\]/),
    });
    expect(fromDict({ ...d(), [key]: tensor(new Uint8Array(MAX_BLOB_BYTES + 1).fill(0x20)) })).toMatchObject({
      code: 'E_STATE',
      message: new RegExp(`has ${MAX_BLOB_BYTES + 1} bytes: a quant_state JSON blob has at most ${MAX_BLOB_BYTES}`),
    });
    const text = new TextDecoder().decode((d()[key] as Tensor).data as Uint8Array).replace('"nf4"', '"fp4"');
    expect(fromDict({ ...d(), [key]: blob(text) })).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/holds quant_type = "fp4" but its name says "nf4"/),
    });
  });

  it('unknown dtype strings, shapes that are not integers, blocksizes outside the set', () => {
    const key = 'quant_state.bitsandbytes__nf4';
    const json = JSON.parse(new TextDecoder().decode((d()[key] as Tensor).data as Uint8Array).replace('NaN', '0'));
    const with_ = (o: object) => ({ ...d(), [key]: blob(JSON.stringify({ ...json, ...o })) });
    expect(fromDict(with_({ dtype: 'float64' }))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/dtype = "float64" is not accepted: expected one of float32, float16, bfloat16/),
    });
    expect(fromDict(with_({ nested_dtype: 'int4' }))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/nested_dtype = "int4"/),
    });
    expect(fromDict(with_({ shape: [10, 1.5] }))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/shape = \[10, 1.5\].*non-negative integers/),
    });
    expect(fromDict(with_({ shape: [2 ** 40, 2 ** 40] }))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/at most 2\^53 - 1 elements/),
    });
    expect(fromDict(with_({ blocksize: 48 }))).toMatchObject({
      code: 'E_BLOCKSIZE',
      message: expect.stringMatching(/blocksize = 48.*32, 64, 128/),
    });
    expect(fromDict(with_({ nested_blocksize: 100 }))).toMatchObject({
      code: 'E_BLOCKSIZE',
      message: expect.stringMatching(/nested_blocksize = 100/),
    });
  });

  it('absmax length against shape and blocksize, code lengths, absmax dtypes', () => {
    const key = 'quant_state.bitsandbytes__nf4';
    const json = JSON.parse(new TextDecoder().decode((d()[key] as Tensor).data as Uint8Array).replace('NaN', '0'));
    expect(fromDict({ ...d(), [key]: blob(JSON.stringify({ ...json, shape: [20, 100] })) })).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/absmax has 16 entries but shape \[20, 100\] with blocksize 64 has 32 blocks/),
    });
    expect(fromDict({ ...d(), quant_map: tensor(new Float32Array(15)) })).toMatchObject({
      code: 'E_CODE',
      message: expect.stringMatching(/quant_map has 15 entries: a 4-bit \(nf4\) code has 16/),
    });
    expect(fromDict({ ...d(), nested_quant_map: tensor(new Float32Array(16)) })).toMatchObject({
      code: 'E_CODE',
      message: expect.stringMatching(/nested_quant_map has 16 entries: expected 256/),
    });
    expect(fromDict({ ...d(), nested_absmax: tensor(new Float32Array(2)) })).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/nested_absmax has 2 entries but 16 absmax codes with nested_blocksize 256 make 1 blocks/),
    });
    expect(fromDict({ ...d(), absmax: tensor(new Float32Array(16)) })).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/absmax.dtype = "float32".*'uint8' \(nested, double-quantized statistics\)/),
    });
    const [, plain] = quantize4bit(A2, { quantType: 'nf4' });
    expect(error(() => QuantState.fromDict({ ...plain.asDict({ packed: true }), absmax: tensor(new Uint8Array(16)) }))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/'float32' \(plain statistics\)/),
    });
  });

  it('a QuantState built or mutated by hand is checked where it is used', () => {
    const [p, st] = quantize4bit(A2, { quantType: 'nf4', compressStatistics: true });
    expect(error(() => dequantize4bit(p, new QuantState({ ...st, code: tensor(new Float32Array(15)) })))).toMatchObject({
      code: 'E_CODE',
      message: expect.stringMatching(/state.code has 15 entries/),
    });
    const broken = new QuantState({ ...st });
    (broken as unknown as { state2: unknown }).state2 = 'x';
    expect(error(() => dequantize4bit(p, broken))).toMatchObject({ code: 'E_STATE', message: expect.stringMatching(/state.state2 = "x"/) });
    (broken as unknown as { state2: unknown }).state2 = undefined;
    expect(error(() => dequantize4bit(p, broken))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/state.absmax.dtype = "uint8"/),
    });
    const weird = new QuantState({ ...st, shape: [10, 100.5] });
    expect(error(() => gemv4bit(tensor(new Float32Array(100), [1, 100]), p, weird))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/state.shape = \[10, 100.5\]/),
    });
  });
});

describe('edge shapes', () => {
  it('matmul4bit with K = 0 returns the bias (A @ W^T over nothing), not zeros', () => {
    const state = new QuantState({
      absmax: tensor(new Float32Array(0), [0]),
      shape: [3, 0],
      code: tensor(new Float32Array(16)),
      blocksize: 64,
      quantType: 'nf4',
    });
    const out = matmul4bit(tensor(new Float32Array(0), [2, 0]), tensor(new Uint8Array(0), [0, 1]), state, { bias: tensor([1, 2, 3]) });
    expect(out.shape).toEqual([2, 3]);
    expect([...out.data]).toEqual([1, 2, 3, 1, 2, 3]);
  });

  it('dequantizeFp8 with a blockSize beyond 32 bits neither hangs nor misreads the scales', () => {
    const W = tensor(
      Uint8Array.from({ length: 12 }, (_, i) => 0x38 + i),
      [3, 4],
      'float8_e4m3fn',
    );
    const S = tensor(Float32Array.from([1, 2, 4]), [3, 1]);
    const big = dequantizeFp8(W, S, { dtype: 'float32', blockSize: 2 ** 32 });
    expect(bytes(big).equals(bytes(dequantizeFp8(W, S, { dtype: 'float32', blockSize: 4 })))).toBe(true);
    expect([...big.data.subarray(8)].every((v, i) => v === 4 * toFloat32(W)[8 + i]!)).toBe(true);
  });
});

describe('safetensors limits', () => {
  it(`more than ${MAX_TENSORS} tensors: E_ST_TENSOR_COUNT, early in the parse`, () => {
    const entries = Array.from({ length: MAX_TENSORS + 2 }, (_, i) => `"${i.toString(36)}":0`);
    const header = new TextEncoder().encode(`{${entries.join(',')}}`);
    expect(header.length).toBeLessThan(MAX_HEADER_BYTES);
    const t = performance.now();
    expect(error(() => parseHeader(header, header.length + 8))).toMatchObject({
      code: 'E_ST_TENSOR_COUNT',
      message: new RegExp(`more than ${MAX_TENSORS} tensors`),
    });
    expect(performance.now() - t).toBeLessThan(20_000);
  });

  it('the writers refuse what the readers would refuse', async () => {
    const plan = Array.from({ length: MAX_TENSORS + 1 }, (_, i) => ({ name: `t${i}`, dtype: 'U8' as const, shape: [0] }));
    expect(await rejection(() => createSafetensorsWriter(join(tmp, 'many.safetensors'), plan))).toMatchObject({
      code: 'E_ST_TENSOR_COUNT',
    });
  });
});

describe('checkpoint quant_state blobs', () => {
  const blobKey = 'model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4';
  function checkpoint(blob: Uint8Array): string {
    const W = tensor(randn(new Rng(4), 64 * 64), [64, 64]);
    const [p, s] = quantize4bit(W, { quantType: 'nf4' });
    const d = s.asDict({ packed: true });
    const tensors: Record<string, Tensor> = { 'model.layers.0.mlp.up_proj.weight': p };
    for (const [k, v] of Object.entries(d)) tensors[`model.layers.0.mlp.up_proj.weight.${k}`] = v as Tensor;
    tensors[blobKey] = tensor(blob);
    const dir = mkdtempSync(join(tmp, 'ckpt-'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors));
    return dir;
  }

  it('invalid UTF-8 or an oversized blob: E_CKPT_QUANT_STATE from inspect and dequantize (not a TypeError)', async () => {
    const bad = checkpoint(new Uint8Array([0x7b, 0xff, 0x7d]));
    expect(await rejection(() => inspectCheckpoint(bad))).toMatchObject({
      code: 'E_CKPT_QUANT_STATE',
      message: expect.stringMatching(/valid UTF-8 JSON/),
    });
    expect(await rejection(() => dequantizeCheckpoint(bad, join(tmp, 'out1.safetensors')))).toMatchObject({ code: 'E_CKPT_QUANT_STATE' });
    const huge = checkpoint(new Uint8Array(MAX_BLOB_BYTES + 8).fill(0x20));
    expect(await rejection(() => inspectCheckpoint(huge))).toMatchObject({
      code: 'E_CKPT_QUANT_STATE',
      message: new RegExp(`has ${MAX_BLOB_BYTES + 8} bytes`),
    });
  });
});

// ---------------------------------------------------------------------------
// Issue #15, case 12: every exported function throws only BnbError on junk. The
// property test (test/property/props-robust.ts) calls the synchronous ones with
// generated junk; here: the cases the issue names, the entries' export lists, the
// functions that change global state, and the asynchronous file functions.

/** A Proxy whose every trap throws. */
function trapProxy<T extends object>(target: T): T {
  const trap = () => {
    throw new Error('trap');
  };
  return new Proxy(target, { get: trap, has: trap, ownKeys: trap, getPrototypeOf: trap, getOwnPropertyDescriptor: trap, apply: trap });
}
const revokedProxy = () => {
  const r = Proxy.revocable({}, {});
  r.revoke();
  return r.proxy;
};
const JUNK: unknown[] = [
  undefined,
  null,
  true,
  0,
  -1,
  NaN,
  Infinity,
  2 ** 64,
  1e308,
  '',
  'x',
  Symbol('s'),
  5n,
  [],
  [-1],
  {},
  () => 1,
  new Uint8Array(3),
  trapProxy({}),
  trapProxy([1]),
  revokedProxy(),
  Object.defineProperty({}, 'format', {
    enumerable: true,
    get() {
      throw new Error('getter');
    },
  }),
];
const name = (v: unknown) =>
  typeof v === 'symbol'
    ? 'Symbol'
    : typeof v === 'bigint'
      ? `${v}n`
      : typeof v === 'function'
        ? 'function'
        : (() => {
            try {
              return String(JSON.stringify(v));
            } catch {
              return 'a hostile object';
            }
          })();

describe('every exported function on junk: only BnbError (case 12)', () => {
  const model = mkdtempSync(join(tmp, 'junk-model-'));
  writeFileSync(
    join(model, 'model.safetensors'),
    serializeSafetensors({
      'l.weight': tensor(
        Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i)),
        [64, 64],
      ),
    }),
  );
  const modelBytes = readFileSync(join(model, 'model.safetensors'));
  const input = join(model, 'model.safetensors');

  it('the cases the issue names: the exact code, the input intact, nothing written', async () => {
    const out = join(tmp, 'junk-out.safetensors');
    expect(await rejection(() => quantizeCheckpoint(input, 5 as never, { format: 'nf4' }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^output = 5 is not accepted: expected a path/),
    });
    expect(await rejection(() => quantizeCheckpoint(input, 5 as never, undefined as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^output = 5/),
    });
    expect(await rejection(() => quantizeCheckpoint(input, out, null as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^opts = null/),
    });
    expect(await rejection(() => dequantizeCheckpoint(input, ''))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^output = "" is not accepted/),
    });
    expect(await rejection(() => dequantizeCheckpoint(input, out, 5 as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/options = 5/),
    });
    expect(await rejection(() => quantizeCheckpoint(5 as never, out, { format: 'nf4' }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^input = 5/),
    });
    expect(await rejection(() => quantizeCheckpoint(input, out, { format: 'nf4', onProgress: 5 as never }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^onProgress = 5/),
    });
    expect(await rejection(() => inspectCheckpoint(Symbol('s') as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^input = Symbol\(s\)/),
    });
    expect(existsSync(out)).toBe(false);
    expect(readFileSync(input).equals(modelBytes)).toBe(true);

    for (const f of [f16ToNumber, bf16ToNumber]) {
      for (const v of [Symbol('s'), 1n, 'x', 65536, -1, 1.5, null, trapProxy({})]) {
        expect(
          error(() => f(v as never)),
          `${f.name}(${name(v)})`,
        ).toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/^h = .*an integer from 0 to 65535/) });
      }
    }
    expect([f16ToNumber(0x3c00), bf16ToNumber(0x3f80), numberToF16(1), numberToBf16(-2)]).toEqual([1, 1, 0x3c00, 0xc000]);
    for (const f of [numberToF16, numberToBf16]) {
      for (const v of [Symbol('s'), 1n, '1', null, undefined, {}])
        expect(
          error(() => f(v as never)),
          `${f.name}(${name(v)})`,
        ).toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/^x = .*a number/) });
    }
    for (const v of [null, 5, 'x', [-1], [1.5], [2 ** 53], trapProxy([2]), { length: 2 }])
      expect(
        error(() => numel(v as never)),
        `numel(${name(v)})`,
      ).toMatchObject({ code: 'E_SHAPE' });
    expect(numel([2, 3])).toBe(6);
    for (const v of ['x', 5, null, Symbol('s')]) expect(error(() => itemsize(v as never))).toMatchObject({ code: 'E_DTYPE' });
    for (const v of [null, 5, [1, 2], new Uint16Array(2), trapProxy(new Uint8Array(2))])
      expect(error(() => swapNibbles(v as never))).toMatchObject({ code: 'E_ARGUMENT', message: expect.stringMatching(/^bytes = /) });
    expect([...swapNibbles(new Uint8Array([0x12, 0xab]))]).toEqual([0x21, 0xba]);
    for (const v of [5, null, Symbol('s'), {}, trapProxy({})])
      expect(error(() => parseGaudiVersion(v as never))).toMatchObject({ code: 'E_ARGUMENT' });
    for (const v of [{}, 5, 'x', { major: '1', minor: 21 }, trapProxy({})])
      expect(error(() => needsNibbleSwap(v as never))).toMatchObject({ code: 'E_ARGUMENT' });
    expect([needsNibbleSwap(null), needsNibbleSwap(parseGaudiVersion('1.21.0'))]).toEqual([false, true]);
    for (const v of [null, 5, 'x', trapProxy({})]) expect(error(() => commonDevice(v as never))).toMatchObject({ code: 'E_ARGUMENT' });
    expect(error(() => commonDevice({ a: { device: 5 } } as never))).toMatchObject({ code: 'E_DEVICE' });
    expect(error(() => commonDevice({ a: trapProxy({}) } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^a\.device could not be read/),
    });
    for (const v of [null, 5, 'x', trapProxy({})]) expect(error(() => new QuantState(v as never))).toMatchObject({ code: 'E_STATE' });
  });

  it('the browser, Worker and inline entries export the core and nothing else (the property test covers it)', () => {
    for (const entry of ['browser', 'worker', 'inline']) {
      const text = readFileSync(new URL(`../src/${entry}.ts`, import.meta.url), 'utf8');
      expect(text.match(/^export .*$/gm), entry).toEqual(["export * from './core.js';"]);
    }
    const index = readFileSync(new URL('../src/index.ts', import.meta.url), 'utf8');
    expect(index).toMatch(/^export \* from '\.\/core\.js';$/m);
  });

  it('every function export of the index and node entries is called with junk somewhere', () => {
    const covered = new Set([...FUNCTION_NAMES, ...LEFT_OUT]);
    const tested = new Set([...GLOBAL_SETTERS.map(([n]) => n), ...Object.keys(ASYNC), 'init', 'BnbError', 'QuantState', 'probe']);
    for (const [n, f] of Object.entries(node)) {
      if (typeof f !== 'function') continue;
      expect(covered.has(n) || tested.has(n), `${n} is neither in the property test nor here`).toBe(true);
      if (LEFT_OUT.includes(n)) expect(tested.has(n), `${n} is left out of the property test but not tested here`).toBe(true);
    }
  });

  /** The settings these change, read before and compared after. */
  const settings = () => JSON.stringify([bnb.wasmBuild(), bnb.probe().forced, bnb.numThreads(), bnb.wasmMemoryLimit()]);
  const GLOBAL_SETTERS: [string, (v: unknown) => unknown][] = [
    ['setWasmBuild', (v) => bnb.setWasmBuild(v as never)],
    ['setForcedBackend', (v) => bnb.setForcedBackend(v as never)],
    ['registerKernel', (v) => bnb.registerKernel(v as never, 'cpu', () => 0 as never)],
    ['registerKernel(op, device)', (v) => bnb.registerKernel('quantize4bit', v as never, () => 0 as never)],
    ['registerKernel(op, device, kernel)', (v) => bnb.registerKernel('quantize4bit', 'cpu', v as never)],
    ['setGaudiSoftwareVersion', (v) => bnb.setGaudiSoftwareVersion(v as never)],
    ['probeGaudi', (v) => bnb.probeGaudi(v as never)],
    ['setNumThreads', (v) => bnb.setNumThreads(v as never)],
    ['setWasmMemoryLimit', (v) => bnb.setWasmMemoryLimit(v as never)],
  ];

  it('the functions that change global state: junk is a BnbError and changes nothing', async () => {
    const before = settings();
    for (const [n, f] of GLOBAL_SETTERS) {
      for (const v of JUNK) {
        if (v === undefined || v === null) continue; // valid: "probe again" / "no forcing" / default options
        let r: unknown;
        try {
          r = f(v);
        } catch (e) {
          expect(e, `${n}(${name(v)})`).toBeInstanceOf(BnbError);
          continue;
        }
        if (typeof r === 'function')
          (r as () => void)(); // registerKernel for a new device type (a name like 'x'): undone
        else if (n !== 'probeGaudi') throw new Error(`${n}(${name(v)}) accepted junk`);
      }
    }
    for (const v of JUNK) expect((bnb.probe as (x: unknown) => bnb.Probe)(v).wasm.build).toBe(bnb.wasmBuild()); // takes no argument: ignores it
    for (const v of [5, null, 'x', {}, trapProxy({}), new Uint8Array(3), Promise.resolve(5)]) {
      expect(await rejection(() => bnb.init(v as never)), `init(${name(v)})`).toMatchObject({ code: 'E_INIT' });
    }
    expect(settings()).toBe(before);
  });

  /** Each async file function with valid arguments (strings are paths under tmp). */
  const ASYNC: Record<string, { args: () => unknown[]; call: (...a: unknown[]) => Promise<unknown> }> = {
    quantizeCheckpoint: {
      args: () => [model, join(tmp, 'junk-q'), { format: 'nf4' }],
      call: (...a) => quantizeCheckpoint(...(a as [string, string, never])),
    },
    dequantizeCheckpoint: {
      args: () => [model, join(tmp, 'junk-d'), { allowEmpty: true }],
      call: (...a) => dequantizeCheckpoint(...(a as [string, string, never])),
    },
    inspectCheckpoint: { args: () => [model], call: (a) => inspectCheckpoint(a as string) },
    openSafetensors: { args: () => [input], call: async (a) => (await node.openSafetensors(a as string)).close() },
    openCheckpoint: { args: () => [model], call: async (a) => (await node.openCheckpoint(a as string)).close() },
    createSafetensorsWriter: {
      args: () => [join(tmp, 'junk-w.safetensors'), [{ name: 't', dtype: 'F32', shape: [1] }], {}],
      call: async (...a) => (await node.createSafetensorsWriter(...(a as [string, never, never]))).abort(),
    },
    readSafetensors: { args: () => [input], call: (a) => bnb.readSafetensors(a as string) },
    writeSafetensors: {
      args: () => [join(tmp, 'junk-s.safetensors'), { t: tensor([1]) }, { force: true }],
      call: (...a) => bnb.writeSafetensors(...(a as [string, never, never])),
    },
    bitsAndBytesConfig: {
      args: () => [{ format: 'nf4', doubleQuant: false, storage: 'uint8', computeDType: 'float32', skip: null }],
      call: async (a) => node.bitsAndBytesConfig(a as never),
    },
    configText: { args: () => [new Map([['a', 1]])], call: async (a) => node.configText(a as never) },
    readTensor: { args: () => [tensor([1, 2])], call: (a) => bnb.readTensor(a as never) },
    toDeviceAsync: { args: () => [tensor([1, 2]), 'cpu'], call: (...a) => bnb.toDeviceAsync(...(a as [never, never])) },
  };

  it('the asynchronous file functions: junk in any argument is a rejection with a BnbError, the input intact', async () => {
    const inTmp = (v: unknown) => (typeof v === 'string' && v !== '' ? join(tmp, 'junk', v) : v);
    let calls = 0;
    for (const [n, { args, call }] of Object.entries(ASYNC)) {
      await call(...args()); // the valid call works
      rmSync(join(tmp, 'junk-q'), { recursive: true, force: true });
      rmSync(join(tmp, 'junk-d'), { recursive: true, force: true });
      for (let i = 0; i < args().length; i++) {
        for (const v of JUNK) {
          const a = args();
          a[i] = inTmp(v);
          calls++;
          try {
            await call(...a);
          } catch (e) {
            if (!(e instanceof BnbError))
              throw new Error(`${n} with argument ${i} = ${name(v)} threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
          }
          rmSync(join(tmp, 'junk-q'), { recursive: true, force: true });
          rmSync(join(tmp, 'junk-d'), { recursive: true, force: true });
        }
      }
    }
    expect(calls).toBeGreaterThan(300);
    expect(readFileSync(input).equals(modelBytes)).toBe(true);
  });
});
