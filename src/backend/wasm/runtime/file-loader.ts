// Node and Bun (and Deno with --allow-read): the kernels are read from build/ beside
// the package, synchronously, so that ops work without init(). Where there is no
// file URL (a bundle served over http), init() fetches the same file.
import { BnbError } from '../../../errors.js';
import { nodeBuiltin } from '../../../runtime/node-builtins.js';
import { forgetWasmFeatures, wasmFeatures } from './features.js';
import { WasmBuild, setWasmLoader } from './instances.js';

const url = (build: WasmBuild) =>
  build === 'simd'
    ? new URL('../../../../build/bnb.simd.wasm', import.meta.url)
    : build === 'relaxed'
      ? new URL('../../../../build/bnb.relaxed.wasm', import.meta.url)
      : new URL('../../../../build/bnb.scalar.wasm', import.meta.url);

function readFile(): ((u: URL) => Uint8Array) | null {
  if (url('simd').protocol !== 'file:') return null;
  return nodeBuiltin<{ readFileSync(u: URL): Uint8Array }>('node:fs').readFileSync;
}

/**
 * Node 20 (V8 11.3) has relaxed SIMD behind a flag that Node 21+ ships on. Asked for
 * the relaxed build by name (setWasmBuild, BNBJS_WASM), the flag is turned on; the
 * default there stays the SIMD build, as flags are the process's, not a library's.
 */
function enableRelaxedSimd(): void {
  if (wasmFeatures().relaxedSimd) return;
  nodeBuiltin<{ setFlagsFromString?(f: string): void }>('node:v8').setFlagsFromString?.('--experimental-wasm-relaxed-simd');
  forgetWasmFeatures();
}

function read(build: WasmBuild): Uint8Array {
  const readFileSync = readFile()!;
  if (build === 'relaxed') enableRelaxedSimd();
  try {
    return readFileSync(url(build));
  } catch (e) {
    const err = new BnbError(
      'E_INIT',
      `cannot read the ${build} WebAssembly build at ${url(build).href} (${(e as Error).message}): ` +
        'build it (npm run build), or pass the module or its bytes to `await init(source)` (Deno without --allow-read: import bnbjs/inline)',
    );
    err.cause = e;
    throw err;
  }
}

setWasmLoader({
  ...(readFile() ? { sync: read } : {}),
  source: (build) => (readFile() ? read(build) : url(build)),
  hint: 'call `await init()` first in this runtime (it fetches the module beside the package), or pass a module, bytes, a URL or a Response',
});
