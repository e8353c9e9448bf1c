// Streaming tensors through wasm memory. Views are taken per chunk, never over a
// whole tensor: a Uint8Array over more than 2^32 bytes cannot be made (Node 20),
// while a Uint16Array or Float32Array can hold a tensor of 4 to 16 GiB.
import { FloatDType } from '../../dtypes.js';
import { fail } from '../../errors.js';
import { DTYPE_ID } from '../abi.js';
import { WasmMemory } from './runtime/memory.js';
import { FiniteCheck, nonFiniteError } from './finite.js';
import { KernelCall } from './threads/queue.js';

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

let chunk = 1 << 18;

/**
 * Elements per kernel call. Big inputs are streamed through wasm memory in
 * chunks of whole blocks, small enough to stay in cache between copy and kernel.
 */
export function setChunkElements(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) fail('E_ARGUMENT', 'chunkElements', n, 'a positive integer');
  chunk = n;
}

/**
 * Elements per chunk, whole blocks. Threaded (`threads` > 1 for `n` elements),
 * chunks grow up to 4 times, keeping about 8 per thread: fewer hand-overs between
 * threads, each still a few MB at most.
 */
export function chunkElements(blocksize: number, threads = 1, n = 0): number {
  const c = threads > 1 ? Math.min(4 * chunk, Math.max(chunk, Math.ceil(n / (8 * threads)))) : chunk;
  return Math.max(1, Math.floor(c / blocksize)) * blocksize;
}
