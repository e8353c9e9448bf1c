import { FloatDType } from '../../src/dtypes.js';
import { numberToBf16, numberToF16 } from '../../src/float16.js';
import { Tensor, tensor } from '../../src/tensor.js';

/** Seeded generator (mulberry32) so every failure is reproducible from its seed. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}

export function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
  return out;
}

export function rand(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next();
  return out;
}

/** f32 values as a tensor of `dtype` (rounded to nearest even). */
export function asDType(values: Float32Array, shape: number[], dtype: FloatDType): Tensor {
  if (dtype === 'float32') return tensor(values, shape);
  const conv = dtype === 'float16' ? numberToF16 : numberToBf16;
  return tensor(Uint16Array.from(values, conv), shape, dtype);
}
