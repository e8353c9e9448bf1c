// bnbjs for browsers (the "browser" condition): `await init()` fetches the kernels
// next to this module, SIMD where the browser validates it; fetching is
// asynchronous, so ops before init() are an E_INIT error rather than a hidden wait.
// Where threads can run (a Worker of a cross-origin isolated page) init() also
// fetches the threaded build, and large ops run on Workers; without it (a missing
// file), on one thread. The URLs are literal so that bundlers (Vite, webpack,
// Parcel) see the assets.
import { threadHost } from './backend/wasm/threads/config.js';
import { setWebThreadHost } from './backend/wasm/threads/web-host.js';
import { setWasmLoader } from './backend/wasm/runtime/instances.js';

let threaded: Promise<WebAssembly.Module | null> | null = null;
let module: WebAssembly.Module | null = null;

setWebThreadHost(() => module);

setWasmLoader({
  source: (build) =>
    build === 'relaxed'
      ? new URL('../build/bnb.relaxed.wasm', import.meta.url)
      : build === 'simd'
        ? new URL('../build/bnb.simd.wasm', import.meta.url)
        : new URL('../build/bnb.scalar.wasm', import.meta.url),
  async prepare(build) {
    if (threadHost() === null || build === 'scalar') return;
    const get = (url: URL) =>
      fetch(url)
        .then(async (r) => (r.ok ? WebAssembly.compile(await r.arrayBuffer()) : null))
        .catch(() => null);
    // the relaxed build's threaded variant, else the SIMD one's (the same bits)
    threaded ??= (build === 'relaxed' ? get(new URL('../build/bnb.relaxed-mt.wasm', import.meta.url)) : Promise.resolve(null)).then(
      (m) => m ?? get(new URL('../build/bnb.simd-mt.wasm', import.meta.url)),
    );
    module = await threaded;
  },
  hint: 'call `await init()` first in browsers (it fetches bnb.relaxed.wasm, bnb.simd.wasm or bnb.scalar.wasm beside the package), or `await init(source)` with a module, bytes, a URL or a Response',
});

export * from './core.js';
