// The backend registry, device dispatch and the probe (on a machine without CUDA).
import { afterEach, describe, expect, it } from 'vitest';
import {
  Tensor,
  probe,
  quantize4bit,
  dequantize4bit,
  registerKernel,
  setForcedBackend,
  tensor,
  toDevice,
  commonDevice,
} from '../src/index.js';
import { resetCudaAddon } from '../src/backend/cuda/addon.js';
import { error } from './helpers/util.js';

const A = tensor(
  Float32Array.from({ length: 128 }, (_, i) => Math.sin(i)),
  [2, 64],
);
const fake = (device: string): Tensor => ({
  dtype: 'float32',
  shape: [2, 64],
  device,
  get data(): never {
    throw new Error('no host data');
  },
});
const cudaHere = probe().cuda.available;

afterEach(() => {
  setForcedBackend(null);
  resetCudaAddon();
});

describe('registry', () => {
  it('dispatches on the device of the tensors', () => {
    const calls: string[] = [];
    const restore = registerKernel('quantize4bit', 'hpu', (t: Tensor) => (calls.push(t.device), 'hpu result' as never));
    try {
      expect(quantize4bit(fake('hpu:1'))).toBe('hpu result');
      expect(calls).toEqual(['hpu:1']);
      expect(quantize4bit(A, { quantType: 'nf4' })[0].device).toBe('cpu');
    } finally {
      restore();
    }
    expect(error(() => quantize4bit(fake('hpu:0')))).toMatchObject({
      code: 'E_DEVICE',
      message: expect.stringMatching(/quantize4bit has no kernel for hpu:0/),
    });
  });

  it("mixing devices is an error naming the tensors (bnb's is_on_gpu)", () => {
    const [p, s] = quantize4bit(A, { quantType: 'nf4' });
    const onGpu = Object.assign(Object.create(Object.getPrototypeOf(s)), s, { absmax: fake('cuda:0') });
    expect(error(() => dequantize4bit(p, onGpu))).toMatchObject({
      code: 'E_DEVICE',
      message: 'Input tensors need to be on the same device: A on cpu; absmax on cuda:0',
    });
    expect(error(() => commonDevice({ A: fake('cuda:0'), B: fake('cuda:1') }))).toMatchObject({
      message: 'Input tensors need to be on the same GPU: A on cuda:0; B on cuda:1',
    });
    expect(commonDevice({ A: fake('cuda'), B: fake('cuda:0'), C: null })).toBe('cuda:0');
    expect(error(() => commonDevice({ A: fake('tpu') }))).toMatchObject({
      code: 'E_DEVICE',
      message: expect.stringMatching(/device = "tpu" is not accepted/),
    });
  });

  it.skipIf(cudaHere)('forcing CUDA without it is a clear error; forcing wasm disables it', () => {
    setForcedBackend('cuda');
    expect(error(() => quantize4bit(A))).toMatchObject({ code: 'E_DEVICE', message: expect.stringMatching(/^CUDA is not available: /) });
    setForcedBackend('wasm');
    resetCudaAddon();
    expect(probe()).toMatchObject({ forced: 'wasm', cuda: { available: false, reason: 'disabled by BNBJS_BACKEND=wasm' } });
  });
});

describe('probe and device tensors without CUDA', () => {
  it.skipIf(cudaHere)('reports WebAssembly features and why CUDA is unavailable, without throwing', () => {
    const p = probe();
    expect(p.wasm).toMatchObject({ simd: true, threads: true, build: 'simd' });
    expect(p.wasm.relaxedSimd).toBe(false); // Node 20 needs a flag for relaxed SIMD
    expect(p.cuda.available).toBe(false);
    expect(p.cuda.reason).toMatch(/CUDA addon is not built|failed to load|no CUDA device|driver/i);
    expect(p.cuda.devices).toEqual([]);
  });

  it.skipIf(cudaHere)('toDevice: cpu stays, cuda is a clear error, bad names are rejected', () => {
    expect(toDevice(A, 'cpu')).toBe(A);
    expect(A.to!('cpu')).toBe(A);
    expect(error(() => A.to!('cuda'))).toMatchObject({ code: 'E_DEVICE', message: expect.stringMatching(/CUDA is not available/) });
    expect(error(() => toDevice(A, 'gpu'))).toMatchObject({ code: 'E_DEVICE' });
  });
});
