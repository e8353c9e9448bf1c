// Module Worker of the cross-origin isolated page: imports bnbjs by the URL the page
// resolved (workers have no import map), runs the smoke suite and large ops on 2
// threads (Workers of its own), and writes 42 into the page's shared memory, which
// only works where threads can share memory.
import fixtures from './fixtures.js';
import { decodeFixtures, smoke, threadRun } from './smoke.js';

self.onmessage = async ({ data }) => {
  try {
    const lib = await import(data.entry);
    const build = await lib.init();
    const report = { ...smoke(lib, decodeFixtures(fixtures)), ...(await threadRun(lib)) };
    Atomics.store(new Int32Array(data.memory.buffer), 0, 42);
    self.postMessage({ ...report, initBuild: build, crossOriginIsolated: self.crossOriginIsolated });
  } catch (e) {
    self.postMessage({ error: String((e && e.stack) || e) });
  }
};
