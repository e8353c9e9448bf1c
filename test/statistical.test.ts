// bitsandbytes' own statistical bars (docs/bit-exactness.md#statistical-bars) on fresh random data
// of their sizes. One draw per configuration (bnb averages 10-100 draws; a
// 1024x1024 draw already pins the mean far inside the bar).
import { describe, expect, it } from 'vitest';
import {
  QuantState,
  createDynamicMap,
  dequantize4bit,
  dequantizeBlockwise,
  quantize4bit,
  quantizeBlockwise,
  toFloat32,
  Tensor,
} from '../src/index.js';
import { FloatDType } from '../src/dtypes.js';
import { Rng, asDType, rand, randn } from './helpers/random.js';

const N = 1024 * 1024;
const rng = new Rng(1234567);

function errors(A: Tensor, B: Tensor, eps: number): { err: number; relerr: number } {
  const a = toFloat32(A),
    b = toFloat32(B);
  let err = 0,
    rel = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    err += d;
    rel += d / (Math.abs(a[i]!) + eps);
  }
  return { err: err / a.length, relerr: rel / a.length };
}

// (mean, sigma) of err and relerr per blocksize, from bnb's test_4bit_quant
const BARS_4BIT: Record<'fp4' | 'nf4', Record<number, [number, number, number, number]>> = {
  fp4: {
    32: [0.088925, 0.000091, 0.242443, 0.00033],
    64: [0.096543, 0.000111, 0.260125, 0.000379],
    128: [0.102969, 0.000134, 0.275817, 0.000433],
    256: [0.108684, 0.000182, 0.289831, 0.000497],
    512: [0.114115, 0.000234, 0.302881, 0.000583],
    1024: [0.119333, 0.00032, 0.315, 0.000757],
    2048: [0.124556, 0.000455, 0.326607, 0.000955],
    4096: [0.129536, 0.000612, 0.337169, 0.001239],
  },
  nf4: {
    32: [0.067746, 0.000069, 0.189726, 0.000304],
    64: [0.072798, 0.000074, 0.203339, 0.00034],
    128: [0.076831, 0.000091, 0.215237, 0.000391],
    256: [0.080337, 0.000102, 0.226105, 0.000398],
    512: [0.083547, 0.000143, 0.236079, 0.000544],
    1024: [0.08661, 0.000187, 0.24537, 0.0006],
    2048: [0.089592, 0.000251, 0.254163, 0.000747],
    4096: [0.092547, 0.00036, 0.262473, 0.000999],
  },
};
const DTYPES: FloatDType[] = ['float32', 'float16', 'bfloat16'];

describe('test_4bit_quant bars (err and relerr < mean + 7 sigma)', () => {
  for (const qt of ['nf4', 'fp4'] as const) {
    for (const bs of [32, 64, 128, 256, 512, 1024, 2048, 4096]) {
      it(`${qt} bs${bs}`, () => {
        const [me, se, mr, sr] = BARS_4BIT[qt][bs]!;
        for (const dtype of DTYPES) {
          const A = asDType(randn(rng, N), [1024, 1024], dtype);
          const [p, s] = quantize4bit(A, { blocksize: bs, quantType: qt });
          const B = dequantize4bit(p, QuantState.fromDict(s.asDict({ packed: true })));
          expect(B.dtype).toBe(dtype);
          const { err, relerr } = errors(A, B, 1e-8);
          expect(err, `${dtype} err`).toBeLessThan(me + 7 * se);
          expect(relerr, `${dtype} relerr`).toBeLessThan(mr + 7 * sr);
        }
      });
    }
  }
});

describe('test_4bit_compressed_stats and non-divisible shapes', () => {
  it('nested statistics: err < 0.11, relerr < 0.28', () => {
    for (const qt of ['nf4', 'fp4'] as const) {
      for (const bs of [32, 64, 128]) {
        for (const dtype of ['float32', 'float16'] as const) {
          const A = asDType(randn(rng, N), [1024, 1024], dtype);
          for (const compressStatistics of [false, true]) {
            const [p, s] = quantize4bit(A, { blocksize: bs, quantType: qt, compressStatistics });
            const { err, relerr } = errors(A, dequantize4bit(p, s), 1e-15);
            expect(err, `${qt} bs${bs} ${dtype} nested=${compressStatistics}`).toBeLessThan(0.11);
            expect(relerr).toBeLessThan(0.28);
          }
        }
      }
    }
  });

  it('shape (7, bs-1): shape kept, all finite', () => {
    for (const bs of [64, 128, 256]) {
      const A = asDType(randn(rng, 7 * (bs - 1)), [7, bs - 1], 'float16');
      const [p, s] = quantize4bit(A, { blocksize: bs, quantType: 'nf4' });
      const B = dequantize4bit(p, s);
      expect(B.shape).toEqual([7, bs - 1]);
      expect(toFloat32(B).every(Number.isFinite)).toBe(true);
    }
  });
});

describe('test_dynamic_blockwise_quantization bars', () => {
  for (const bs of [4096, 2048, 1024, 512, 256, 128, 64]) {
    it(`randn, bs${bs}: err < 0.011, relerr < 0.018; rand with signed/unsigned codes`, () => {
      for (const dtype of DTYPES) {
        for (const nested of [false, true]) {
          const A = asDType(randn(rng, N), [1024, 1024], dtype);
          const [q, s] = quantizeBlockwise(A, { blocksize: bs, nested });
          const B = dequantizeBlockwise(q, s);
          expect(B.dtype).toBe(dtype);
          const { err, relerr } = errors(A, B, 1e-8);
          expect(err, `${dtype} nested=${nested}`).toBeLessThan(0.011);
          expect(relerr, `${dtype} nested=${nested}`).toBeLessThan(0.018);
        }
      }
      for (const signed of [true, false]) {
        const A = asDType(rand(rng, N), [1024, 1024], 'float32');
        const code = createDynamicMap({ signed });
        const [q, s] = quantizeBlockwise(A, { blocksize: bs, code });
        const { err, relerr } = errors(A, dequantizeBlockwise(q, s), 1e-8);
        expect(err, `signed=${signed}`).toBeLessThan(signed ? 0.0036 : 0.0023);
        expect(relerr, `signed=${signed}`).toBeLessThan(signed ? 0.015 : 0.012);
      }
    });
  }
});
