// bnbjs for Node and Bun (and bundlers that resolve the default condition): the
// kernels are read from build/ beside the package on first use, readSafetensors and
// writeSafetensors take paths, large ops run on worker threads, and the native
// backends (the CUDA addon, Intel Gaudi) register themselves; probe() reports them.
import './backend/wasm/runtime/file-loader.js';
import './backend/wasm/threads/node-host.js';
import './backend/cuda/index.js';
import './backend/hpu/backend.js';
import './io/safetensors/file-support.js';
export * from './core.js';
export { probe } from './backend/probe.js';
export type { Probe } from './backend/probe.js';
export { setGaudiSoftwareVersion, swapNibbles } from './backend/hpu/backend.js';
export { parseGaudiVersion, needsNibbleSwap, probeGaudi } from './backend/hpu/probe.js';
export type { GaudiProbe, GaudiVersion } from './backend/hpu/probe.js';
