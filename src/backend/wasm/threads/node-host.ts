// Worker threads for Node and Bun (node:worker_threads). Workers run the
// source text of serve.ts's functions, read the threaded kernel build beside the
// package, and are unref'd: an idle pool never keeps a process alive.
import { ThreadedBuild, setThreadHost } from './config.js';
import { executeJob, serveJobs } from './serve.js';
import { nodeBuiltin } from '../../../runtime/node-builtins.js';

interface WorkerLike {
  unref(): void;
  on(event: 'error', f: (e: unknown) => void): void;
  once(event: 'exit', f: () => void): void;
  terminate(): Promise<number>;
}
interface PortLike {
  postMessage(m: unknown): void;
  unref?(): void;
  close(): void;
}
interface WorkerThreads {
  Worker: new (source: string, options: { eval: true; workerData: unknown; transferList?: unknown[] }) => WorkerLike;
  MessageChannel?: new () => { port1: PortLike; port2: PortLike };
  receiveMessageOnPort?: unknown;
}

const threads = nodeBuiltin<WorkerThreads>('node:worker_threads');
const os = nodeBuiltin<{ availableParallelism?(): number; cpus(): unknown[] }>('node:os');
const fs = nodeBuiltin<{ readFileSync(u: URL): Uint8Array<ArrayBuffer> }>('node:fs');

const FILE = {
  simd: new URL('../../../../build/bnb.simd-mt.wasm', import.meta.url),
  relaxed: new URL('../../../../build/bnb.relaxed-mt.wasm', import.meta.url),
};
// a worker with a port takes fresh outputs from it synchronously, between the kernels of its jobs
const SOURCE = `const wt = require('node:worker_threads'), d = wt.workerData;
(${serveJobs})(d, ${executeJob}, d.port && typeof wt.receiveMessageOnPort === 'function' ? () => wt.receiveMessageOnPort(d.port)?.message : undefined);`;
const modules = new Map<ThreadedBuild, WebAssembly.Module | null>();

function load(build: ThreadedBuild): WebAssembly.Module | null {
  if (!modules.has(build)) {
    let m: WebAssembly.Module | null = null;
    try {
      m = new WebAssembly.Module(fs.readFileSync(FILE[build]));
    } catch {
      // an older build without it, or an engine without relaxed SIMD: SIMD, else single-threaded
      m = build === 'relaxed' ? load('simd') : null;
    }
    modules.set(build, m);
  }
  return modules.get(build)!;
}

if (FILE.simd.protocol === 'file:') {
  setThreadHost({
    cores: () => os.availableParallelism?.() ?? os.cpus().length,
    module: load,
    spawn(data, onError) {
      let channel: { port1: PortLike; port2: PortLike } | null = null;
      try {
        if (typeof threads.receiveMessageOnPort === 'function' && threads.MessageChannel) channel = new threads.MessageChannel();
      } catch {
        channel = null; // no port: fresh outputs are touched by the calling thread, as before
      }
      const w = channel
        ? new threads.Worker(SOURCE, { eval: true, workerData: { ...data, port: channel.port2 }, transferList: [channel.port2] })
        : new threads.Worker(SOURCE, { eval: true, workerData: data });
      w.unref();
      channel?.port1.unref?.();
      w.on('error', onError);
      const exited = new Promise((resolve) => w.once('exit', () => resolve(undefined)));
      const port = channel?.port1;
      return {
        terminate: () => {
          port?.close();
          void w.terminate();
        },
        exited,
        ...(port ? { post: (m: unknown) => port.postMessage(m) } : {}),
      };
    },
  });
}
