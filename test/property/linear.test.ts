// Property tests (fast-check, fixed seed) of LLM.int8, the 4-bit GEMV and FP8 dequantization.
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { setWasmBuild } from '../../src/index.js';
import { SEED, runs } from './gen.js';
import {
  fp8Property,
  gemvProperty,
  int8DequantProperty,
  int8MatmulProperty,
  int8MmDequantProperty,
  int8QuantProperty,
} from './props-linear.js';

describe(`int8, GEMV and FP8 properties (seed ${SEED})`, () => {
  it('int8VectorwiseQuant / int8DoubleQuant: SIMD == scalar, exact statistics, codes within 0.5 (float64)', () =>
    fc.assert(int8QuantProperty(), runs(800)));
  it('int8VectorwiseDequant: SIMD == scalar == exact f32 formula', () => fc.assert(int8DequantProperty(), runs(800)));
  it('int8LinearMatmul: SIMD == scalar == exact int32', () => fc.assert(int8MatmulProperty(), runs(500)));
  it('int8MmDequant / int8ScaledMm: SIMD == scalar, one float16 rounding from float64', () =>
    fc.assert(int8MmDequantProperty(), runs(800)));
  it('gemv4bit / matmul4bit: SIMD == scalar, within the f32 accumulation bound (float64)', () => fc.assert(gemvProperty(), runs(1000)));
  it('dequantizeFp8: SIMD == scalar == exact, every scale layout and blockSize', () => fc.assert(fp8Property(), runs(1500)));
});

afterAll(() => setWasmBuild('simd'));
