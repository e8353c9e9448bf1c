import { BnbError, fail } from '../errors.js';
import { KernelExports } from './exports.js';
import { WasmMemory } from './memory.js';

export type WasmBuild = 'simd' | 'scalar';

const instances = new Map<WasmBuild, WasmMemory>();
let selected: WasmBuild | null = null;

const IMPORTS = { env: { abort: () => { throw new Error('bnbjs kernel aborted'); } } };

function register(module: WebAssembly.Module): WasmBuild {
  const instance = new WebAssembly.Instance(module, IMPORTS);
  const m = new WasmMemory(instance.exports as unknown as KernelExports);
  const build: WasmBuild = m.k.simd() === 1 ? 'simd' : 'scalar';
  instances.set(build, m);
  return build;
}

interface NodeLike { getBuiltinModule?(id: string): unknown; env?: Record<string, string | undefined> }
const nodeProcess = (): NodeLike | undefined => (globalThis as { process?: NodeLike }).process;

const wasmUrl = (build: WasmBuild) => new URL(`../../build/bnb.${build}.wasm`, import.meta.url);

function load(build: WasmBuild): WasmMemory {
  const m = instances.get(build);
  if (m) return m;
  // Node, Deno and Bun read the file synchronously; elsewhere init() must come first.
  const proc = nodeProcess();
  if (typeof proc?.getBuiltinModule !== 'function') {
    throw new BnbError('E_INIT', `the ${build} WebAssembly build is not loaded: call \`await init()\` (or init(module or bytes)) first in this runtime`);
  }
  const { readFileSync } = proc.getBuiltinModule('node:fs') as { readFileSync(u: URL): Uint8Array };
  register(new WebAssembly.Module(readFileSync(wasmUrl(build)) as BufferSource));
  return instances.get(build)!;
}

/** What init() accepts: a compiled module, its bytes, a URL or path to fetch, or a Response. */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string | Response | Promise<Response>;

async function compile(source: WasmSource): Promise<WebAssembly.Module> {
  const s = await source;
  if (s instanceof WebAssembly.Module) return s;
  if (s instanceof ArrayBuffer || ArrayBuffer.isView(s)) return WebAssembly.compile(s as BufferSource);
  if (typeof Response !== 'undefined' && s instanceof Response) {
    if (!s.ok) throw new BnbError('E_INIT', `fetching the WebAssembly module failed: HTTP ${s.status}`);
    return WebAssembly.compile(await s.arrayBuffer());
  }
  if (s instanceof URL || typeof s === 'string') {
    let r: Response;
    try {
      r = await fetch(s);
    } catch (e) {
      throw new BnbError('E_INIT', `fetching the WebAssembly module from ${String(s)} failed: ${(e as Error).message}`);
    }
    return compile(r);
  }
  fail('E_INIT', 'source', s, 'a WebAssembly.Module, bytes, a URL or a Response');
}

/**
 * Loads the kernels. Without an argument: the SIMD build where the runtime
 * validates it, else the scalar one, read from disk (Node, Deno, Bun) or fetched
 * next to this module. With a source (a WebAssembly.Module — what Cloudflare
 * Workers import —, bytes, a URL or a Response): that module, whichever build it is.
 * Node, Deno and Bun also load lazily on first use without init().
 */
export async function init(source?: WasmSource): Promise<WasmBuild> {
  if (source !== undefined) {
    const build = register(await compile(source));
    selected = build;
    return build;
  }
  const build = wasmBuild();
  if (instances.has(build)) return build;
  const proc = nodeProcess();
  if (typeof proc?.getBuiltinModule === 'function') {
    load(build);
    return build;
  }
  register(await compile(fetch(wasmUrl(build))));
  return build;
}

function defaultBuild(): WasmBuild {
  const forced = nodeProcess()?.env?.BNBJS_WASM;
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

/** Forgets loaded kernels (tests of init()). */
export function resetWasm(): void {
  instances.clear();
  selected = null;
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
