// A Cloudflare Worker that uses bnbjs as a Cloudflare user's does: `import … from
// 'bnbjs'`, bundled with the workerd/worker conditions, the .wasm files uploaded as
// Wasm modules. No init(): the Worker entry instantiates its imported module.
import * as lib from 'bnbjs';
import fixtures from './fixtures.js';
import { decodeFixtures, smoke } from './smoke.js';

/** Whether this runtime compiles WebAssembly from bytes (Cloudflare refuses). */
async function compilesBytes() {
  try {
    await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    return 'allowed';
  } catch (e) {
    return `refused: ${e.message}`;
  }
}

export default {
  async fetch(request) {
    // ?build=scalar: the override a user has (setWasmBuild), served by the other imported module
    const build = new URL(request.url).searchParams.get('build');
    if (build) lib.setWasmBuild(build);
    const report = smoke(lib, decodeFixtures(fixtures));
    return Response.json({ ...report, compileFromBytes: await compilesBytes(), importMetaUrl: String(import.meta.url) });
  },
};
