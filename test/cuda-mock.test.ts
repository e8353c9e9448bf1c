// The CUDA backend's TypeScript on every machine: the ops run through
// src/backend/cuda on the mock addon (test/helpers/mock-cuda-addon.cjs, the addon's
// ABI on the WebAssembly kernels), with host tensors (BNBJS_BACKEND=cuda's host
// mode) and with device tensors, and must give the WebAssembly backend's bytes and
// its errors. The mock checks every pointer against live allocations, and every
// device allocation must be freed again. (npm run test:cuda-mock runs the whole
// suite this way.)
import { describe, expect, it } from 'vitest';
import {
  BnbError,
  QuantState,
  Tensor,
  createLinearMap,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  matmul4bit,
  quantize4bit,
  quantizeBlockwise,
  setForcedBackend,
  tensor,
  toDevice,
} from '../src/index.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { useMockCudaAddon } from './helpers/mock-cuda.js';

type Mode = 'wasm' | 'cuda-host' | 'cuda';
type Dev = (t: Tensor) => Tensor;

const allocations = useMockCudaAddon();

/** A result with its tensors on the host (device ones copied back and freed), as comparable bytes. */
function norm(x: unknown): unknown {
  if (x instanceof QuantState) {
    const { absmax, code, state2, ...rest } = x;
    return { ...rest, absmax: norm(absmax), code: norm(code), state2: norm(state2) };
  }
  if (Array.isArray(x)) return x.map(norm);
  const t = x as Tensor;
  if (t === null || typeof t !== 'object' || typeof t.dtype !== 'string') return x;
  const h = toDevice(t, 'cpu');
  if (h !== t) t.dispose!();
  return { dtype: h.dtype, shape: h.shape, bytes: Buffer.from(h.data.buffer, h.data.byteOffset, h.data.byteLength).toString('base64') };
}

/** The devices of a result's tensors (the 4-bit code of a state is host data on every backend). */
function devices(x: unknown): string[] {
  if (x instanceof QuantState) return [...devices(x.absmax), ...devices(x.state2)];
  if (Array.isArray(x)) return x.flatMap(devices);
  const t = x as Tensor;
  return t !== null && typeof t === 'object' && typeof t.dtype === 'string' && t.shape.length > 0 && t.shape.every((d) => d > 0)
    ? [t.device]
    : [];
}

/** f in one mode: its normalised result, or the code and message of its BnbError. */
function run(mode: Mode, f: (dev: Dev) => unknown): unknown {
  setForcedBackend(mode === 'wasm' ? 'wasm' : mode === 'cuda-host' ? 'cuda' : null);
  const inputs: Tensor[] = [];
  const dev: Dev = (t) => {
    if (mode !== 'cuda') return t;
    const d = toDevice(t, 'cuda');
    inputs.push(d);
    return d;
  };
  try {
    const r = f(dev);
    // device tensors in, device tensors out (int8VectorwiseQuant's outlier columns are host data on every backend)
    if (mode === 'cuda' && !Array.isArray(r))
      expect(
        devices(r).every((d) => d === 'cuda:0'),
        'a result left the device',
      ).toBe(true);
    return norm(r);
  } catch (e) {
    if (!(e instanceof BnbError)) throw e;
    return { code: e.code, message: e.message };
  } finally {
    for (const d of inputs) d.dispose!();
    setForcedBackend(null);
  }
}

/** f gives the same bytes (or the same error) through CUDA, host and device tensors, as on WebAssembly. */
function same(what: string, f: (dev: Dev) => unknown, modes: Mode[] = ['cuda-host', 'cuda']): void {
  const want = run('wasm', f);
  for (const mode of modes) expect(run(mode, f), `${what} (${mode})`).toEqual(want);
}

const state = (s: QuantState, dev: Dev, change: Partial<QuantState> = {}) =>
  new QuantState({
    ...s,
    absmax: dev(s.absmax),
    state2: s.state2 ? new QuantState({ ...s.state2, absmax: dev(s.state2.absmax) }) : null,
    ...change,
  } as never);

describe('the CUDA backend on the mock addon', () => {
  const rng = new Rng(11);
  const DTYPES = ['float32', 'float16', 'bfloat16'] as const;

  it('4-bit and blockwise quantization: the WebAssembly bytes, nested statistics, storage dtypes, out and the transposed form', () => {
    for (const dtype of DTYPES) {
      for (const n of [1, 33, 4097]) {
        const A = asDType(randn(rng, n, 3), [n], dtype);
        for (const quantType of ['nf4', 'fp4'] as const) {
          const opts = { quantType, blocksize: n > 100 ? 128 : 64, compressStatistics: n > 100 };
          same(`quantize4bit ${dtype} ${n} ${quantType}`, (dev) => quantize4bit(dev(A), opts));
          const [p, s] = quantize4bit(A, opts);
          same(`dequantize4bit ${dtype} ${n} ${quantType}`, (dev) => dequantize4bit(dev(p), state(s, dev)));
        }
        same(`quantizeBlockwise ${dtype} ${n}`, (dev) => quantizeBlockwise(dev(A), { blocksize: 256, nested: n > 1000 }));
        const [q, s8] = quantizeBlockwise(A, { blocksize: 256, nested: n > 1000 });
        same(`dequantizeBlockwise ${dtype} ${n}`, (dev) => dequantizeBlockwise(dev(q), state(s8, dev)));
      }
    }
    const M = tensor(randn(rng, 24 * 40), [24, 40]);
    same('quantStorage float32', (dev) => quantize4bit(dev(M), { quantType: 'nf4', quantStorage: 'float32' }));
    const code = createLinearMap({ signed: true });
    same('a custom code', (dev) => quantizeBlockwise(dev(M), { code, blocksize: 64 }));
    const [p, s] = quantize4bit(M, { quantType: 'nf4', compressStatistics: true });
    same('dequantize4bit into out', (dev) => dequantize4bit(dev(p), state(s, dev), { out: dev(tensor(new Float32Array(960), [24, 40])) }));
    same('the transposed result of a [1, n] packed tensor', (dev) =>
      dequantize4bit(dev(tensor(p.data, [1, p.data.length], 'uint8')), state(s, dev)),
    );
    same('dequantize4bit from { absmax, shape }', (dev) =>
      dequantize4bit(dev(p), {
        absmax: dev(tensor(Float32Array.from(s.absmax.data, (x) => x / 100 + 0.5))),
        shape: [24, 40],
        quantType: 'nf4',
      }),
    );
    const [q, s8] = quantizeBlockwise(M, { blocksize: 64 });
    same('dequantizeBlockwise from { absmax } into out', (dev) =>
      dequantizeBlockwise(dev(q), { absmax: dev(s8.absmax), blocksize: 64 }, { out: dev(tensor(new Float32Array(960), [24, 40])) }),
    );
  });

  it('LLM.int8: row and column quantization with and without outliers, matmul, dequantization with each bias dtype', () => {
    const A = asDType(randn(rng, 12 * 64, 2), [12, 64], 'float16');
    for (const threshold of [0, 3]) {
      same(`int8VectorwiseQuant threshold ${threshold}`, (dev) => int8VectorwiseQuant(dev(A), { threshold }));
      same(`int8DoubleQuant threshold ${threshold}`, (dev) => int8DoubleQuant(dev(A), { threshold }));
    }
    const [cb, rs] = int8VectorwiseQuant(A);
    same('int8VectorwiseDequant', (dev) => int8VectorwiseDequant(dev(cb), dev(rs)));
    const B = tensor(
      Int8Array.from({ length: 20 * 64 }, () => rng.int(-128, 127)),
      [20, 64],
    );
    same('int8LinearMatmul', (dev) => int8LinearMatmul(dev(cb), dev(B)));
    const C = int8LinearMatmul(cb, B);
    const cs = tensor(Float32Array.from({ length: 20 }, () => rng.next() * 3));
    for (const dtype of DTYPES) {
      same(`int8MmDequant -> ${dtype}`, (dev) => int8MmDequant(dev(C), dev(rs), dev(cs), { dtype }));
      const bias = asDType(randn(rng, 20), [20], dtype);
      same(`int8MmDequant, ${dtype} bias`, (dev) => int8MmDequant(dev(C), dev(rs), dev(cs), { bias: dev(bias) }));
    }
  });

  it('gemv4bit and matmul4bit (nested states, several rows, a bias, K = 0) and dequantizeFp8 (every scale layout, out)', () => {
    for (const dtype of DTYPES) {
      const W = tensor(randn(rng, 48 * 96, 0.1), [48, 96]);
      const [qW, sW] = quantize4bit(W, { quantType: 'nf4', compressStatistics: true, blocksize: 64 });
      const x = asDType(randn(rng, 3 * 96), [3, 96], dtype);
      same(`gemv4bit ${dtype}`, (dev) => gemv4bit(dev(x), dev(qW), state(sW, dev)));
      const bias = asDType(randn(rng, 48), [48], dtype);
      same(`matmul4bit ${dtype} with bias`, (dev) => matmul4bit(dev(x), dev(qW), state(sW, dev), { bias: dev(bias) }));
    }
    const empty = new QuantState({
      absmax: tensor(new Float32Array(0), [0]),
      shape: [3, 0],
      code: tensor(new Float32Array(16)),
      blocksize: 64,
      quantType: 'nf4',
    });
    same('matmul4bit with K = 0', (dev) =>
      matmul4bit(dev(tensor(new Float32Array(0), [2, 0])), dev(tensor(new Uint8Array(0), [0, 1])), state(empty, dev), {
        bias: dev(tensor([1, 2, 3])),
      }),
    );
    const w8 = tensor(
      Uint8Array.from({ length: 300 * 200 }, () => rng.int(0, 0x7e)),
      [300, 200],
      'float8_e4m3fn',
    );
    for (const S of [
      tensor([0.5]),
      tensor(randn(rng, 6).map(Math.abs), [3, 2]),
      tensor(randn(rng, 300 * 2).map(Math.abs), [300, 2]),
      tensor(randn(rng, 300).map(Math.abs), [300, 1]),
    ]) {
      for (const dtype of DTYPES) same(`dequantizeFp8 ${S.shape} -> ${dtype}`, (dev) => dequantizeFp8(dev(w8), dev(S), { dtype }));
    }
    same('dequantizeFp8 into out', (dev) =>
      dequantizeFp8(dev(w8), dev(tensor([2])), { dtype: 'float32', out: dev(tensor(new Float32Array(60000), [300, 200])) }),
    );
  });

  it('rejects what WebAssembly rejects, with the same code and message', () => {
    const A = tensor(randn(rng, 256), [4, 64]);
    const [p, s] = quantize4bit(A, { quantType: 'nf4', compressStatistics: true });
    // only host tensors can share a buffer
    const buf = new ArrayBuffer(4096);
    new Uint8Array(buf, 0, 128).set(p.data as Uint8Array);
    same(
      'out sharing memory with A',
      () => dequantize4bit(tensor(new Uint8Array(buf, 0, 128), [128, 1]), s, { out: tensor(new Float32Array(buf, 0, 256), [4, 64]) }),
      ['cuda-host'],
    );
    const cases: [string, (dev: Dev) => unknown][] = [
      ['NaN in int8 input', (dev) => int8VectorwiseQuant(dev(tensor(Uint16Array.from([0x3c00, 0x7e00]), [1, 2], 'float16')))],
      ['fp8 weights without scales', (dev) => dequantizeFp8(dev(tensor(new Uint8Array(6), [2, 3], 'float8_e4m3fn')), undefined as never)],
      ['null options', (dev) => quantize4bit(dev(A), null as never)],
      ['an unknown option', (dev) => dequantize4bit(dev(p), state(s, dev), { outt: null } as never)],
      ['NaN in 4-bit input', (dev) => quantize4bit(dev(tensor([1, NaN, 2])))],
      ['Inf in blockwise input', (dev) => quantizeBlockwise(dev(tensor([1, 2, -Infinity])))],
      ['a 15-entry 4-bit code', (dev) => dequantize4bit(dev(p), state(s, dev, { code: tensor(new Float32Array(15)) }))],
      ['a state2 that is a string', (dev) => dequantize4bit(dev(p), state(s, dev, { state2: 'x' as never }))],
      ['nested codes without state2', (dev) => dequantize4bit(dev(p), state(s, dev, { state2: undefined }))],
      [
        'a shape of non-integers',
        (dev) => gemv4bit(dev(tensor(new Float32Array(64), [1, 64])), dev(p), state(s, dev, { shape: [4, 64.5] })),
      ],
      [
        'too few absmax entries',
        (dev) => dequantizeBlockwise(dev(tensor(new Uint8Array(300))), { absmax: dev(tensor([1])), blocksize: 64 }),
      ],
      ['an int8 A of the wrong dtype', (dev) => int8LinearMatmul(dev(A), dev(A))],
      ['fp8 input to int8VectorwiseQuant', (dev) => int8VectorwiseQuant(dev(tensor(new Uint8Array(6), [2, 3], 'float8_e4m3fn')))],
      [
        'an out of the wrong shape',
        (dev) =>
          dequantizeFp8(dev(tensor(new Uint8Array(6), [2, 3], 'float8_e4m3fn')), dev(tensor([1])), {
            out: dev(tensor(new Uint16Array(5), [5], 'bfloat16')),
          }),
      ],
    ];
    for (const [what, f] of cases) same(what, f);
  });

  it('frees every device allocation it makes', () => {
    expect(allocations()).toBe(0);
  });
});
