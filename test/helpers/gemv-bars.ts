// bitsandbytes' test_gemv_4bit bars (docs/bit-exactness.md#statistical-bars): each metric < mean + 7 sigma.
import { FloatDType } from '../../src/dtypes.js';

type Bar = [number, number];
const BARS: Record<FloatDType, { small: Bar[]; large: Bar[] }> = {
  float16: {
    small: [
      [5.2e-5, 6.3e-6],
      [2.4e-4, 3.57e-4],
      [4.2e-4, 6.87e-5],
    ],
    large: [
      [1.8e-5, 2.8e-6],
      [1.0e-4, 1.97e-4],
      [1.7e-4, 1.79e-5],
    ],
  },
  float32: {
    small: [
      [2e-8, 2e-9],
      [8e-7, 1.2e-6],
      [6e-8, 2e-8],
    ],
    large: [
      [1e-8, 2e-9],
      [5e-7, 1.6e-7],
      [5e-8, 1e-8],
    ],
  },
  bfloat16: {
    small: [
      [4.2e-4, 5.9e-5],
      [4.1e-3, 1.153e-2],
      [3.7e-3, 5.56e-4],
    ],
    large: [
      [1.4e-4, 9.5e-6],
      [1.2e-3, 6.79e-4],
      [1.0e-3, 1.37e-4],
    ],
  },
};

export interface GemvMetrics {
  err1: number;
  relerr1: number;
  maxerr1: number;
}

/** err1 = mean |C1 - C2|, relerr1 = mean |C1 - C2| / (|C1| + 1e-5), maxerr1 = max, each / sqrt(dim). */
export function gemvMetrics(c1: ArrayLike<number>, c2: ArrayLike<number>, dim: number): GemvMetrics {
  let err = 0,
    rel = 0,
    max = 0;
  for (let i = 0; i < c1.length; i++) {
    const d = Math.abs(c1[i]! - c2[i]!);
    err += d;
    rel += d / (Math.abs(c1[i]!) + 1e-5);
    max = Math.max(max, d);
  }
  const s = Math.sqrt(dim);
  return { err1: err / c1.length / s, relerr1: rel / c1.length / s, maxerr1: max / s };
}

export function gemvBars(dtype: FloatDType, dim: number): GemvMetrics {
  const [e, r, m] = BARS[dtype][dim <= 512 ? 'small' : 'large'] as [Bar, Bar, Bar];
  return { err1: e[0] + 7 * e[1], relerr1: r[0] + 7 * r[1], maxerr1: m[0] + 7 * m[1] };
}
