import { afterAll, beforeAll, expect } from 'vitest';
import { BnbError, probe, setForcedBackend, setWasmBuild } from '../../src/index.js';
import { resetCudaAddon } from '../../src/backend/cuda/addon.js';

/** The BnbError that f throws (fails the test if it throws anything else or nothing). */
export function error(f: () => unknown): BnbError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BnbError);
    return e as BnbError;
  }
  throw new Error('expected an error');
}

/** The BnbError that f's promise rejects with (fails the test otherwise). */
export async function rejection(f: () => Promise<unknown>): Promise<BnbError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BnbError);
    return e as BnbError;
  }
  throw new Error('expected a rejection');
}

/** f's result on the SIMD build and on the scalar oracle. */
export function both<T>(f: () => T): [T, T] {
  setWasmBuild('simd');
  const a = f();
  setWasmBuild('scalar');
  const b = f();
  setWasmBuild('simd');
  return [a, b];
}

/**
 * Runs the tests of the enclosing describe block on the WebAssembly backend, whatever
 * BNBJS_BACKEND says: for tests of WebAssembly memory itself, which other backends
 * do not use. The forcing in place before is restored afterwards.
 */
export function onWasmBackend(): void {
  let before: ReturnType<typeof probe>['forced'] = null;
  beforeAll(() => {
    before = probe().forced;
    setForcedBackend('wasm');
  });
  afterAll(() => {
    setForcedBackend(before);
    resetCudaAddon(); // a probe while forced to wasm remembers CUDA as disabled
  });
}
