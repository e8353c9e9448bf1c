// bnbjs with the kernels inlined as base64 (the "deno" condition, and bnbjs/inline
// anywhere that may compile WebAssembly from bytes): nothing is read or fetched, so
// Deno needs no permission flag. Ops compile the build they need on first use
// (synchronously; `await init()` compiles asynchronously instead, for engines that
// limit synchronous compilation). Large ops run on Workers where threads can run
// (Deno, a Worker of a cross-origin isolated page), on the inlined threaded build.
import { setWebThreadHost } from './backend/wasm/threads/web-host.js';
import { relaxed, scalar, simd, simdMt } from './backend/wasm/runtime/inline-bytes.js';
import { WasmBuild, setWasmLoader } from './backend/wasm/runtime/instances.js';

const decoded = new Map<WasmBuild, Uint8Array>();

function decode(base64: string): Uint8Array<ArrayBuffer> {
  const text = atob(base64);
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i);
  return b;
}

function bytes(build: WasmBuild): Uint8Array {
  let b = decoded.get(build);
  if (!b) decoded.set(build, (b = decode(build === 'relaxed' ? relaxed : build === 'simd' ? simd : scalar)));
  return b;
}

setWasmLoader({ sync: bytes, source: bytes, hint: 'call `await init()` first' });

// Only the SIMD build's threaded variant is inlined (a relaxed one would add ~14 KB gzipped).
let threaded: WebAssembly.Module | null | undefined;
setWebThreadHost(() => {
  if (threaded === undefined) {
    try {
      threaded = new WebAssembly.Module(decode(simdMt));
    } catch {
      threaded = null; // an engine that refuses it: single-threaded
    }
  }
  return threaded;
});

export * from './core.js';
