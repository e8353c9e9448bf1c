// bnbjs for browsers (the "browser" condition): `await init()` fetches the kernels
// next to this module, SIMD where the browser validates it; fetching is
// asynchronous, so ops before init() are an E_INIT error rather than a hidden wait.
// The URLs are literal so that bundlers (Vite, webpack, Parcel) see the assets.
import { setWasmLoader } from './wasm/runtime.js';

setWasmLoader({
  source: (build) =>
    build === 'relaxed' ? new URL('../build/bnb.relaxed.wasm', import.meta.url)
      : build === 'simd' ? new URL('../build/bnb.simd.wasm', import.meta.url)
        : new URL('../build/bnb.scalar.wasm', import.meta.url),
  hint: 'call `await init()` first in browsers (it fetches bnb.relaxed.wasm, bnb.simd.wasm or bnb.scalar.wasm beside the package), or `await init(source)` with a module, bytes, a URL or a Response',
});

export * from './core.js';
