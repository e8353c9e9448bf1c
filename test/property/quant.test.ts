// Property tests (fast-check, fixed seed) of the 4-bit and 8-bit blockwise ops.
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { setWasmBuild } from '../../src/index.js';
import { SEED, runs } from './gen.js';
import { blockwiseProperty, quantize4bitProperty } from './props-quant.js';

describe(`4-bit and blockwise properties (seed ${SEED})`, () => {
  it('quantize4bit / dequantize4bit: SIMD == scalar oracle == reference', () => fc.assert(quantize4bitProperty(), runs(2000)));
  it('quantizeBlockwise / dequantizeBlockwise: SIMD == scalar oracle == reference', () => fc.assert(blockwiseProperty(), runs(800)));
});

afterAll(() => setWasmBuild('simd'));
