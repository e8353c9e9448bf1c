// Property tests (fast-check, fixed seed): chunking, round trips, and hostile input
// of every kind giving a result or a BnbError, never another exception.
import fc from 'fast-check';
import { afterAll, describe, it } from 'vitest';
import { setWasmBuild } from '../../src/index.js';
import { setChunkElements } from '../../src/backend/wasm/chunk.js';
import { SEED, runs } from './gen.js';
import {
  FUNCTION_NAMES,
  chunkProperty,
  junkArgumentsProperty,
  safetensorsFuzzProperty,
  safetensorsRoundTripProperty,
  stateDictFuzzProperty,
  stateRoundTripProperty,
} from './props-robust.js';

describe(`robustness properties (seed ${SEED})`, () => {
  it('every chunked op gives the same bytes for any chunk size', () => fc.assert(chunkProperty(), runs(1000)));
  it('QuantState asDict / fromDict round trips', () => fc.assert(stateRoundTripProperty(), runs(600)));
  it('safetensors serialize / parse round trips, every dtype, 0-size tensors', () => fc.assert(safetensorsRoundTripProperty(), runs(800)));
  it('damaged safetensors files give a BnbError, never another exception', () => fc.assert(safetensorsFuzzProperty(), runs(4000)));
  it('damaged QuantState dicts give a BnbError, never another exception', () => fc.assert(stateDictFuzzProperty(), runs(2000)));
  it(`junk arguments to the ${FUNCTION_NAMES.length} public functions give a result or a BnbError`, () =>
    fc.assert(junkArgumentsProperty(), runs(20000)));
});

afterAll(() => {
  setWasmBuild('simd');
  setChunkElements(1 << 18);
});
