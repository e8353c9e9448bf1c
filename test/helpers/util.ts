import { expect } from 'vitest';
import { BnbError, setWasmBuild } from '../../src/index.js';

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

/** f's result on the SIMD build and on the scalar oracle. */
export function both<T>(f: () => T): [T, T] {
  setWasmBuild('simd');
  const a = f();
  setWasmBuild('scalar');
  const b = f();
  setWasmBuild('simd');
  return [a, b];
}
