// Asynchronous readback (#16 item 4): readTensor(t) and toDeviceAsync(t, device) on
// every backend: host tensors, resident wasmTensors, CUDA tensors (the mock addon,
// test/helpers/mock-cuda-addon.cjs) and the emulated Gaudi. Each gives a new host
// tensor with a fresh copy of the bytes (never a view of the memory the tensor lives
// in), leaves the tensor as it was, and rejects junk with a BnbError.
import { describe, expect, it } from 'vitest';
import { useMockCudaAddon } from './helpers/mock-cuda.js';
import {
  QuantState,
  Tensor,
  dequantize4bit,
  isResident,
  quantize4bit,
  readTensor,
  setForcedBackend,
  tensor,
  toDevice,
  toDeviceAsync,
  wasmTensor,
} from '../src/index.js';
import { registerDeviceMover } from '../src/tensor.js';
import { Rng, randn } from './helpers/random.js';
import { rejection } from './helpers/util.js';

const bytes = (t: Tensor) => Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
const rng = new Rng(16);
const A = tensor(randn(rng, 4 * 64), [4, 64]);
const [packed, state] = quantize4bit(A, { quantType: 'nf4' });
const want = dequantize4bit(packed, state);

/** t read back: a new host tensor of the same dtype, shape and bytes, whose data shares nothing with `t`'s. */
async function expectFreshCopy(read: Promise<Tensor>, t: Tensor, expected: Tensor): Promise<Tensor> {
  const h = await read;
  expect(h).not.toBe(t);
  expect([h.device, h.dtype, h.shape]).toEqual(['cpu', expected.dtype, expected.shape]);
  expect(bytes(h)).toEqual(bytes(expected));
  expect(h.data.buffer).toBeInstanceOf(ArrayBuffer); // not a SharedArrayBuffer (a resident tensor's memory)
  if ((t.device ?? 'cpu') === 'cpu') {
    expect(h.data.buffer).not.toBe(t.data.buffer);
    const before = bytes(t);
    h.data.fill(0);
    expect(bytes(t)).toEqual(before); // the copy is the caller's to change
  }
  return h;
}

describe('readTensor and toDeviceAsync on WebAssembly', () => {
  it('host tensors and op results: a fresh copy, the tensor untouched', async () => {
    await expectFreshCopy(readTensor(A), A, A);
    await expectFreshCopy(toDeviceAsync(A, 'cpu'), A, A);
    const r = dequantize4bit(packed, state);
    await expectFreshCopy(readTensor(r), r, want);
    const view = tensor(A.data.subarray(64, 128), [64]); // a view into a larger buffer: only its bytes
    const h = await readTensor(view);
    expect(h.data.byteLength).toBe(256);
    expect(bytes(h)).toEqual(bytes(view));
  });

  it.skipIf(!isResident(wasmTensor([1], 'float32')))(
    'resident wasmTensors: a copy out of the kernel memory; disposed, E_DETACHED',
    async () => {
      const w = wasmTensor(A);
      expect(isResident(w)).toBe(true);
      const out = wasmTensor([4, 64], 'float32');
      dequantize4bit(packed, state, { out });
      await expectFreshCopy(readTensor(out), out, want);
      await expectFreshCopy(toDeviceAsync(w, 'cpu'), w, A);
      expect(toDevice(w, 'cpu')).toBe(w); // the synchronous form returns the resident tensor itself
      w.dispose();
      expect(await rejection(() => readTensor(w))).toMatchObject({ code: 'E_DETACHED' });
      expect(await rejection(() => toDeviceAsync(w, 'cpu'))).toMatchObject({ code: 'E_DETACHED' });
      out.dispose();
    },
  );
  if (!isResident(wasmTensor([1], 'float32')))
    console.log('readback: no shared kernel memory here (no threads): the resident case is skipped');

  it('junk is a rejection with a BnbError', async () => {
    for (const junk of [null, undefined, 5, 'cpu', {}, { dtype: 'float32', shape: [2] }]) {
      expect(await rejection(() => readTensor(junk as never))).toMatchObject({ code: 'E_ARGUMENT' });
      expect(await rejection(() => toDeviceAsync(junk as never, 'cpu'))).toMatchObject({ code: 'E_ARGUMENT' });
    }
    expect(await rejection(() => readTensor({ dtype: 'float32', shape: [3], data: new Float32Array(2), device: 'cpu' }))).toMatchObject({
      code: 'E_SHAPE',
    });
    expect(await rejection(() => readTensor({ dtype: 'float32', shape: [2], data: new Float32Array(2), device: 'tpu:0' }))).toMatchObject({
      code: 'E_DEVICE',
    });
    expect(await rejection(() => toDeviceAsync(A, 5 as never))).toMatchObject({ code: 'E_DEVICE' });
    const moved = new Float32Array(2);
    structuredClone(moved.buffer, { transfer: [moved.buffer] });
    expect(await rejection(() => readTensor({ dtype: 'float32', shape: [2], data: moved, device: 'cpu' }))).toMatchObject({
      code: 'E_DETACHED',
    });
  });

  it("a backend's own asynchronous reader is what readTensor awaits", async () => {
    const log: string[] = [];
    const host = (t: Tensor) => tensor(new Float32Array((t as Tensor & { values: Float32Array }).values), [...t.shape], 'float32');
    registerDeviceMover(
      'xpu',
      (t) => (log.push('sync'), host(t)),
      async (t) => {
        await new Promise((r) => setTimeout(r, 1));
        log.push('async');
        return host(t);
      },
    );
    const t = {
      dtype: 'float32',
      shape: [2],
      device: 'xpu:0',
      values: Float32Array.from([1, 2]),
      get data(): never {
        throw new Error('no host data');
      },
    } as Tensor;
    expect(Array.from((await readTensor(t)).data)).toEqual([1, 2]);
    expect(Array.from((await toDeviceAsync(t, 'cpu')).data)).toEqual([1, 2]);
    expect(log).toEqual(['async', 'async']);
    expect(Array.from(toDevice(t, 'cpu').data)).toEqual([1, 2]);
    expect(log).toEqual(['async', 'async', 'sync']);
  });
});

describe('readTensor and toDeviceAsync on the CUDA backend (mock addon)', () => {
  const allocations = useMockCudaAddon();

  it('device tensors and op results read back; the device tensor stays usable; nothing leaks', async () => {
    const base = allocations();
    const dA = await toDeviceAsync(A, 'cuda');
    expect(dA.device).toBe('cuda:0');
    await expectFreshCopy(readTensor(dA), dA, A);
    await expectFreshCopy(toDeviceAsync(dA, 'cpu'), dA, A);
    expect(await toDeviceAsync(dA, 'cuda:0')).toBe(dA); // already there
    const dp = toDevice(packed, 'cuda'),
      da = toDevice(state.absmax, 'cuda');
    const r = dequantize4bit(dp, { absmax: da, shape: [4, 64], quantType: 'nf4' });
    expect(r.device).toBe('cuda:0');
    await expectFreshCopy(readTensor(r), r, want);
    expect(bytes(toDevice(r, 'cpu'))).toEqual(bytes(want)); // still readable synchronously
    for (const t of [dA, dp, da, r]) t.dispose!();
    expect(allocations()).toBe(base);
    expect(await rejection(() => readTensor(r))).toMatchObject({ code: 'E_DEVICE', message: 'a disposed cuda:0 tensor cannot be read' });
  });

  it('BNBJS_BACKEND=cuda: host results of the CUDA kernels read back like any host tensor', async () => {
    setForcedBackend('cuda');
    try {
      const r = dequantize4bit(packed, state);
      expect(r.device).toBe('cpu');
      await expectFreshCopy(readTensor(r), r, want);
    } finally {
      setForcedBackend(null);
    }
  });
});

describe('readTensor and toDeviceAsync on the emulated Gaudi backend', () => {
  it('hpu tensors and the dequantize4bit result read back as fresh host copies', async () => {
    setForcedBackend('hpu');
    try {
      const hp = await toDeviceAsync(packed, 'hpu');
      expect(hp.device).toBe('hpu:0');
      const h = await expectFreshCopy(readTensor(hp), hp, packed);
      expect(h.data.buffer).not.toBe(hp.data.buffer); // emulated device memory is host memory: still a copy
      const r = dequantize4bit(hp, new QuantState({ ...state, absmax: toDevice(state.absmax, 'hpu') }));
      expect(r.device).toBe('hpu:0');
      const back = await toDeviceAsync(r, 'cpu');
      expect(back.data.buffer).not.toBe(r.data.buffer);
      expect(bytes(back)).toEqual(bytes(toDevice(r, 'cpu')));
    } finally {
      setForcedBackend(null);
    }
  });
});
