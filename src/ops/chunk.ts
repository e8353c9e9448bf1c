// Streaming tensors through wasm memory. Views are taken per chunk, never over a
// whole tensor: a Uint8Array over more than 2^32 bytes cannot be made (Node 20),
// while a Uint16Array or Float32Array can hold a tensor of 4 to 16 GiB.
import { FloatDType } from '../dtypes.js';
import { DTYPE_ID } from '../backend/abi.js';
import { WasmMemory } from '../wasm/memory.js';
import { FiniteCheck, nonFiniteError } from './finite.js';
import { KernelCall } from '../threads/queue.js';

/** `length` bytes of any typed array starting `at` bytes into it. */
export function byteView(v: ArrayBufferView, at: number, length: number): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset + at, length);
}

/** Elements [start, start+len) of a float input (elements of `dtype`) for a kernel: copied to ptr, or in place where resident. */
export function loadFloatChunk(m: WasmMemory, ptr: number, src: ArrayBufferView, start: number, len: number, dtype: FloatDType): number {
  const size = dtype === 'float32' ? 4 : 2;
  return m.place(ptr, byteView(src, start * size, len * size));
}

/** The NaN/Inf scan of a chunk at ptr, a job's first call (none with allowNonFinite: `finite` null). */
export function finiteCall(ptr: number, len: number, dtype: FloatDType, finite: FiniteCheck | null): KernelCall[] {
  return finite === null ? [] : [['firstNonFinite', ptr, len, DTYPE_ID[dtype]]];
}

/** Throws for the chunk starting at flat index `start` if its scan (results[0]) found a NaN/Inf. */
export function checkFinite(finite: FiniteCheck | null, results: number[], start: number): void {
  if (finite !== null && results[0]! >= 0) throw nonFiniteError(finite, start + results[0]!);
}

/** The f32 absmax of the blocks of elements [start, start+len), as bytes of a Float32Array. */
export function absmaxSpan(absmax: Float32Array, start: number, len: number, blocksize: number): Uint8Array {
  return byteView(absmax, (start / blocksize) * 4, Math.ceil(len / blocksize) * 4);
}
