// Node's built-in modules for the Node entry's own parts (the kernel files, worker threads,
// the CUDA addon, the Gaudi probe): process.getBuiltinModule where it exists (Node ≥ 20.16,
// Bun, Deno), else require, as Node 20.0–20.15 has no other synchronous way from an ES
// module. Nothing in the core imports this file, so the browser, Worker and inline bundles
// hold no node: import (test/runtimes/bundle.test.ts).
import { createRequire } from 'node:module';

type Load = (id: string) => unknown;
const proc = (globalThis as { process?: { getBuiltinModule?: Load } }).process;
const load: Load = proc?.getBuiltinModule?.bind(proc) ?? createRequire(import.meta.url);

export const nodeBuiltin = <T>(id: string): T => load(id) as T;
