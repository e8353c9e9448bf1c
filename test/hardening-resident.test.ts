// Issue #15, case 8: a disposed wasmTensor whose bytes a later wasmTensor reuses.
// Each resident allocation has a generation, so the disposed tensor (its object, a
// copy of its fields, or tensor() over its data view) is E_DETACHED as an input and as
// `out`, and the tensor now living there keeps every byte.
import { afterAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  isResident,
  quantize4bit,
  quantizeBlockwise,
  setNumThreads,
  tensor,
  toFloat32,
  wasmTensor,
} from '../src/index.js';
import { castFloat } from '../src/backend/wasm/cast.js';
import { sharedKernelMemory } from '../src/backend/wasm/threads/shared.js';
import { Rng, randn } from './helpers/random.js';
import { error, onWasmBackend } from './helpers/util.js';

const bytes = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const rng = new Rng(1508);

describe('a disposed wasmTensor whose memory another tensor reuses', () => {
  onWasmBackend();
  setNumThreads(2);
  const shared = sharedKernelMemory();
  if (shared === null)
    console.log('hardening-resident: skipped, this runtime has no shared kernel memory (wasmTensor makes ordinary copies)');
  afterAll(() => setNumThreads(2));

  it.skipIf(shared === null)('is E_DETACHED as an input and as out; the tensor now in its bytes is unchanged', () => {
    const A = wasmTensor(tensor(randn(rng, 256), [4, 64]));
    const Aview = A.data,
      Acopy = { ...A },
      Awrapped = tensor(A.data as Float32Array, [4, 64]);
    expect(isResident(A)).toBe(true);
    A.dispose();
    const B = wasmTensor(tensor(randn(rng, 256), [4, 64]));
    // the same region: without generations A's view would be B's data
    expect([B.data.buffer === Aview.buffer || isResident(B), B.data.byteOffset, B.data.byteLength]).toEqual([
      true,
      Aview.byteOffset,
      Aview.byteLength,
    ]);
    const before = Buffer.from(bytes(B));
    const msg = /kernel memory outside any live wasmTensor \(one that was disposed/;

    // as an input, in every form a caller may still hold it
    for (const [name, t] of [
      ['A', A],
      ['{ ...A }', Acopy],
      ['tensor(A.data)', Awrapped],
    ] as const) {
      for (const f of [
        () => quantize4bit(t),
        () => quantizeBlockwise(t, { blocksize: 64 }),
        () => toFloat32(t),
        () => castFloat(t, 'float16'),
        () => wasmTensor(t),
      ]) {
        expect(error(f), name).toMatchObject({ code: 'E_DETACHED', message: expect.stringMatching(msg) });
      }
    }
    expect(error(() => A.to!('cpu'))).toMatchObject({ code: 'E_DETACHED' });
    expect(isResident(A)).toBe(false);
    expect(isResident(Acopy)).toBe(false);
    expect(isResident(B)).toBe(true);

    // as out: refused before anything is written
    const [p, s] = quantize4bit(tensor(randn(rng, 256), [4, 64]), { quantType: 'nf4' });
    const [q, s8] = quantizeBlockwise(tensor(randn(rng, 256), [4, 64]), { blocksize: 64 });
    const fp8 = tensor(
      Uint8Array.from({ length: 256 }, (_, i) => i & 0x77),
      [4, 64],
      'float8_e4m3fn',
    );
    for (const out of [A, Acopy, Awrapped]) {
      expect(error(() => dequantize4bit(p, s, { out }))).toMatchObject({
        code: 'E_DETACHED',
        message: expect.stringMatching(/^out\.data/),
      });
      expect(error(() => dequantizeBlockwise(q, s8, { out }))).toMatchObject({
        code: 'E_DETACHED',
        message: expect.stringMatching(/^out\.data/),
      });
      expect(error(() => dequantizeFp8(fp8, tensor([0.5]), { dtype: 'float32', out }))).toMatchObject({ code: 'E_DETACHED' });
    }
    // the packed weight of a matrix op, and int8 inputs
    const P = wasmTensor(p);
    const Pcopy = { ...P };
    P.dispose();
    const Q = wasmTensor(tensor(new Uint8Array(p.data.length).fill(0x5a), [...p.shape], 'uint8'));
    const Qbefore = Buffer.from(bytes(Q));
    expect(error(() => gemv4bit(tensor(randn(rng, 64), [1, 64]), Pcopy, s))).toMatchObject({
      code: 'E_DETACHED',
      message: expect.stringMatching(/^B\.data/),
    });
    const H = wasmTensor(
      tensor(
        Uint16Array.from({ length: 64 }, (_, i) => 0x3c00 + i),
        [2, 32],
        'float16',
      ),
    );
    const Hcopy = { ...H };
    H.dispose();
    const H2 = wasmTensor(tensor(new Uint16Array(64).fill(0x4000), [2, 32], 'float16'));
    expect(error(() => int8VectorwiseQuant(Hcopy))).toMatchObject({ code: 'E_DETACHED', message: expect.stringMatching(/^A\.data/) });
    const C = wasmTensor(tensor(new Int8Array(64).fill(7), [2, 32]));
    C.dispose();
    const C2 = wasmTensor(tensor(new Int8Array(64).fill(-3), [2, 32]));
    expect(error(() => int8VectorwiseDequant(C, tensor([1, 1])))).toMatchObject({
      code: 'E_DETACHED',
      message: expect.stringMatching(/^A\.data/),
    });
    expect([...C2.data].every((v) => v === -3)).toBe(true);

    // nothing was written into the tensors now living in the reused bytes
    expect(bytes(B).equals(before)).toBe(true);
    expect(bytes(Q).equals(Qbefore)).toBe(true);
    expect([...H2.data].every((v) => v === 0x4000)).toBe(true);
    // and they work
    const o = wasmTensor([4, 64], 'float32');
    expect(bytes(dequantize4bit(p, s, { out: o })).equals(bytes(dequantize4bit(p, s)))).toBe(true);
    for (const t of [B, Q, H2, C2, o]) t.dispose();
    expect(shared!.residentBytes()).toBe(0);
  });
});
