// Puts the mock CUDA addon (test/helpers/mock-cuda-addon.cjs) in place for the calling
// describe block or file, with no backend forced, and restores what was there after.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';
import { probe, setForcedBackend } from '../../src/index.js';
import { cudaAddon, resetCudaAddon } from '../../src/backend/cuda/addon.js';

export const MOCK_CUDA_ADDON = fileURLToPath(new URL('./mock-cuda-addon.cjs', import.meta.url));

/** Registers the hooks; returns the mock's live device allocations, for leak checks. */
export function useMockCudaAddon(): () => number {
  let envBefore: string | undefined;
  let forcedBefore: ReturnType<typeof probe>['forced'] = null;
  beforeAll(() => {
    envBefore = process.env.BNBJS_CUDA_ADDON;
    forcedBefore = probe().forced;
    process.env.BNBJS_CUDA_ADDON = MOCK_CUDA_ADDON;
    setForcedBackend(null);
    resetCudaAddon();
    expect(cudaAddon().reason).toBeNull();
  });
  afterAll(() => {
    if (envBefore === undefined) delete process.env.BNBJS_CUDA_ADDON;
    else process.env.BNBJS_CUDA_ADDON = envBefore;
    setForcedBackend(forcedBefore);
    resetCudaAddon();
  });
  return () => (cudaAddon().addon as unknown as { mockStats(): { allocations: number } }).mockStats().allocations;
}
