// Node and Bun (and Deno with --allow-read): the kernels are read from build/ beside
// the package, synchronously, so that ops work without init(). Where there is no
// node:fs (a bundler that resolved the default condition for a browser), init()
// fetches the same file. node:fs is reached through process.getBuiltinModule so that
// bundlers never try to resolve it.
import { BnbError } from '../errors.js';
import { forgetWasmFeatures, wasmFeatures } from './features.js';
import { WasmBuild, setWasmLoader } from './runtime.js';

interface NodeLike { getBuiltinModule?(id: string): unknown }

const url = (build: WasmBuild) =>
  build === 'simd' ? new URL('../../build/bnb.simd.wasm', import.meta.url)
    : build === 'relaxed' ? new URL('../../build/bnb.relaxed.wasm', import.meta.url)
      : new URL('../../build/bnb.scalar.wasm', import.meta.url);

function readFile(): ((u: URL) => Uint8Array) | null {
  const proc = (globalThis as { process?: NodeLike }).process;
  if (typeof proc?.getBuiltinModule !== 'function' || url('simd').protocol !== 'file:') return null;
  return (proc.getBuiltinModule('node:fs') as { readFileSync(u: URL): Uint8Array }).readFileSync;
}

/**
 * Node 20 (V8 11.3) has relaxed SIMD behind a flag that Node 21+ ships on. Asked for
 * the relaxed build by name (setWasmBuild, BNBJS_WASM), the flag is turned on; the
 * default there stays the SIMD build, as flags are the process's, not a library's.
 */
function enableRelaxedSimd(): void {
  if (wasmFeatures().relaxedSimd) return;
  const proc = (globalThis as { process?: NodeLike }).process;
  const v8 = proc?.getBuiltinModule?.('node:v8') as { setFlagsFromString?(f: string): void } | undefined;
  v8?.setFlagsFromString?.('--experimental-wasm-relaxed-simd');
  forgetWasmFeatures();
}

function read(build: WasmBuild): Uint8Array {
  const readFileSync = readFile()!;
  if (build === 'relaxed') enableRelaxedSimd();
  try {
    return readFileSync(url(build));
  } catch (e) {
    const err = new BnbError('E_INIT', `cannot read the ${build} WebAssembly build at ${url(build).href} (${(e as Error).message}): ` +
      'build it (npm run build), or pass the module or its bytes to `await init(source)` (Deno without --allow-read: import bnbjs/inline)');
    err.cause = e;
    throw err;
  }
}

setWasmLoader({
  ...(readFile() ? { sync: read } : {}),
  source: (build) => (readFile() ? read(build) : url(build)),
  hint: 'call `await init()` first in this runtime (it fetches the module beside the package), or pass a module, bytes, a URL or a Response',
});
