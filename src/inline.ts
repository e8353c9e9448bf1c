// bnbjs with the kernels inlined as base64 (the "deno" condition, and bnbjs/inline
// anywhere that may compile WebAssembly from bytes): nothing is read or fetched, so
// Deno needs no permission flag. Ops compile the build they need on first use
// (synchronously; `await init()` compiles asynchronously instead, for engines that
// limit synchronous compilation).
import { relaxed, scalar, simd } from './wasm/inline-bytes.js';
import { WasmBuild, setWasmLoader } from './wasm/runtime.js';

const decoded = new Map<WasmBuild, Uint8Array>();

function bytes(build: WasmBuild): Uint8Array {
  let b = decoded.get(build);
  if (!b) {
    const text = atob(build === 'relaxed' ? relaxed : build === 'simd' ? simd : scalar);
    b = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i);
    decoded.set(build, b);
  }
  return b;
}

setWasmLoader({ sync: bytes, source: bytes, hint: 'call `await init()` first' });

export * from './core.js';
