// Worker threads from the web's Worker API: Deno, and browsers' Workers on a
// cross-origin isolated page. Workers are module workers started from a Blob URL
// of serve.ts's functions' source text (no worker file for a bundler to find), and
// get their WorkerData by postMessage (Deno and Chromium clone a WebAssembly.Module
// and a shared Memory). A browser's main thread may not block, so it gets no
// threads (config.ts probes Atomics.wait). Deno's Workers keep the process alive and
// have no unref(): there an idle pool is closed after IDLE_MS (pool.ts).
// A page's Content-Security-Policy must allow blob: workers (worker-src).
import { ThreadedBuild, setThreadHost } from './config.js';
import { executeJob, serveJobs } from './serve.js';

/** How long a Deno pool stays idle before its workers stop: a script exits this long after its last threaded op. */
export const IDLE_MS = 500;

// a message that cannot be received is thrown, which the creating thread hears as an error event
const SOURCE = `self.onmessage = (e) => { self.onmessage = null; (${serveJobs})(e.data, ${executeJob}); self.close(); };
self.onmessageerror = () => { throw new Error('bnbjs worker could not receive its data'); };`;

interface Host {
  Deno?: unknown;
  navigator?: { hardwareConcurrency?: number };
}

/** Registers the host; `module` gives the threaded build where the entry has it (null: one thread). */
export function setWebThreadHost(module: (build: ThreadedBuild) => WebAssembly.Module | null): void {
  if (typeof Worker !== 'function' || typeof Blob !== 'function' || typeof URL.createObjectURL !== 'function') return;
  const g = globalThis as Host;
  let url: string | null = null;
  setThreadHost({
    cores: () => g.navigator?.hardwareConcurrency ?? 1,
    module,
    ...(g.Deno !== undefined ? { idleMs: IDLE_MS } : {}),
    spawn(data, onError) {
      url ??= URL.createObjectURL(new Blob([SOURCE], { type: 'text/javascript' }));
      const w = new Worker(url, { type: 'module', name: `bnbjs ${data.index + 1}` });
      (w as { unref?(): void }).unref?.(); // Bun's Worker has it (bnbjs/inline there)
      w.onerror = (e) => {
        e.preventDefault(); // the pool goes on without it (Deno would end the process)
        onError(new Error(e.message || 'bnbjs worker failed to start'));
      };
      w.postMessage(data);
      return { terminate: () => w.terminate() };
    },
  });
}
