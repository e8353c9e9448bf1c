import { readFileSync } from 'node:fs';
import { fail } from '../errors.js';
import { KernelExports } from './exports.js';
import { WasmMemory } from './memory.js';

export type WasmBuild = 'simd' | 'scalar';

const instances = new Map<WasmBuild, WasmMemory>();
let selected: WasmBuild | null = null;

function load(build: WasmBuild): WasmMemory {
  let m = instances.get(build);
  if (m) return m;
  const bytes = readFileSync(new URL(`../../build/bnb.${build}.wasm`, import.meta.url));
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
    env: { abort: () => { throw new Error('bnbjs kernel aborted'); } },
  });
  m = new WasmMemory(instance.exports as unknown as KernelExports);
  instances.set(build, m);
  return m;
}

function defaultBuild(): WasmBuild {
  const forced = process.env.BNBJS_WASM;
  if (forced !== undefined && forced !== '') {
    if (forced !== 'simd' && forced !== 'scalar') fail('E_ARGUMENT', 'BNBJS_WASM', forced, "'simd' or 'scalar'");
    return forced;
  }
  // The smallest module using a v128 value type.
  const probe = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
  return WebAssembly.validate(probe) ? 'simd' : 'scalar';
}

/** The kernel instance ops run on: the SIMD build where supported, else the scalar one. */
export function wasm(build?: WasmBuild): WasmMemory {
  return load(build ?? (selected ??= defaultBuild()));
}

/** Chooses the WebAssembly build (both give identical bits; scalar is the oracle). */
export function setWasmBuild(build: WasmBuild): void {
  if (build !== 'simd' && build !== 'scalar') fail('E_ARGUMENT', 'build', build, "'simd' or 'scalar'");
  selected = build;
}

export function wasmBuild(): WasmBuild {
  return (selected ??= defaultBuild());
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

export function chunkElements(blocksize: number): number {
  return Math.max(1, Math.floor(chunk / blocksize)) * blocksize;
}
