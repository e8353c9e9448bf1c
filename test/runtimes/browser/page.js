// The page of the browser test: bnbjs from its import map (the package's "browser"
// condition, or bnbjs/inline on the inline page), the smoke suite after
// `await init()`, and, on the cross-origin isolated page, the same in a module
// Worker sharing a WebAssembly.Memory, where large ops run on threads (the page's
// main thread may not block: one thread there, whatever is asked).
import * as lib from 'bnbjs';
import fixtures from './fixtures.js';
import { decodeFixtures, smoke, threadRun } from './smoke.js';

function beforeInit() {
  try {
    lib.quantize4bit(lib.tensor(new Float32Array(64), [64]));
    return 'no error';
  } catch (e) {
    return `${e.code}: ${e.message}`;
  }
}

/** The smoke suite in a Worker, which also writes into memory shared with this page. */
function inWorker() {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const cells = new Int32Array(memory.buffer);
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
    worker.onmessage = ({ data }) => {
      worker.terminate();
      resolve({ ...data, sharedMemory: memory.buffer instanceof SharedArrayBuffer, sharedCell: Atomics.load(cells, 0) });
    };
    worker.postMessage({ entry: import.meta.resolve('bnbjs'), memory });
  });
}

async function main() {
  // bnbjs/inline (the inline page) loads on first use: no init() there.
  const implicit = document.documentElement.dataset.entry === 'inline';
  const report = { beforeInit: beforeInit(), initBuild: implicit ? null : await lib.init() };
  Object.assign(report, smoke(lib, decodeFixtures(fixtures)), await threadRun(lib));
  report.crossOriginIsolated = self.crossOriginIsolated;
  report.sharedArrayBuffer = typeof SharedArrayBuffer === 'function';
  if (self.crossOriginIsolated) report.worker = await inWorker();
  return report;
}

window.smokeReport = main().catch((e) => ({ error: String((e && e.stack) || e) }));
