// The safetensors reader and writers: round trips of every dtype, the reference
// writer's exact bytes (real files written by Python), lazy and sharded reading, the
// streaming writer, a malformed-file corpus generated here, and no partial outputs.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MAX_HEADER_BYTES,
  StoredTensor,
  headerLength,
  parseHeader,
  parseSafetensors,
  readSafetensors,
  safetensorsDTypeOf,
  serializeSafetensors,
  tensor,
  toStoredTensor,
  writeSafetensors,
} from '../src/index.js';
import type { SafetensorsDType, TensorInfo } from '../src/index.js';
import { createSafetensorsWriter } from '../src/io/safetensors/file-sink.js';
import { openSafetensors } from '../src/io/safetensors/file-source.js';
import { openCheckpoint } from '../src/io/open.js';
import { SHARED } from './helpers/golden.js';
import { error, rejection } from './helpers/util.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bnbjs-st-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The BnbError an async f throws. */

const enc = new TextEncoder();

/** A file from raw parts: 8-byte length (n, default the header's byte length), header text, data bytes. */
function rawFile(header: string, data: number | Uint8Array, n?: number | bigint): Uint8Array {
  const h = enc.encode(header);
  const d = typeof data === 'number' ? Uint8Array.from({ length: data }, (_, i) => i & 255) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(n ?? h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

function bytesOf(t: StoredTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function expectSameTensors(a: Record<string, StoredTensor>, b: Record<string, StoredTensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) {
    expect(b[k]!.dtype, k).toBe(a[k]!.dtype);
    expect(b[k]!.shape, k).toEqual(a[k]!.shape);
    expect(b[k]!.data.constructor, k).toBe(a[k]!.data.constructor);
    expect(Buffer.from(bytesOf(b[k]!)).equals(Buffer.from(bytesOf(a[k]!))), k).toBe(true);
  }
}

/** Every dtype, with 0-dim and empty tensors. */
function allDTypes(): Record<string, StoredTensor> {
  const raw = (dtype: string, shape: number[], size: number): StoredTensor => {
    const n = shape.reduce((a, d) => a * d, 1) * size;
    return { dtype, shape, data: Uint8Array.from({ length: n }, (_, i) => (i * 37 + size) & 255), device: 'cpu' } as StoredTensor;
  };
  return {
    f32: tensor(
      Float32Array.from({ length: 6 }, (_, i) => i - 2.5),
      [2, 3],
    ),
    f16: tensor(Uint16Array.from([0x3c00, 0xc000, 0x7c00]), [3], 'float16'),
    bf16: tensor(Uint16Array.from([0x3f80, 0x4000, 0xff80, 0x7fc0]), [2, 2], 'bfloat16'),
    u8: tensor(Uint8Array.from([0, 1, 255]), [3]),
    i8: tensor(Int8Array.from([-128, 0, 127, 5]), [4]),
    i32: tensor(Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 7]), [3, 1]),
    f8e4m3: tensor(Uint8Array.from([0x38, 0x7f, 0x80]), [3], 'float8_e4m3fn'),
    f64: raw('float64', [2], 8),
    i64: raw('int64', [1, 2], 8),
    i16: raw('int16', [3], 2),
    u64: raw('uint64', [1], 8),
    u32: raw('uint32', [2, 2], 4),
    u16: raw('uint16', [5], 2),
    bool: raw('bool', [4], 1),
    f8e5m2: raw('float8_e5m2', [2, 2], 1),
    scalar_f32: tensor(Float32Array.from([3.5]), []),
    scalar_i64: raw('int64', [], 8),
    empty_f16: tensor(new Uint16Array(0), [0, 4], 'float16'),
    empty_u8: tensor(new Uint8Array(0), [0]),
    empty_u64: raw('uint64', [3, 0], 8),
  };
}

describe('round trips', () => {
  test('every dtype, 0-dim and empty tensors, through bytes, ArrayBuffer and files', async () => {
    const ts = allDTypes();
    const bytes = serializeSafetensors(ts);
    const back = parseSafetensors(bytes);
    expectSameTensors(ts, back.tensors);
    expect(back.metadata).toBeNull();
    expectSameTensors(ts, parseSafetensors(bytes.slice().buffer).tensors);
    expectSameTensors(ts, (await readSafetensors(bytes)).tensors);

    const path = join(dir, 'all.safetensors');
    await writeSafetensors(path, ts, { metadata: { format: 'pt' } });
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(serializeSafetensors(ts, { metadata: { format: 'pt' } })))).toBe(true);
    const fromFile = await readSafetensors(path);
    expectSameTensors(ts, fromFile.tensors);
    expect(fromFile.metadata).toEqual({ format: 'pt' });

    // bnbjs dtypes come back as Tensors (typed arrays, aligned), the others as raw bytes
    expect(back.tensors.f32!.data).toBeInstanceOf(Float32Array);
    expect(back.tensors.i32!.data).toBeInstanceOf(Int32Array);
    expect(back.tensors.bf16!.dtype).toBe('bfloat16');
    expect(back.tensors.f8e4m3!.dtype).toBe('float8_e4m3fn');
    expect(back.tensors.f64).toMatchObject({ dtype: 'float64', shape: [2], device: 'cpu' });
    expect(back.tensors.f64!.data).toBeInstanceOf(Uint8Array);
    expect(back.tensors.scalar_f32).toMatchObject({ shape: [], data: Float32Array.from([3.5]) });
    for (const t of Object.values(back.tensors)) expect(t.data.byteOffset % t.data.BYTES_PER_ELEMENT).toBe(0);

    const st: Record<string, SafetensorsDType> = {};
    for (const [k, t] of Object.entries(back.tensors)) st[k] = safetensorsDTypeOf(t);
    expect(st).toMatchObject({
      f32: 'F32',
      f16: 'F16',
      bf16: 'BF16',
      u8: 'U8',
      i8: 'I8',
      i32: 'I32',
      f8e4m3: 'F8_E4M3',
      f64: 'F64',
      i64: 'I64',
      i16: 'I16',
      u64: 'U64',
      u32: 'U32',
      u16: 'U16',
      bool: 'BOOL',
      f8e5m2: 'F8_E5M2',
    });
  });

  test('metadata: strings kept exactly and in order; null and {} differ', () => {
    const t = { x: tensor(Float32Array.from([1]), [1]) };
    const metadata = { z: 'last key first', a: 'quote " backslash \\ newline \n tab \t nul \u0000 é 日本 😀', '': '' };
    const back = parseSafetensors(serializeSafetensors(t, { metadata }));
    expect(back.metadata).toEqual(metadata);
    expect(Object.keys(back.metadata!)).toEqual(['z', 'a', '']);
    expect(parseSafetensors(serializeSafetensors(t, { metadata: null })).metadata).toBeNull();
    expect(parseSafetensors(serializeSafetensors(t)).metadata).toBeNull();
    expect(parseSafetensors(serializeSafetensors(t, { metadata: {} })).metadata).toEqual({});
    expect(error(() => serializeSafetensors(t, { metadata: { a: 1 } as never })).code).toBe('E_ST_METADATA');
    expect(error(() => serializeSafetensors(t, { metadata: ['a'] as never })).code).toBe('E_ST_METADATA');
  });

  test('tensor names: any Unicode string, __proto__ included; __metadata__ and lone surrogates refused', () => {
    const ts: Record<string, StoredTensor> = {};
    Object.defineProperty(ts, '__proto__', { value: tensor(Uint8Array.from([1]), [1]), enumerable: true });
    ts[''] = tensor(Uint8Array.from([2]), [1]);
    ts['😀'] = tensor(Uint8Array.from([3]), [1]);
    ts['\uffff'] = tensor(Uint8Array.from([4]), [1]);
    const back = parseSafetensors(serializeSafetensors(ts)).tensors;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.keys(back)).toEqual(['', '__proto__', '\uffff', '😀']); // UTF-8 byte order, as Rust sorts
    expect(Object.getOwnPropertyDescriptor(back, '__proto__')!.value.data).toEqual(Uint8Array.from([1]));
    expect(error(() => serializeSafetensors({ __metadata__: tensor(Uint8Array.from([1]), [1]) })).code).toBe('E_ARGUMENT');
    expect(error(() => serializeSafetensors({ ['a\ud800']: tensor(Uint8Array.from([1]), [1]) })).code).toBe('E_ARGUMENT');
  });

  test('bad tensors are refused with the tensor named', () => {
    const bad = (t: unknown) => error(() => serializeSafetensors({ w: t as StoredTensor }));
    expect(bad({ dtype: 'float32', shape: [3], data: new Float32Array(2), device: 'cpu' })).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/tensors\["w"\]/),
    });
    expect(bad({ dtype: 'complex64', shape: [1], data: new Uint8Array(8), device: 'cpu' })).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/"complex64".*float32.*float8_e5m2/),
    });
    expect(bad({ dtype: 'int64', shape: [2], data: new Uint8Array(15), device: 'cpu' })).toMatchObject({
      code: 'E_ST_SIZE',
      message: expect.stringMatching(/15 bytes.*needs 16/),
    });
    expect(bad({ dtype: 'int64', shape: [2], data: new BigInt64Array(2), device: 'cpu' })).toMatchObject({ code: 'E_DTYPE' });
    expect(bad(null)).toMatchObject({ code: 'E_ARGUMENT' });
    expect(error(() => serializeSafetensors({}, { force: true } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/opts.force/),
    });
  });
});

describe('the reference writer layout', () => {
  test("the reference implementation's own test vectors", () => {
    // safetensors tensor.rs test_serialization / test_empty / forced alignment
    const six = tensor(Float32Array.from([0, 1, 2, 3, 4, 5]), [1, 2, 3]);
    const a = serializeSafetensors({ 'attn.0': six });
    const json = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(json.length).toBe(64);
    expect(
      Buffer.from(a).equals(Buffer.concat([Buffer.from([64, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(json), Buffer.from(six.data.buffer)])),
    ).toBe(true);
    expect([...serializeSafetensors({})]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{}      ')]);
    expect(Buffer.from(serializeSafetensors({}, { metadata: { framework: 'pt' } })).toString('latin1')).toBe(
      '\x28\0\0\0\0\0\0\0{"__metadata__":{"framework":"pt"}}     ',
    );
    const b = serializeSafetensors({ attn0: { ...six, shape: [1, 1, 2, 3] } });
    expect(b[0]).toBe(72);
    expect(Buffer.from(b.subarray(8, 80)).toString()).toBe('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ');
  });

  test('data sorted by descending dtype (the reference enum order), then by name', () => {
    const names = Object.keys(parseSafetensors(serializeSafetensors(allDTypes())).tensors);
    expect(names).toEqual([
      'empty_u64',
      'u64',
      'i64',
      'scalar_i64',
      'f64',
      'f32',
      'scalar_f32',
      'u32',
      'i32',
      'bf16',
      'empty_f16',
      'f16',
      'u16',
      'i16',
      'f8e4m3',
      'f8e5m2',
      'i8',
      'empty_u8',
      'u8',
      'bool',
    ]);
  });

  const SHARED_FILES = [
    ...readdirSync(`${SHARED}/golden`)
      .filter((f) => f.endsWith('.safetensors'))
      .map((f) => `${SHARED}/golden/${f}`),
    ...['tiny-llama-bf16', 'tiny-llama-int8', 'tiny-llama-nf4-dq'].flatMap((d) =>
      readdirSync(`${SHARED}/models/${d}`)
        .filter((f) => f.endsWith('.safetensors'))
        .map((f) => `${SHARED}/models/${d}/${f}`),
    ),
  ];
  // Written by another writer than the reference one: data in name order (U8 W_bits
  // first, not in descending dtype order) and __metadata__ last in the header.
  const OTHER_WRITER = ['fp8_256x384_b128.safetensors', 'fp8_300x200_b128.safetensors', 'fp8_64x64_b0.safetensors'];

  test.each([join(SHARED, 'models/tiny-llama-bf16/model.safetensors'), join(SHARED, 'golden/maps.safetensors')])(
    '%s re-serializes byte for byte',
    async (path) => {
      const file = readFileSync(path);
      const { tensors, metadata } = await readSafetensors(path);
      expect(Buffer.from(serializeSafetensors(tensors, { metadata })).equals(file)).toBe(true);
      const out = join(dir, 'copy.safetensors');
      await writeSafetensors(out, tensors, { metadata, force: true });
      expect(readFileSync(out).equals(file)).toBe(true);
    },
  );

  test(`all ${SHARED_FILES.length} shared files: identical bytes, except the ${OTHER_WRITER.length} written by another writer`, async () => {
    const differ: string[] = [];
    for (const path of SHARED_FILES) {
      const file = readFileSync(path);
      const parsed = parseSafetensors(file);
      const { tensors, metadata } = await readSafetensors(path);
      expectSameTensors(parsed.tensors, tensors);
      expect(Object.keys(tensors)).toEqual(Object.keys(parsed.tensors));
      const again = serializeSafetensors(tensors, { metadata });
      if (!Buffer.from(again).equals(file)) differ.push(path.split('/').pop()!);
      expectSameTensors(tensors, parseSafetensors(again).tensors);
    }
    expect(differ.sort()).toEqual(OTHER_WRITER);
    for (const f of OTHER_WRITER) {
      const file = readFileSync(`${SHARED}/golden/${f}`);
      const json = file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString('latin1');
      expect(json.startsWith('{"W_bits":{"dtype":"U8"')).toBe(true);
      expect(json.trimEnd().endsWith('"}}')).toBe(true); // __metadata__ last
    }
  });
});

describe('header functions', () => {
  test('headerLength, parseHeader, toStoredTensor', () => {
    const file = serializeSafetensors(
      { b: tensor(Int32Array.from([1, 2]), [2]), a: tensor(Float32Array.from([1]), []) },
      { metadata: { k: 'v' } },
    );
    const n = headerLength(file.subarray(0, 8), file.length);
    expect(n % 8).toBe(0);
    const h = parseHeader(file.subarray(8, 8 + n), file.length);
    expect(h.dataStart).toBe(8 + n);
    expect(h.metadata).toEqual({ k: 'v' });
    expect(h.tensors).toEqual([
      { name: 'a', dtype: 'F32', shape: [], start: 0, end: 4 },
      { name: 'b', dtype: 'I32', shape: [2], start: 4, end: 12 },
    ]);
    const info = h.tensors[1]!;
    const src = file.subarray(h.dataStart + info.start, h.dataStart + info.end);
    const t = toStoredTensor(info, src);
    expect(t).toMatchObject({ dtype: 'int32', shape: [2], data: Int32Array.from([1, 2]) });
    expect(t.data.buffer).not.toBe(file.buffer); // a copy
    expect(error(() => toStoredTensor(info, src.subarray(1))).code).toBe('E_ST_SIZE');
    expect(error(() => toStoredTensor({ ...info, dtype: 'X' as 'F32' }, src)).code).toBe('E_ST_DTYPE');
  });

  test('header order does not matter: tensors come back in data order; empty tensors may share offsets', () => {
    const f = rawFile(
      '{"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},"e2":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"e1":{"dtype":"I8","shape":[3,0],"data_offsets":[2,2]}}',
      4,
    );
    const h = parseHeader(f.subarray(8, f.length - 4), f.length);
    expect(h.tensors.map((t: TensorInfo) => t.name)).toEqual(['a', 'e2', 'e1', 'b']);
    expect(Object.keys(parseSafetensors(f).tensors)).toEqual(['a', 'e2', 'e1', 'b']);
  });

  test('JSON details: whitespace, escapes, unknown tensor fields, null metadata', () => {
    const f = rawFile(
      ' \n{ "a\\u00e9\\ud83d\\ude00" : { "dtype" : "U8" , "shape" : [ 1 ] , "data_offsets" : [ 0 , 1 ] , "extra": {"x": [true, false, null, -1.5e3]} }, "__metadata__": null }\t\r\n ',
      1,
    );
    const r = parseSafetensors(f);
    expect(Object.keys(r.tensors)).toEqual(['aé😀']);
    expect(r.metadata).toBeNull();
  });
});

describe('malformed files', () => {
  const ok = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}';
  const valid = rawFile(ok, 12);
  const corpus: [string, Uint8Array, string, RegExp][] = [
    ['empty file', new Uint8Array(0), 'E_ST_HEADER_TOO_SMALL', /0 bytes/],
    ['7 bytes', new Uint8Array(7), 'E_ST_HEADER_TOO_SMALL', /7 bytes/],
    ['header length over 100 MB', rawFile(ok, 12, MAX_HEADER_BYTES + 1), 'E_ST_HEADER_TOO_LARGE', /100000001/],
    ['header length over 4 GiB', rawFile(ok, 12, 1n << 40n), 'E_ST_HEADER_TOO_LARGE', /1099511627776/],
    ['header length past the end', rawFile(ok, 12, 200), 'E_ST_HEADER_LENGTH', /200.*past the end/],
    ['file cut inside the header', valid.subarray(0, 40), 'E_ST_HEADER_LENGTH', /past the end of the file \(40 bytes\)/],
    ['header not UTF-8', rawFile('{"ab":1}', 0).map((b, i) => (i === 10 ? 0xff : b)), 'E_ST_HEADER_UTF8', /UTF-8/],
    ['header not JSON', rawFile('{"a": {"dtype": "F32",', 0), 'E_ST_HEADER_JSON', /not valid JSON/],
    ['header with trailing garbage', rawFile('{} x', 0), 'E_ST_HEADER_JSON', /trailing/],
    ['empty header', rawFile('', 0), 'E_ST_HEADER_JSON', /unexpected end/],
    ['header an array', rawFile('[1, 2]', 0), 'E_ST_HEADER_JSON', /expected a JSON object/],
    ['header a string', rawFile('"x"', 0), 'E_ST_HEADER_JSON', /expected a JSON object/],
    [
      'duplicate tensor name',
      rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1),
      'E_ST_HEADER_JSON',
      /duplicate key "a"/,
    ],
    [
      'lone surrogate escape',
      rawFile('{"\\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1),
      'E_ST_HEADER_JSON',
      /lone surrogate/,
    ],
    ['tensor entry not an object', rawFile('{"a":[1]}', 0), 'E_ST_HEADER_JSON', /tensor "a"/],
    ['metadata value not a string', rawFile('{"__metadata__":{"format":1}}', 0), 'E_ST_METADATA', /"format".*expected a string/],
    ['metadata an array', rawFile('{"__metadata__":["pt"]}', 0), 'E_ST_METADATA', /__metadata__/],
    ['unknown dtype', rawFile('{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', 16), 'E_ST_DTYPE', /tensor "a".*"F128".*BF16/],
    ['dtype missing', rawFile('{"a":{"shape":[1],"data_offsets":[0,1]}}', 1), 'E_ST_DTYPE', /tensor "a".*missing/],
    ['negative dimension', rawFile('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}', 0), 'E_ST_SHAPE', /tensor "a".*\[-1\]/],
    ['fractional dimension', rawFile('{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', 1), 'E_ST_SHAPE', /tensor "a".*\[1\.0\]/],
    [
      'dimension above 2^53',
      rawFile('{"a":{"dtype":"U8","shape":[9007199254740993,0],"data_offsets":[0,0]}}', 0),
      'E_ST_SHAPE',
      /9007199254740993/,
    ],
    ['shape not an array', rawFile('{"a":{"dtype":"U8","shape":"2","data_offsets":[0,2]}}', 2), 'E_ST_SHAPE', /tensor "a"/],
    ['offsets not a pair', rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}', 1), 'E_ST_OFFSETS', /tensor "a".*\[0\]/],
    ['offsets negative', rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}', 1), 'E_ST_OFFSETS', /tensor "a"/],
    ['offsets missing', rawFile('{"a":{"dtype":"U8","shape":[1]}}', 1), 'E_ST_OFFSETS', /tensor "a".*missing/],
    [
      'start after end',
      rawFile('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,1]}}', 2),
      'E_ST_OFFSETS',
      /tensor "b".*start is after end/,
    ],
    [
      'overlapping offsets',
      rawFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}', 6),
      'E_ST_OFFSETS',
      /tensor "b".*overlaps tensor "a"/,
    ],
    [
      'same offsets twice',
      rawFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', 4),
      'E_ST_OFFSETS',
      /overlaps/,
    ],
    [
      'gap between tensors',
      rawFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}', 10),
      'E_ST_OFFSETS',
      /tensor "b".*expected start 4/,
    ],
    [
      'first tensor not at 0',
      rawFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}', 8),
      'E_ST_OFFSETS',
      /first tensor must start at 0/,
    ],
    [
      'offsets out of bounds',
      rawFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[4],"data_offsets":[4,4000]}}', 20),
      'E_ST_OFFSETS',
      /tensor "b".*past the end of the data section \(20 bytes\)/,
    ],
    [
      'offsets starting past the end',
      rawFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[1000,1004]}}', 8),
      'E_ST_OFFSETS',
      /past the end/,
    ],
    [
      'offsets beyond 2^53',
      rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]}}', 1),
      'E_ST_OFFSETS',
      /18446744073709551615/,
    ],
    [
      'shape x dtype != bytes',
      rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,6]}}', 6),
      'E_ST_SIZE',
      /tensor "a".*6 bytes.*needs 8/,
    ],
    [
      'shape product overflows u64',
      rawFile('{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}', 0),
      'E_ST_SIZE',
      /overflows/,
    ],
    ['trailing bytes', rawFile(ok, 13), 'E_ST_INCOMPLETE', /1 trailing bytes/],
    ['truncated data', valid.subarray(0, valid.length - 3), 'E_ST_INCOMPLETE', /truncated.*need 12 bytes.*has 9/],
    ['all data cut off', valid.subarray(0, valid.length - 12), 'E_ST_INCOMPLETE', /truncated/],
  ];

  test.each(corpus.map(([label, bytes, code, message]) => ({ label, bytes, code, message })))(
    '$label -> $code',
    ({ bytes, code, message }) => {
      expect(error(() => parseSafetensors(bytes))).toMatchObject({ code, message: expect.stringMatching(message) });
    },
  );

  test('the same corpus as files: same codes, the file named in the message', async () => {
    mkdirSync(join(dir, 'corpus'), { recursive: true });
    for (const [label, bytes, code, message] of corpus) {
      const path = join(dir, 'corpus', `${label.replace(/[^a-z0-9]+/gi, '_')}.safetensors`);
      writeFileSync(path, bytes);
      const e = await rejection(() => openSafetensors(path));
      expect({ label, code: e.code }).toEqual({ label, code });
      expect(e.message).toMatch(message);
      expect(e.message.startsWith(`${path}: `)).toBe(true);
      expect((await rejection(() => readSafetensors(path))).code).toBe(code);
      expect((await rejection(() => openCheckpoint(path))).code).toBe(code);
    }
    expect(parseSafetensors(valid).tensors.b!.data).toEqual(Uint8Array.from([8, 9, 10, 11]));
  });

  test('file-system errors are E_IO with the OS message', async () => {
    expect(await rejection(() => openSafetensors(join(dir, 'nope.safetensors')))).toMatchObject({
      code: 'E_IO',
      message: expect.stringMatching(/nope.safetensors.*ENOENT/),
    });
    expect(await rejection(() => openSafetensors(dir))).toMatchObject({
      code: 'E_IO',
      message: expect.stringMatching(/not a regular file/),
    });
    expect(await rejection(() => readSafetensors(join(dir, 'nope.safetensors')))).toMatchObject({ code: 'E_IO' });
    expect(await rejection(() => writeSafetensors(join(dir, 'no-such-folder', 'x.safetensors'), {}))).toMatchObject({
      code: 'E_IO',
      message: expect.stringMatching(/ENOENT/),
    });
  });
});

describe('lazy reads', () => {
  test('openSafetensors: header up front, tensors on demand', async () => {
    const ts = allDTypes();
    const path = join(dir, 'lazy.safetensors');
    await writeSafetensors(path, ts, { metadata: { format: 'pt' } });
    const r = await openSafetensors(path);
    try {
      expect(r.path).toBe(path);
      expect(r.metadata).toEqual({ format: 'pt' });
      expect(r.names()).toEqual(Object.keys(parseSafetensors(readFileSync(path)).tensors));
      expect(r.names()).toEqual(r.header.tensors.map((t) => t.name));
      const info = r.info('bf16');
      expect(info).toMatchObject({ name: 'bf16', dtype: 'BF16', shape: [2, 2] });
      info.shape.push(99); // a copy
      expect(r.info('bf16').shape).toEqual([2, 2]);
      expectSameTensors(
        { bf16: ts.bf16!, u64: ts.u64!, scalar_i64: ts.scalar_i64!, empty_f16: ts.empty_f16! },
        {
          bf16: await r.read('bf16'),
          u64: await r.read('u64'),
          scalar_i64: await r.read('scalar_i64'),
          empty_f16: await r.read('empty_f16'),
        },
      );
      const [a, b] = await Promise.all([r.read('f32'), r.readBytes('f32')]);
      expect(b).toEqual(bytesOf(ts.f32!));
      expect(a.data).toEqual(ts.f32!.data);
      expect(error(() => r.info('nope'))).toMatchObject({
        code: 'E_ST_MISSING',
        message: expect.stringMatching(/"nope".*lazy.safetensors/),
      });
      expect((await rejection(() => r.read('nope'))).code).toBe('E_ST_MISSING');
    } finally {
      await r.close();
    }
    expect((await rejection(() => r.read('f32'))).code).toBe('E_IO');
    await r.close(); // twice is fine
  });

  test('a file that shrinks after opening: E_ST_INCOMPLETE on read', async () => {
    const path = join(dir, 'shrink.safetensors');
    await writeSafetensors(path, { a: tensor(new Float32Array(1000), [1000]) });
    const r = await openSafetensors(path);
    writeFileSync(path, readFileSync(path).subarray(0, 100));
    const e = await rejection(() => r.read('a'));
    expect(e).toMatchObject({ code: 'E_ST_INCOMPLETE', message: expect.stringMatching(/shrink\.safetensors/) });
    await r.close();
  });

  test('reading a 200 MB file by path, tensor by tensor, never holds it whole', async () => {
    const path = join(dir, 'big.safetensors');
    const count = 25;
    const chunk = new Float32Array(2 << 20); // 8 MiB, reused for every tensor
    const w = await createSafetensorsWriter(
      path,
      Array.from({ length: count }, (_, i) => ({ name: `t${String(i).padStart(2, '0')}`, dtype: 'F32' as const, shape: [chunk.length] })),
    );
    for (let i = 0; i < count; i++) {
      chunk.fill(i);
      await w.write(`t${String(i).padStart(2, '0')}`, tensor(chunk, [chunk.length]));
    }
    await w.finish();
    const size = 8 * 2 ** 20 * count;
    expect(readFileSync(path, { flag: 'r' }).length).toBeGreaterThan(size); // header + data
    (globalThis as { gc?: () => void }).gc?.();
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const r = await openSafetensors(path);
    for (const name of r.names()) {
      const t = await r.read(name);
      expect(t.data[12345]).toBe(Number(name.slice(1)));
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
    }
    await r.close();
    expect(peak).toBeLessThan(size / 2);
  });
});

describe('sharded checkpoints', () => {
  test('two shards and an index: by folder, by index, names shard by shard', async () => {
    const ck = join(dir, 'sharded');
    mkdirSync(ck);
    const s1 = { 'model.b': tensor(Float32Array.from([1, 2]), [2]), 'model.a': tensor(Uint16Array.from([7]), [1], 'bfloat16') };
    const s2 = { 'lm_head.weight': tensor(Int8Array.from([1, -1, 2, -2]), [2, 2]), 'model.extra': tensor(Uint8Array.from([9]), [1]) };
    await writeSafetensors(join(ck, 'model-00001-of-00002.safetensors'), s1, { metadata: { format: 'pt' } });
    await writeSafetensors(join(ck, 'model-00002-of-00002.safetensors'), s2, { metadata: { format: 'pt' } });
    const index = {
      metadata: { total_size: 17 },
      weight_map: {
        'lm_head.weight': 'model-00002-of-00002.safetensors',
        'model.a': 'model-00001-of-00002.safetensors',
        'model.b': 'model-00001-of-00002.safetensors',
      },
    };
    writeFileSync(join(ck, 'model.safetensors.index.json'), JSON.stringify(index));
    writeFileSync(join(ck, 'config.json'), '{}');
    for (const p of [ck, join(ck, 'model.safetensors.index.json')]) {
      // model.extra is not in the index: an error, unless the index is to be trusted (test/index-completeness.test.ts)
      expect(await rejection(() => openCheckpoint(p))).toMatchObject({
        code: 'E_ST_INDEX',
        message: expect.stringMatching(/weight_map omits "model\.extra", which model-00002-of-00002\.safetensors holds/),
      });
      const c = await openCheckpoint(p, { trustIndex: true });
      try {
        expect(c.files).toEqual([join(ck, 'model-00001-of-00002.safetensors'), join(ck, 'model-00002-of-00002.safetensors')]);
        expect(c.names()).toEqual(['model.b', 'model.a', 'lm_head.weight']);
        expect(c.metadata).toEqual({ format: 'pt' });
        expect(c.indexMetadata).toEqual({ total_size: 17 });
        expect(c.info('lm_head.weight')).toMatchObject({ dtype: 'I8', shape: [2, 2], start: 0, end: 4 });
        expectSameTensors(
          { ...s1, 'lm_head.weight': s2['lm_head.weight'] },
          Object.fromEntries(await Promise.all(c.names().map(async (n) => [n, await c.read(n)]))),
        );
        expect(await c.readBytes('model.a')).toEqual(Uint8Array.from([7, 0]));
        expect(error(() => c.info('model.extra')).code).toBe('E_ST_MISSING');
      } finally {
        await c.close();
      }
    }
  });

  test('a single file, or a folder with one; bad indexes', async () => {
    const one = join(dir, 'single');
    mkdirSync(one);
    await writeSafetensors(join(one, 'weights.safetensors'), { x: tensor(Uint8Array.from([1]), [1]) });
    for (const p of [one, join(one, 'weights.safetensors')]) {
      const c = await openCheckpoint(p);
      expect(c.files).toEqual([join(one, 'weights.safetensors')]);
      expect(c.names()).toEqual(['x']);
      expect(c.indexMetadata).toBeNull();
      await c.close();
    }
    await writeSafetensors(join(one, 'other.safetensors'), { y: tensor(Uint8Array.from([1]), [1]) });
    expect((await rejection(() => openCheckpoint(one))).code).toBe('E_ARGUMENT'); // two files, no index
    expect((await rejection(() => openCheckpoint(join(dir, 'corpus-none')))).code).toBe('E_IO');
    const empty = join(dir, 'empty-folder');
    mkdirSync(empty);
    expect((await rejection(() => openCheckpoint(empty))).code).toBe('E_IO');

    const idx = (name: string, content: unknown) => {
      writeFileSync(join(one, name), typeof content === 'string' ? content : JSON.stringify(content));
      return join(one, name);
    };
    const bad: [string, unknown, RegExp][] = [
      ['a.json', '{not json', /not valid JSON/],
      ['b.json', [1], /weight_map/],
      ['c.json', { weight_map: { x: 1 } }, /weight_map\["x"\]/],
      ['d.json', { weight_map: { x: '../single/weights.safetensors' } }, /inside/],
      ['e.json', { weight_map: { x: '/etc/passwd' } }, /inside/],
      ['f.json', { weight_map: { y: 'weights.safetensors' } }, /"y" to weights.safetensors, which does not hold it/],
      ['g.json', { weight_map: {}, metadata: 3 }, /metadata/],
    ];
    for (const [name, content, message] of bad) {
      expect(await rejection(() => openCheckpoint(idx(name, content)))).toMatchObject({
        code: 'E_ST_INDEX',
        message: expect.stringMatching(message),
      });
    }
    expect((await rejection(() => openCheckpoint(idx('h.json', { weight_map: { x: 'missing.safetensors' } })))).code).toBe('E_IO');
  });
});

describe('streaming writer', () => {
  const fixed = {
    w: tensor(
      Uint16Array.from({ length: 12 }, (_, i) => i),
      [3, 4],
      'bfloat16',
    ),
    q: tensor(Uint8Array.from([1, 2, 3]), [3]),
    s: tensor(Float32Array.from([0.5]), []),
    r: { dtype: 'int64', shape: [2], data: Uint8Array.from({ length: 16 }, (_, i) => i), device: 'cpu' } as StoredTensor,
  };
  const plan = Object.entries(fixed).map(([name, t]) => ({ name, dtype: safetensorsDTypeOf(t), shape: t.shape }));

  test('a fully declared plan gives exactly serializeSafetensors bytes, whatever the write order', async () => {
    const path = join(dir, 'stream-fixed.safetensors');
    const w = await createSafetensorsWriter(path, plan, { metadata: { format: 'pt' } });
    expect(existsSync(path)).toBe(false);
    for (const name of ['s', 'q', 'r', 'w'] as const) await w.write(name, fixed[name]);
    await w.finish();
    expect(readFileSync(path).equals(Buffer.from(serializeSafetensors(fixed, { metadata: { format: 'pt' } })))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  test('maxElements: lengths known late, concurrent writes, deterministic layout; content equals serializeSafetensors', async () => {
    const blob = (s: string) => tensor(enc.encode(s), [enc.encode(s).length]);
    const late = {
      'a.quant_state': blob('{"quant_type": "nf4"}'),
      'b.quant_state': blob('{}'),
      cols: tensor(Int32Array.from([3, 1, 4]), [3]),
      none: tensor(new Uint8Array(0), [0]),
    };
    const full = { ...fixed, ...late };
    const vplan = [
      ...plan,
      { name: 'a.quant_state', dtype: 'U8' as const, maxElements: 4096 },
      { name: 'b.quant_state', dtype: 'U8' as const, maxElements: 4096 },
      { name: 'cols', dtype: 'I32' as const, maxElements: 100 },
      { name: 'none', dtype: 'U8' as const, maxElements: 10 },
    ];
    const outputs: Buffer[] = [];
    for (const [i, order] of [
      ['w', 'a.quant_state', 'q', 'cols', 'none', 'b.quant_state', 's', 'r'],
      ['cols', 'b.quant_state', 'none', 'a.quant_state', 's', 'r', 'q', 'w'],
    ].entries()) {
      const path = join(dir, `stream-var-${i}.safetensors`);
      const w = await createSafetensorsWriter(path, vplan, { metadata: { format: 'pt' } });
      await Promise.all(order.map((n) => w.write(n, full[n as keyof typeof full])));
      await w.finish();
      const back = await readSafetensors(path);
      expectSameTensors(full, back.tensors);
      expectSameTensors(parseSafetensors(serializeSafetensors(full)).tensors, back.tensors);
      expect(back.metadata).toEqual({ format: 'pt' });
      outputs.push(readFileSync(path));
    }
    expect(outputs[0]!.equals(outputs[1]!)).toBe(true);
    // fixed tensors in the reference order, then the late ones in that order too
    const r = await openSafetensors(join(dir, 'stream-var-0.safetensors'));
    expect(r.names()).toEqual(['r', 's', 'w', 'q', 'cols', 'a.quant_state', 'b.quant_state', 'none']);
    expect(r.header.dataStart % 8).toBe(0);
    await r.close();
    // the header was reserved at its widest and padded with spaces
    const n = Number(outputs[0]!.readBigUInt64LE(0));
    expect(
      outputs[0]!
        .subarray(8, 8 + n)
        .toString()
        .endsWith('}   '),
    ).toBe(false);
    expect(/\} +$/.test(outputs[0]!.subarray(8, 8 + n).toString())).toBe(true);
  });

  test('writes that do not match the plan are rejected; the writer stays usable', async () => {
    const path = join(dir, 'stream-bad.safetensors');
    const w = await createSafetensorsWriter(path, [...plan, { name: 'v', dtype: 'I32', maxElements: 3 }]);
    expect((await rejection(() => w.write('nope', fixed.q))).code).toBe('E_ST_MISSING');
    expect(await rejection(() => w.write('q', tensor(Int8Array.from([1, 2, 3]), [3])))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/"q".*I8.*U8/),
    });
    expect(await rejection(() => w.write('q', tensor(Uint8Array.from([1, 2, 3]), [1, 3])))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/\[1, 3\].*\[3\]/),
    });
    expect((await rejection(() => w.write('r', { ...fixed.r, data: new Uint8Array(8) } as StoredTensor))).code).toBe('E_ST_SIZE');
    expect((await rejection(() => w.write('v', tensor(new Int32Array(4), [4])))).code).toBe('E_SHAPE');
    expect((await rejection(() => w.write('v', tensor(new Int32Array(2), [1, 2])))).code).toBe('E_SHAPE');
    await w.write('q', fixed.q);
    expect(await rejection(() => w.write('q', fixed.q))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/already been written/),
    });
    // finishing with tensors missing fails and removes the temporary file
    expect(await rejection(() => w.finish())).toMatchObject({
      code: 'E_ST_INCOMPLETE',
      message: expect.stringMatching(/4 planned tensor\(s\).*"r"/),
    });
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('stream-bad'))).toEqual([]);
    expect((await rejection(() => w.write('s', fixed.s))).code).toBe('E_ARGUMENT');
    await w.abort(); // after a failure: nothing to do
  });

  test('bad plans are refused before any file is created', async () => {
    const path = join(dir, 'stream-plan.safetensors');
    const bad = async (p: unknown) => (await rejection(() => createSafetensorsWriter(path, p as never))).code;
    expect(await bad([{ name: 'a', dtype: 'F128', shape: [1] }])).toBe('E_ST_DTYPE');
    expect(await bad([{ name: 'a', dtype: 'F32', shape: [-1] }])).toBe('E_ST_SHAPE');
    expect(await bad([{ name: 'a', dtype: 'F32' }])).toBe('E_ARGUMENT');
    expect(await bad([{ name: 'a', dtype: 'F32', shape: [1], maxElements: 1 }])).toBe('E_ARGUMENT');
    expect(await bad([{ name: 'a', dtype: 'F32', maxElements: -1 }])).toBe('E_ARGUMENT');
    expect(
      await bad([
        { name: 'a', dtype: 'F32', shape: [1] },
        { name: 'a', dtype: 'F32', shape: [1] },
      ]),
    ).toBe('E_ARGUMENT');
    expect(await bad([{ name: '__metadata__', dtype: 'F32', shape: [1] }])).toBe('E_ARGUMENT');
    expect((await rejection(() => createSafetensorsWriter(path, [], { metadata: { a: 1 } as never }))).code).toBe('E_ST_METADATA');
    expect(readdirSync(dir).filter((f) => f.includes('stream-plan'))).toEqual([]);
  });

  test('abort leaves nothing; an existing output is refused without force and replaced with it', async () => {
    const path = join(dir, 'stream-abort.safetensors');
    const before = readdirSync(dir).sort();
    const w = await createSafetensorsWriter(path, plan);
    await w.write('w', fixed.w);
    expect(readdirSync(dir).length).toBe(before.length + 2); // the temporary file and its owner lock
    await w.abort();
    await w.abort();
    expect(readdirSync(dir).sort()).toEqual(before);
    expect((await rejection(() => w.write('q', fixed.q))).code).toBe('E_ARGUMENT');
    expect((await rejection(() => w.finish())).code).toBe('E_ARGUMENT');

    writeFileSync(path, 'precious');
    expect(await rejection(() => createSafetensorsWriter(path, plan))).toMatchObject({
      code: 'E_EXISTS',
      message: expect.stringMatching(/force/),
    });
    // the output appears while a writer is open: finish refuses and cleans up
    rmSync(path);
    const w2 = await createSafetensorsWriter(path, [{ name: 'q', dtype: 'U8', shape: [3] }]);
    await w2.write('q', fixed.q);
    writeFileSync(path, 'precious');
    expect((await rejection(() => w2.finish())).code).toBe('E_EXISTS');
    expect(readFileSync(path, 'utf8')).toBe('precious');
    expect(readdirSync(dir).sort()).toEqual([...before, 'stream-abort.safetensors'].sort());
    const w3 = await createSafetensorsWriter(path, [{ name: 'q', dtype: 'U8', shape: [3] }], { force: true });
    await w3.write('q', fixed.q);
    await w3.finish();
    await w3.abort(); // after finish: keeps the output
    expect((await readSafetensors(path)).tensors.q!.data).toEqual(fixed.q.data);
  });
});

describe('writeSafetensors never leaves a partial output', () => {
  test('refuses an existing file without force; invalid tensors fail before any file exists', async () => {
    const path = join(dir, 'w.safetensors');
    writeFileSync(path, 'precious');
    const before = readdirSync(dir).sort();
    expect(await rejection(() => writeSafetensors(path, { a: tensor(Uint8Array.from([1]), [1]) }))).toMatchObject({
      code: 'E_EXISTS',
      message: expect.stringMatching(/w\.safetensors.*force/),
    });
    expect(readFileSync(path, 'utf8')).toBe('precious');
    const fresh = join(dir, 'w2.safetensors');
    expect(
      await rejection(() => writeSafetensors(fresh, { a: { dtype: 'float32', shape: [2], data: new Float32Array(1), device: 'cpu' } })),
    ).toMatchObject({ code: 'E_SHAPE' });
    expect((await rejection(() => writeSafetensors(fresh, {}, { metadata: { a: null } as never }))).code).toBe('E_ST_METADATA');
    expect(readdirSync(dir).sort()).toEqual(before);
    await writeSafetensors(path, { a: tensor(Uint8Array.from([1]), [1]) }, { force: true });
    expect((await readSafetensors(path)).tensors.a!.data).toEqual(Uint8Array.from([1]));
  });

  test('a failure when moving the file into place removes the temporary file', async () => {
    const target = join(dir, 'occupied');
    mkdirSync(join(target, 'child'), { recursive: true }); // rename onto a non-empty folder fails
    const before = readdirSync(dir).sort();
    expect((await rejection(() => writeSafetensors(target, { a: tensor(Uint8Array.from([1]), [1]) }, { force: true }))).code).toBe('E_IO');
    expect(readdirSync(dir).sort()).toEqual(before);
    const w = await createSafetensorsWriter(target, [], { force: true });
    expect((await rejection(() => w.finish())).code).toBe('E_IO');
    expect(readdirSync(dir).sort()).toEqual(before);
  });
});

describe('writeSafetensors(tensors, { metadata })', () => {
  test('returns the bytes serializeSafetensors gives', async () => {
    const { writeSafetensors: w, parseSafetensors: p } = await import('../src/io/safetensors/whole.js');
    const { serializeSafetensors: s } = await import('../src/io/safetensors/encode.js');
    const t = { a: { dtype: 'float32' as const, shape: [2], data: new Float32Array([1, 2]), device: 'cpu' } };
    const bytes = w(t, { metadata: { format: 'pt' } });
    expect(bytes).toEqual(s(t, { metadata: { format: 'pt' } }));
    expect(p(bytes).metadata).toEqual({ format: 'pt' });
  });
});
