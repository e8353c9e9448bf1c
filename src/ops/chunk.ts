import { FloatDType } from '../dtypes.js';
import { WASM_DTYPE } from '../wasm/exports.js';
import { WasmMemory } from '../wasm/memory.js';
import { FiniteCheck, nonFiniteError } from './finite.js';

/**
 * Copies elements [start, start+len) of a float input (raw bytes of `dtype`) to
 * ptr, and checks them for NaN/Inf unless `finite` is null (allowNonFinite).
 */
export function loadFloatChunk(
  m: WasmMemory, ptr: number, src: Uint8Array, start: number, len: number, dtype: FloatDType, finite: FiniteCheck | null,
): void {
  const size = dtype === 'float32' ? 4 : 2;
  m.write(ptr, src.subarray(start * size, (start + len) * size));
  if (finite === null) return;
  const bad = m.k.firstNonFinite(ptr, len, WASM_DTYPE[dtype]);
  if (bad >= 0) throw nonFiniteError(finite, start + bad);
}

/** Copies the f32 absmax of the blocks of elements [start, start+len) between a Float32Array and ptr. */
export function absmaxSpan(absmax: Float32Array, start: number, len: number, blocksize: number): Uint8Array {
  const b0 = start / blocksize;
  return new Uint8Array(absmax.buffer, absmax.byteOffset + b0 * 4, Math.ceil(len / blocksize) * 4);
}
