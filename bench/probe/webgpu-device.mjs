// The WebGPU device of the webgpu probes: Dawn for Node (the npm `webgpu` package, not a bnbjs
// dependency), or a printed reason and exit 0 where it or an adapter is missing.
//   npm i --no-save --ignore-scripts webgpu
//   LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json node bench/probe/<probe>.mjs
// (SwiftShader, a CPU Vulkan, with chromium's own Vulkan loader; on a GPU machine, its Vulkan driver.)
let webgpu;
try {
  webgpu = await import('webgpu');
} catch {
  console.log('skipped: the npm package `webgpu` is not installed (npm i --no-save --ignore-scripts webgpu)');
  process.exit(0);
}
Object.assign(globalThis, webgpu.globals);
// held by this module for the process's life: Dawn aborts if its instance is collected mid-run
export const gpu = webgpu.create([]);
export const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.log('skipped: no WebGPU adapter (no Vulkan loader or driver found: see the usage line)');
  process.exit(0);
}
export const device = await adapter.requestDevice();
