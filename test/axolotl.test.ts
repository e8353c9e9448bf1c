// axolotl's dequantize helpers (docs/bit-exactness.md#axolotl-helpers): bnb 4-bit states (object and legacy list), the
// transposed-input convention, fp8, unquantized weights, torchao NF4Tensor components, errors.
import { describe, expect, it } from 'vitest';
import {
  QuantState,
  Tensor,
  TorchaoNF4Tensor,
  dequantize,
  dequantize4bit,
  dequantizeFp8,
  dequantizeWeight,
  get4bitType,
  numberToBf16,
  numberToF16,
  quantize4bit,
  quantizeBlockwise,
  tensor,
} from '../src/index.js';
import { FloatDType } from '../src/dtypes.js';
import { diffElements, loadGolden } from './helpers/golden.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { error } from './helpers/util.js';

// ---- independent decoding and transposition (not the library's) ----

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

function decode(dtype: string, x: number): number {
  if (dtype === 'float32') return x;
  if (dtype === 'bfloat16') {
    u32buf[0] = (x << 16) >>> 0;
    return f32buf[0]!;
  }
  const s = x & 0x8000 ? -1 : 1,
    e = (x >> 10) & 31,
    m = x & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

function values(t: Tensor): number[] {
  return Array.from(t.data, (x) => decode(t.dtype, x));
}

/** Checks that `b` is the transpose of the 2-D tensor `a`, element bits included. */
function expectTransposeOf(b: Tensor, a: Tensor): void {
  const [r, c] = a.shape as [number, number];
  expect(b.shape).toEqual([c, r]);
  expect(b.dtype).toBe(a.dtype);
  let bad = 0;
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) if (b.data[j * r + i] !== a.data[i * c + j]) bad++;
  expect(bad).toBe(0);
}

const DTYPES: FloatDType[] = ['float32', 'float16', 'bfloat16'];

function quantized(seed: number, shape: number[], dtype: FloatDType, quantType: 'nf4' | 'fp4', nested: boolean, blocksize = 64) {
  const n = shape.reduce((a, b) => a * b, 1);
  const A = asDType(randn(new Rng(seed), n), shape, dtype);
  const [packed, state] = quantize4bit(A, { quantType, compressStatistics: nested, blocksize });
  return { A, packed, state };
}

/** bnb 0.40.1–0.41.x's state list, built from a nested QuantState. */
function legacyList(state: QuantState, offset: number | Tensor = state.offset!): unknown[] {
  const s2 = state.state2!;
  return [
    state.absmax,
    state.shape,
    state.dtype,
    state.blocksize,
    [offset, [s2.absmax, s2.code, s2.blocksize, false, 'float32', null, null]],
    state.quantType,
    get4bitType(state.quantType!),
  ];
}

describe('dequantize with a bnb QuantState', () => {
  for (const quantType of ['nf4', 'fp4'] as const) {
    for (const nested of [false, true]) {
      for (const dtype of DTYPES) {
        it(`${quantType} ${dtype} ${nested ? 'nested' : 'plain'}: bit for bit dequantize4bit`, () => {
          for (const [shape, blocksize] of [
            [[48, 40], 64],
            [[7, 33], 32],
            [[300], 128],
          ] as [number[], number][]) {
            const { A, packed, state } = quantized(17 + shape[0]!, shape, dtype, quantType, nested, blocksize);
            expect(state.nested).toBe(nested);
            const got = dequantize(packed, state);
            const want = dequantize4bit(packed, state);
            expect(got.dtype).toBe(dtype);
            expect(got.shape).toEqual(shape);
            expect(diffElements(got, want)).toEqual([]);
            // and it is the weight: 4-bit error stays well inside the block absmax (randn: < 5)
            const a = values(A),
              g = values(got);
            const maxErr = Math.max(...a.map((x, i) => Math.abs(x - g[i]!)));
            expect(maxErr).toBeLessThan(quantType === 'nf4' ? 0.8 : 1.4);
            // out: filled and returned
            const out = tensor(new (dtype === 'float32' ? Float32Array : Uint16Array)(got.data.length), [...shape], dtype);
            expect(dequantize(packed, state, { out })).toBe(out);
            expect(diffElements(out, want)).toEqual([]);
          }
        });
      }
    }
  }

  it('a nested FP4 state is decoded as FP4, not as NF4 (axolotl decodes every nested state with the NF4 kernel)', () => {
    const { packed, state } = quantized(5, [32, 64], 'bfloat16', 'fp4', true);
    const got = dequantize(packed, state);
    const asNf4 = dequantize4bit(packed, new QuantState({ ...state, quantType: 'nf4' }));
    expect(diffElements(got, dequantize4bit(packed, state))).toEqual([]);
    expect(diffElements(got, asNf4).length).toBeGreaterThan(1000);
  });

  it('a nested float32 state gives float32 values (axolotl writes bf16 into the f32 buffer)', () => {
    const { A, packed, state } = quantized(6, [16, 64], 'float32', 'nf4', true);
    const got = dequantize(packed, state);
    expect(got.dtype).toBe('float32');
    expect(got.data).toBeInstanceOf(Float32Array);
    const a = values(A);
    expect(values(got).every((x, i) => Math.abs(x - a[i]!) < 0.8)).toBe(true);
  });

  it('out with the wrong dtype or shape is a BnbError', () => {
    const { packed, state } = quantized(7, [8, 64], 'float16', 'nf4', true);
    expect(error(() => dequantize(packed, state, { out: tensor(new Float32Array(512), [8, 64]) }))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/out.dtype = "float32".*"float16"/),
    });
    expect(error(() => dequantize(packed, state, { out: tensor(new Uint16Array(512), [64, 8], 'float16') }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/out.shape = \[64, 8\].*\[8, 64\]/),
    });
    const plain = quantized(7, [8, 64], 'float16', 'nf4', false);
    expect(error(() => dequantize(plain.packed, plain.state, { out: tensor(new Uint16Array(512), [512], 'float16') }))).toMatchObject({
      code: 'E_SHAPE',
    });
  });
});

describe('dequantize with the legacy list of bnb 0.40.1–0.41.x', () => {
  for (const quantType of ['nf4', 'fp4'] as const) {
    for (const dtype of DTYPES) {
      it(`${quantType} ${dtype}: same bits as the QuantState it was built from`, () => {
        const { packed, state } = quantized(23, [40, 96], dtype, quantType, true);
        const want = dequantize4bit(packed, state);
        expect(diffElements(dequantize(packed, legacyList(state) as never), want)).toEqual([]);
        // offset as a 0-dim f32 tensor, as bnb stored it
        const offsetT = tensor(Float32Array.of(state.offset!), [], 'float32');
        expect(diffElements(dequantize(packed, legacyList(state, offsetT) as never), want)).toEqual([]);
        // the list's items are really read: another offset gives other values
        const shifted = dequantize(packed, legacyList(state, state.offset! + 0.01) as never);
        expect(diffElements(shifted, want).length).toBeGreaterThan(0);
      });
    }
  }

  it('out and the transposed convention work with the list too', () => {
    const { packed, state } = quantized(29, [24, 64], 'bfloat16', 'nf4', true);
    const normal = dequantize(packed, legacyList(state) as never);
    const out = tensor(new Uint16Array(24 * 64), [24, 64], 'bfloat16');
    expect(dequantize(packed, legacyList(state) as never, { out })).toBe(out);
    expect(diffElements(out, normal)).toEqual([]);
    expectTransposeOf(dequantize({ ...packed, shape: [1, packed.shape[0]!] }, legacyList(state) as never), normal);
  });

  it('malformed lists are BnbErrors naming the item', () => {
    const { packed, state } = quantized(31, [8, 64], 'float16', 'nf4', true);
    const plain = quantized(31, [8, 64], 'float16', 'nf4', false);
    const nonNested = [plain.state.absmax, [8, 64], 'float16', 64, null, 'nf4', get4bitType('nf4')];
    expect(error(() => dequantize(plain.packed, nonNested as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/quantState\[4\].*= null.*double-quantized.*pass a QuantState/),
    });
    expect(error(() => dequantize(packed, legacyList(state).slice(0, 6) as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/list of 6 items.*7-item legacy list.*current QuantState list view/),
    });
    expect(error(() => dequantize(packed, [] as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/list of 0 items/),
    });
    const badState2 = legacyList(state);
    (badState2[4] as unknown[])[1] = [state.state2!.absmax, state.state2!.code, 256];
    expect(error(() => dequantize(packed, badState2 as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/quantState\[4\]\[1\] \(state2\).*7-item legacy nested list/),
    });
    const badStats = legacyList(state);
    badStats[4] = [state.offset];
    expect(error(() => dequantize(packed, badStats as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/quantState\[4\] \(compressed statistics\)/),
    });
    const f32Absmax = legacyList(state);
    f32Absmax[0] = plain.state.absmax;
    expect(error(() => dequantize(packed, f32Absmax as never))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/quantState\[0\] \(absmax\).dtype = "float32".*'uint8'/),
    });
    const badType = legacyList(state);
    badType[5] = 'int4';
    expect(error(() => dequantize(packed, badType as never))).toMatchObject({
      code: 'E_QUANT_TYPE',
      message: expect.stringMatching(/quant_type.*"int4"/),
    });
    const badDtype = legacyList(state);
    badDtype[2] = 'float64';
    expect(error(() => dequantize(packed, badDtype as never))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/quantState\[2\] \(dtype\) = "float64"/),
    });
    const badOffset = legacyList(state, 'x' as never);
    expect(error(() => dequantize(packed, badOffset as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/offset.*"x"/),
    });
  });
});

describe('the transposed-input convention', () => {
  for (const nested of [false, true]) {
    for (const quantType of ['nf4', 'fp4'] as const) {
      it(`${quantType} ${nested ? 'nested' : 'plain'}: [1, k] packed gives the transpose; dequantizeWeight(transpose) too`, () => {
        for (const dtype of DTYPES) {
          const { packed, state } = quantized(41, [40, 96], dtype, quantType, nested);
          const normal = dequantize(packed, state);
          const viewT = { ...packed, shape: [1, packed.shape[0]!] };
          const t = dequantize(viewT, state);
          expectTransposeOf(t, normal);
          expect(diffElements(t, dequantize4bit(viewT, state))).toEqual([]);
          expectTransposeOf(dequantizeWeight(packed, state, { transpose: true }), normal);
          expect(diffElements(dequantizeWeight(packed, state), normal)).toEqual([]);
          // t() of a [1, k] view is [k, 1] again: the untransposed result
          expect(diffElements(dequantizeWeight(viewT, state, { transpose: true }), normal)).toEqual([]);
          // out takes the shape of what is returned, [in, out]
          const out = tensor(new (dtype === 'float32' ? Float32Array : Uint16Array)(40 * 96), [96, 40], dtype);
          expect(dequantize(viewT, state, { out })).toBe(out);
          expectTransposeOf(out, normal);
        }
      });
    }
  }

  it('transpose with a 4-bit state needs the packed [k, 1] layout', () => {
    const { packed, state } = quantized(43, [8, 64], 'float32', 'nf4', false);
    expect(error(() => dequantizeWeight({ ...packed, shape: [256] }, state, { transpose: true }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/W.shape = \[256\].*\[k, 1\]/),
    });
    expect(error(() => dequantizeWeight({ ...packed, shape: [128, 2] }, state, { transpose: true }))).toMatchObject({ code: 'E_SHAPE' });
  });
});

describe('fp8 (float8_e4m3fn weight, quantState = scale_inv)', () => {
  const g = loadGolden('fp8_300x200_b128.safetensors');
  const W = tensor(g.W_bits!.data as Uint8Array, [...g.W_bits!.shape], 'float8_e4m3fn');
  const scaleInv = g.scale_inv!;

  it('golden fp8_300x200_b128: bf16, bit for bit (the true 128x128 tiles, partial edge tiles included)', () => {
    const got = dequantize(W, scaleInv);
    expect(got.dtype).toBe('bfloat16');
    expect(got.shape).toEqual([300, 200]);
    expect(diffElements(got, g['out.bfloat16']!)).toEqual([]);
    expect(diffElements(got, dequantizeFp8(W, scaleInv))).toEqual([]);
    expect(diffElements(dequantizeWeight(W, scaleInv), g['out.bfloat16']!)).toEqual([]);
    const out = tensor(new Uint16Array(300 * 200), [300, 200], 'bfloat16');
    expect(dequantize(W, scaleInv, { out })).toBe(out);
    expect(diffElements(out, g['out.bfloat16']!)).toEqual([]);
  });

  it('dequantizeWeight(transpose): dequantized, then transposed', () => {
    expectTransposeOf(dequantizeWeight(W, scaleInv, { transpose: true }), g['out.bfloat16']!);
  });

  it('errors: a QuantState or no tensor as the scale, a float32 out', () => {
    const { state } = quantized(3, [8, 64], 'float32', 'nf4', false);
    expect(error(() => dequantize(W, state))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/quantState = QuantState.*scale_inv Tensor/),
    });
    expect(error(() => dequantize(W, [1, 2] as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/quantState = \[1, 2\]/),
    });
    expect(error(() => dequantize(W, scaleInv, { out: tensor(new Float32Array(60000), [300, 200]) }))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/out.dtype = "float32".*"bfloat16"/),
    });
  });
});

describe('unquantized weights', () => {
  it('no state: W as it is; transpose: a new transposed tensor', () => {
    const rng = new Rng(9);
    for (const dtype of DTYPES) {
      const W = asDType(randn(rng, 6 * 10), [6, 10], dtype);
      expect(dequantize(W, null)).toBe(W);
      expect(dequantize(W)).toBe(W);
      expect(dequantize(W, undefined, { out: tensor(new Float32Array(1)) })).toBe(W);
      expect(dequantizeWeight(W)).toBe(W);
      const t = dequantizeWeight(W, null, { transpose: true });
      expectTransposeOf(t, W);
      expect(t.data.buffer).not.toBe(W.data.buffer);
    }
    const v = tensor(Float32Array.of(1, 2, 3));
    const tv = dequantizeWeight(v, undefined, { transpose: true });
    expect(Array.from(tv.data)).toEqual([1, 2, 3]);
    expect(tv.shape).toEqual([3]);
    const int8 = tensor(Int8Array.of(1, -2, 3, -4, 5, -6), [2, 3]);
    expectTransposeOf(dequantizeWeight(int8, null, { transpose: true }), int8);
    expect(error(() => dequantizeWeight(tensor(new Float32Array(8), [2, 2, 2]), null, { transpose: true }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/\[2, 2, 2\].*at most 2 dimensions/),
    });
  });
});

// ---- torchao NF4Tensor ----

const P: Record<FloatDType, [number, number]> = { float32: [24, -126], bfloat16: [8, -126], float16: [11, -14] };

/** Round to nearest even with p significant bits and minimum normal exponent emin, in f64. */
function roundTo(x: number, p: number, emin: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const q = 2 ** (Math.max(e, emin) - p + 1);
  const y = x / q;
  const r = Math.abs(y - Math.trunc(y)) === 0.5 ? 2 * Math.round(y / 2) : Math.round(y);
  return r * q;
}

/** torch arithmetic in dtype D: computed in f32, rounded to D. */
const inD = (d: FloatDType) => (x: number) => roundTo(Math.fround(x), ...P[d]);

const TORCHAO_NF4 = [
  -1.0, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0.0, 0.0796, 0.1609, 0.2461, 0.3379, 0.4407, 0.5626, 0.723, 1.0,
];

function encode(vals: ArrayLike<number>, shape: number[], dtype: FloatDType): Tensor {
  if (dtype === 'float32') return tensor(Float32Array.from(vals), shape);
  return tensor(Uint16Array.from(vals, dtype === 'float16' ? numberToF16 : numberToBf16), shape, dtype);
}

interface Built {
  comps: TorchaoNF4Tensor;
  weight: number[];
  q: Int8Array;
  qf: number[];
  mean: number;
  table: number[];
  data: Uint8Array;
}

/** NF4Tensor components quantized (torchao's from_tensor recipe, in D) from random weights. */
function buildNf4(seed: number, shape: number[], dtype: FloatDType, bs: number, sbs: number): Built {
  const D = inD(dtype);
  const n = shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(seed);
  const weight = Array.from({ length: n }, () => D(rng.normal() * 0.05));
  const table = TORCHAO_NF4.map((x) => roundTo(Math.fround(x), ...P[dtype]));
  const nb = n / bs;
  const absmax = Array.from({ length: nb }, (_, b) => Math.max(...weight.slice(b * bs, (b + 1) * bs).map(Math.abs)));
  const mean = D(absmax.reduce((a, b) => a + b, 0) / nb);
  const centred = absmax.map((x) => D(x - mean));
  const qf: number[] = [];
  for (let k = 0; k < nb / sbs; k++) qf.push(D(256 / D(2 * Math.max(...centred.slice(k * sbs, (k + 1) * sbs).map(Math.abs)))));
  const q = Int8Array.from(centred, (x, b) => {
    const y = D(x * qf[Math.floor(b / sbs)]!);
    const r = Math.abs(y - Math.trunc(y)) === 0.5 ? 2 * Math.round(y / 2) : Math.round(y);
    return Math.max(-128, Math.min(127, r));
  });
  const codes = weight.map((w, i) => {
    const s = D(w / absmax[Math.floor(i / bs)]!);
    let best = 0;
    for (let j = 1; j < 16; j++) if (Math.abs(s - table[j]!) < Math.abs(s - table[best]!)) best = j;
    return best;
  });
  const data = new Uint8Array(n / 2).map((_, k) => (codes[2 * k]! << 4) | codes[2 * k + 1]!);
  return {
    comps: {
      shape,
      dtype,
      block_size: bs,
      scaler_block_size: sbs,
      n_blocks: nb,
      quantized_data: tensor(data, [n / 2], 'uint8'),
      quantized_scalers: tensor(q, [nb], 'int8'),
      quantization_factor: encode(qf, [nb / sbs], dtype),
      scaler_mean: encode([mean], [], dtype),
      nf4: encode(table, [16], dtype),
    },
    weight,
    q,
    qf,
    mean,
    table,
    data,
  };
}

/** torchao's get_original_weight with torch's dtype rounding at each step (independent of src/). */
function torchRef(b: Built, dtype: FloatDType, bs: number, sbs: number): number[] {
  const D = inD(dtype);
  const scalers = Array.from(b.q, (x, i) => D(D(x / b.qf[Math.floor(i / sbs)]!) + b.mean));
  const out: number[] = [];
  b.data.forEach((byte, k) => {
    const s = scalers[Math.floor((2 * k) / bs)]!;
    out.push(D(b.table[byte >> 4]! * s), D(b.table[byte & 15]! * s));
  });
  return out;
}

/** The same formula in float64 with no intermediate rounding, and a bound on the rounding error. */
function f64Ref(b: Built, dtype: FloatDType, bs: number, sbs: number): { ref: number[]; bound: number[] } {
  const u = 2 ** -P[dtype][0];
  const tiny = dtype === 'float16' ? 2 ** -24 : 2 ** -149;
  const ref: number[] = [],
    bound: number[] = [];
  for (let i = 0; i < 2 * b.data.length; i++) {
    const code = i % 2 === 0 ? b.data[i >> 1]! >> 4 : b.data[i >> 1]! & 15;
    const blk = Math.floor(i / bs);
    const t = b.q[blk]! / b.qf[Math.floor(blk / sbs)]!;
    const s = t + b.mean;
    const v = b.table[code]! * s;
    ref.push(v);
    bound.push(1.25 * u * Math.abs(b.table[code]!) * (Math.abs(t) + 2 * Math.abs(s)) + tiny);
  }
  return { ref, bound };
}

describe('torchao NF4Tensor components', () => {
  for (const dtype of DTYPES) {
    for (const [shape, bs, sbs] of [
      [[64, 96], 64, 16],
      [[32, 128], 32, 8],
      [[8192], 64, 128],
    ] as [number[], number, number][]) {
      it(`${dtype} ${JSON.stringify(shape)} block ${bs}/${sbs}: torch's rounding bit for bit, float64 formula within bounds`, () => {
        const b = buildNf4(shape.length * 1000 + bs + sbs, shape, dtype, bs, sbs);
        const got = dequantizeWeight(b.comps);
        expect(got.dtype).toBe(dtype);
        expect(got.shape).toEqual(shape);
        const g = values(got);
        const want = torchRef(b, dtype, bs, sbs);
        expect(g.filter((x, i) => !Object.is(x, want[i])).length).toBe(0);
        const { ref, bound } = f64Ref(b, dtype, bs, sbs);
        expect(g.filter((x, i) => !(Math.abs(x - ref[i]!) <= bound[i]!)).length).toBe(0);
        // the reconstruction is the weight, up to NF4 error (weights ~ N(0, 0.05), max gap 0.16·absmax)
        const err = g.map((x, i) => Math.abs(x - b.weight[i]!));
        expect(Math.max(...err)).toBeLessThan(0.05);
        expect(err.reduce((a, c) => a + c, 0) / err.length).toBeLessThan(0.01);
        // transpose
        if (shape.length === 2) expectTransposeOf(dequantizeWeight(b.comps, null, { transpose: true }), got);
      });
    }
  }

  it('the checks above can fail: swapped nibbles, a single rounding of the scaler, a missing mean', () => {
    const bs = 64,
      sbs = 16;
    const b = buildNf4(77, [64, 96], 'bfloat16', bs, sbs);
    const want = torchRef(b, 'bfloat16', bs, sbs);
    const swapped = b.data.map((x) => ((x & 15) << 4) | (x >> 4));
    const gs = values(dequantizeWeight({ ...b.comps, quantized_data: tensor(swapped, [swapped.length], 'uint8') }));
    expect(gs.filter((x, i) => !Object.is(x, want[i])).length).toBeGreaterThan(1000);
    // one rounding of q/qf + mean (f64) instead of torch's two: differs for some scalers
    const D = inD('bfloat16');
    const once = Array.from(b.q, (x, i) => D(x / b.qf[Math.floor(i / sbs)]! + b.mean));
    const twice = Array.from(b.q, (x, i) => D(D(x / b.qf[Math.floor(i / sbs)]!) + b.mean));
    expect(once.filter((x, i) => x !== twice[i]).length).toBeGreaterThan(0);
    const gz = values(dequantizeWeight({ ...b.comps, scaler_mean: 0 }));
    expect(gz.filter((x, i) => !Object.is(x, want[i])).length).toBeGreaterThan(1000);
  });

  it('scaler_mean may be a number (rounded to the dtype); n_blocks may be left out', () => {
    const b = buildNf4(78, [32, 64], 'float16', 64, 8);
    const want = dequantizeWeight(b.comps);
    const { n_blocks: _unused, ...noBlocks } = b.comps;
    expect(diffElements(dequantizeWeight({ ...noBlocks, scaler_mean: b.mean }), want)).toEqual([]);
    // a number that is not a float16 value is rounded as torch.tensor(x, dtype=float16) would
    const off = dequantizeWeight({ ...b.comps, scaler_mean: b.mean + 2 ** -30 });
    expect(diffElements(off, want)).toEqual([]);
  });

  it('errors name the component and what is accepted', () => {
    const b = buildNf4(79, [16, 64], 'bfloat16', 64, 4);
    const c = b.comps;
    expect(error(() => dequantizeWeight(c, new QuantState({ absmax: c.quantization_factor, code: c.nf4, blocksize: 64 })))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/quantState = QuantState.*NF4Tensor/),
    });
    expect(error(() => dequantize(c as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/NF4Tensor.*dequantizeWeight/),
    });
    const { nf4: _nf4, ...noTable } = c;
    expect(error(() => dequantizeWeight(noTable as never))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/missing "nf4"/),
    });
    expect(error(() => dequantizeWeight({ ...c, quantization_factor: encode(b.qf, [4], 'float32') }))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/W.quantization_factor.dtype = "float32".*"bfloat16"/),
    });
    expect(error(() => dequantizeWeight({ ...c, quantized_scalers: tensor(new Uint8Array(16), [16]) }))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/W.quantized_scalers.dtype = "uint8".*"int8"/),
    });
    expect(error(() => dequantizeWeight({ ...c, quantized_data: tensor(new Uint8Array(100), [100]) }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/W.quantized_data has 100 elements.*needs 512/),
    });
    expect(error(() => dequantizeWeight({ ...c, n_blocks: 3 }))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/W.n_blocks = 3.*16/),
    });
    expect(error(() => dequantizeWeight({ ...c, block_size: 63 }))).toMatchObject({
      code: 'E_BLOCKSIZE',
      message: expect.stringMatching(/W.block_size = 63.*even/),
    });
    expect(error(() => dequantizeWeight({ ...c, scaler_block_size: 5 }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/16 blocks.*scaler_block_size = 5/),
    });
    expect(error(() => dequantizeWeight({ ...c, shape: [16, 50] }))).toMatchObject({
      code: 'E_SHAPE',
      message: expect.stringMatching(/800 elements.*block_size = 64/),
    });
    expect(error(() => dequantizeWeight({ ...c, dtype: 'int8' as never }))).toMatchObject({
      code: 'E_DTYPE',
      message: expect.stringMatching(/W.dtype = "int8"/),
    });
    expect(error(() => dequantizeWeight({ ...c, scaler_mean: 'm' as never }))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/W.scaler_mean = "m"/),
    });
  });
});

describe('bad state forms and options', () => {
  const { packed, state } = quantized(91, [8, 64], 'float32', 'nf4', true);

  it('unknown forms, a scale tensor for a non-fp8 W, an 8-bit state, option typos', () => {
    for (const bad of [{}, 'nf4', 42, true]) {
      expect(error(() => dequantize(packed, bad as never))).toMatchObject({
        code: 'E_STATE',
        message: expect.stringMatching(
          /^quantState = .* is not accepted: expected null, a QuantState, the 7-item legacy list.*scale_inv Tensor/,
        ),
      });
    }
    expect(error(() => dequantize(packed, tensor(Float32Array.of(1))))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/quantState is a Tensor.*W.dtype = "uint8"/),
    });
    const [, s8] = quantizeBlockwise(tensor(new Float32Array(256).fill(1)), { blocksize: 64 });
    expect(error(() => dequantize(packed, s8))).toMatchObject({
      code: 'E_STATE',
      message: expect.stringMatching(/8-bit blockwise state.*dequantizeBlockwise/),
    });
    expect(error(() => dequantize(packed, state, { output: null } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/output/),
    });
    expect(error(() => dequantizeWeight(packed, state, { transpose: 1 } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/transpose = 1.*true or false/),
    });
    expect(error(() => dequantize(null as never, state))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^W = null/),
    });
  });
});
