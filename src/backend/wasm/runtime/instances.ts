// Loading the kernel builds and instantiating them on the calling thread. The
// threaded instance on a shared memory is ../threads/shared.ts's: nothing here
// knows about threads.
import { BnbError, fail } from '../../../errors.js';
import { envVar } from '../../../runtime/env.js';
import { KernelExports } from './exports.js';
import { wasmFeatures } from './features.js';
import { WasmMemory } from './memory.js';

/** The kernel builds, one source: identical bits; relaxed SIMD is the fastest where validated. */
export type WasmBuild = 'simd' | 'relaxed' | 'scalar';
export const WASM_BUILDS: readonly WasmBuild[] = ['simd', 'relaxed', 'scalar'];

/** What init() accepts: a compiled module, its bytes, a URL or path to fetch, or a Response. */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string | Response | Promise<Response>;

/**
 * Where an entry point finds the kernels. Each entry (Node, browser, Worker, inline)
 * registers its own, so that this module never touches files, fetch or
 * import.meta, which some runtimes refuse and bundlers follow.
 */
export interface WasmLoader {
  /** The build without waiting (implicit loading on first use); absent where only init() can load it. */
  sync?(build: WasmBuild): WebAssembly.Module | BufferSource;
  /** What init() without an argument loads. */
  source(build: WasmBuild): WasmSource | Promise<WasmSource>;
  /** What else init() without an argument loads (the browser entry: the threaded build, where threads can run); never rejects. */
  prepare?(build: WasmBuild): Promise<void>;
  /** Said in the E_INIT error when an op runs before the kernels are loaded and there is no sync path. */
  hint: string;
}

const instances = new Map<WasmBuild, WasmMemory>();
/** builds that init(source) loaded: they run as given, on the calling thread (the threaded build is the package's own) */
const given = new Set<WasmBuild>();
let selected: WasmBuild | null = null;
let loader: WasmLoader | null = null;

/** Called by each entry point; the last one evaluated wins (they all load the same bytes). */
export function setWasmLoader(l: WasmLoader): void {
  loader = l;
}

const abort = () => {
  throw new Error('bnbjs kernel aborted');
};

/** An instance of a kernel module (on `memory`, for a threaded build that imports one). */
export function instantiate(module: WebAssembly.Module, memory?: WebAssembly.Memory): KernelExports {
  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(module, { env: memory ? { abort, memory } : { abort } });
  } catch (e) {
    throw initError(`instantiating the WebAssembly module failed: ${(e as Error).message}`, e);
  }
  const k = instance.exports as unknown as KernelExports;
  if (typeof k.simd !== 'function' || typeof k.heapBase !== 'function')
    throw new BnbError('E_INIT', 'the WebAssembly module is not a bnbjs kernel build (no simd/heapBase exports)');
  return k;
}

function register(module: WebAssembly.Module): WasmBuild {
  const k = instantiate(module);
  const level = k.simd();
  const build: WasmBuild = level === 2 ? 'relaxed' : level === 1 ? 'simd' : 'scalar';
  instances.set(build, new WasmMemory(k));
  return build;
}

/** True for a build that init(source) loaded: it runs as given, on the calling thread. */
export function isGivenBuild(build: WasmBuild): boolean {
  return given.has(build);
}

const resetListeners: (() => void)[] = [];

/** Called by resetWasm (the shared instance forgets itself). */
export function onWasmReset(f: () => void): void {
  resetListeners.push(f);
}

function initError(message: string, cause: unknown): BnbError {
  const err = new BnbError('E_INIT', message);
  err.cause = cause;
  return err;
}

function load(build: WasmBuild): WasmMemory {
  const m = instances.get(build);
  if (m) return m;
  if (!loader?.sync) {
    throw new BnbError(
      'E_INIT',
      `the ${build} WebAssembly build is not loaded: ${loader?.hint ?? 'call `await init(source)` first (a WebAssembly.Module, bytes, a URL or a Response)'}`,
    );
  }
  const src = loader.sync(build);
  let module: WebAssembly.Module;
  try {
    module = src instanceof WebAssembly.Module ? src : new WebAssembly.Module(src);
  } catch (e) {
    throw initError(
      `compiling the ${build} WebAssembly build failed: ${(e as Error).message}; \`await init()\` compiles asynchronously`,
      e,
    );
  }
  register(module);
  const loaded = instances.get(build);
  if (!loaded) throw new BnbError('E_INIT', `the module loaded for the ${build} build is the other build`);
  return loaded;
}

async function compileBytes(b: BufferSource): Promise<WebAssembly.Module> {
  try {
    return await WebAssembly.compile(b);
  } catch (e) {
    throw initError(`compiling the WebAssembly module failed: ${(e as Error).message}`, e);
  }
}

async function compile(source: WasmSource): Promise<WebAssembly.Module> {
  const s = await source;
  if (s instanceof WebAssembly.Module) return s;
  if (s instanceof ArrayBuffer || ArrayBuffer.isView(s)) return compileBytes(s as BufferSource);
  if (typeof Response !== 'undefined' && s instanceof Response) {
    if (!s.ok) throw new BnbError('E_INIT', `fetching the WebAssembly module failed: HTTP ${s.status}${s.url ? ` (${s.url})` : ''}`);
    // Streaming compilation needs the right MIME type; otherwise take the bytes.
    if (typeof WebAssembly.compileStreaming === 'function' && s.headers.get('content-type')?.split(';')[0]?.trim() === 'application/wasm') {
      try {
        return await WebAssembly.compileStreaming(s);
      } catch (e) {
        throw initError(`compiling the WebAssembly module failed: ${(e as Error).message}`, e);
      }
    }
    return compileBytes(await s.arrayBuffer());
  }
  if (s instanceof URL || typeof s === 'string') {
    let r: Response;
    try {
      r = await fetch(s);
    } catch (e) {
      throw initError(`fetching the WebAssembly module from ${String(s)} failed: ${(e as Error).message}`, e);
    }
    return compile(r);
  }
  fail('E_INIT', 'source', s, 'a WebAssembly.Module, bytes, a URL or a Response');
}

/**
 * Loads the kernels. Without an argument: the build wasmBuild() names (relaxed SIMD,
 * else SIMD, where the runtime validates it, else scalar) from where this entry point finds it
 * (the file beside the package, the bytes inlined, the imported module, or a fetch
 * next to the module in browsers). With a source (a WebAssembly.Module — what
 * Cloudflare Workers import —, bytes, a URL or a Response): that module, whichever
 * build it is, and it becomes the selected build.
 */
export async function init(source?: WasmSource): Promise<WasmBuild> {
  if (source !== undefined) {
    let module: WebAssembly.Module;
    try {
      module = await compile(source);
    } catch (e) {
      // what a source that is a Proxy or has a throwing `then` throws, as the E_INIT it is
      if (e instanceof BnbError) throw e;
      throw initError(`init() could not read its source: ${(e as Error)?.message ?? String(e)}`, e);
    }
    const build = register(module);
    given.add(build);
    selected = build;
    return build;
  }
  const build = wasmBuild();
  const prepared = loader?.prepare?.(build);
  if (!instances.has(build)) {
    if (!loader) throw new BnbError('E_INIT', 'this bnbjs entry point has no default source for the kernels: call `await init(source)`');
    const got = register(await compile(await loader.source(build)));
    if (got !== build) throw new BnbError('E_INIT', `the module loaded for the ${build} build is the ${got} build`);
  }
  await prepared;
  return build;
}

function defaultBuild(): WasmBuild {
  const forced = envVar('BNBJS_WASM');
  if (forced !== undefined && forced !== '') {
    if (!WASM_BUILDS.includes(forced as WasmBuild)) fail('E_ARGUMENT', 'BNBJS_WASM', forced, "'simd', 'relaxed' or 'scalar'");
    return forced as WasmBuild;
  }
  // relaxed: i8x16.relaxed_swizzle for the 4-bit table lookups (10-17% faster on x86)
  const f = wasmFeatures();
  return f.simd && f.relaxedSimd ? 'relaxed' : f.simd ? 'simd' : 'scalar';
}

/** The kernel instance ops run on: relaxed SIMD, else SIMD, where validated; else scalar. */
export function wasm(build?: WasmBuild): WasmMemory {
  return load(build ?? (selected ??= defaultBuild()));
}

/** Chooses the WebAssembly build (all give identical bits; scalar is the oracle). */
export function setWasmBuild(build: WasmBuild): void {
  if (!WASM_BUILDS.includes(build)) fail('E_ARGUMENT', 'build', build, "'simd', 'relaxed' or 'scalar'");
  selected = build;
}

/** Forgets loaded kernels (tests of init()). */
export function resetWasm(): void {
  for (const f of resetListeners) f();
  instances.clear();
  given.clear();
  selected = null;
}

export function wasmBuild(): WasmBuild {
  return (selected ??= defaultBuild());
}
