// bnbjs for Cloudflare Workers and workerd (the "workerd" and "worker" conditions).
// Workers refuse to compile WebAssembly from bytes and have no import.meta.url; a
// .wasm imported as a module arrives compiled (wrangler and workerd's "wasm" modules),
// so both builds are imported here and instantiated on first use, no init() needed.
import simd from '../build/bnb.simd.wasm';
import relaxed from '../build/bnb.relaxed.wasm';
import scalar from '../build/bnb.scalar.wasm';
import { setWasmLoader } from './backend/wasm/runtime/instances.js';

setWasmLoader({
  sync: (build) => (build === 'relaxed' ? relaxed : build === 'simd' ? simd : scalar),
  source: (build) => (build === 'relaxed' ? relaxed : build === 'simd' ? simd : scalar),
  hint: 'the Worker build imports its modules',
});

export * from './core.js';
