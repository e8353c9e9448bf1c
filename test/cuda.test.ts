// The CUDA backend on device tensors: identical bits to WebAssembly, device-resident results.
// Runs on the GPU machine (npm run test:cuda); elsewhere skipped with the probe's reason.
import { describe, expect, it } from 'vitest';
import {
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseQuant,
  probe,
  quantize4bit,
  quantizeBlockwise,
  setForcedBackend,
  tensor,
  toDevice,
  toFloat32,
} from '../src/index.js';
import { bytes } from './helpers/golden.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { gemvBars, gemvMetrics } from './helpers/gemv-bars.js';

const p = probe();
const available = p.cuda.available;
if (!available) console.log(`CUDA tests skipped: ${p.cuda.reason}`);
else console.log(`CUDA tests on ${p.cuda.devices.map((d) => `${d.name} (sm_${d.major}${d.minor})`).join(', ')}`);

const host = (t: Tensor) => toDevice(t, 'cpu');
const same = (a: Tensor, b: Tensor, what: string) =>
  expect(Buffer.from(bytes(host(a))).equals(Buffer.from(bytes(host(b)))), what).toBe(true);

/** f on WebAssembly (host tensors) and on CUDA (device tensors). */
function onBoth<T>(f: (dev: (t: Tensor) => Tensor) => T): [T, T] {
  setForcedBackend('wasm');
  const w = f((t) => t);
  setForcedBackend(null);
  const c = f((t) => toDevice(t, 'cuda'));
  return [w, c];
}

describe.skipIf(!available)('CUDA backend', () => {
  const rng = new Rng(77);

  it('copies to the device and back; device tensors hold no host data', () => {
    const A = tensor(randn(rng, 1000), [10, 100]);
    const d = toDevice(A, 'cuda');
    expect(d.device).toBe('cuda:0');
    expect(() => d.data).toThrow(/is on cuda:0: copy it to the host/);
    expect(bytes(host(d))).toEqual(bytes(A));
    d.dispose!();
  });

  it('ops on CUDA tensors return CUDA tensors with the WebAssembly bits (4-bit, blockwise)', () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      for (const n of [1, 33, 4097, 1_000_001]) {
        const A = asDType(randn(rng, n), [n], dtype);
        for (const quantType of ['nf4', 'fp4'] as const) {
          const [[pw, sw], [pc, sc]] = onBoth((dev) => quantize4bit(dev(A), { quantType, compressStatistics: n > 100 }));
          expect(pc.device).toBe('cuda:0');
          same(pw, pc, `${dtype} ${n} ${quantType} packed`);
          same(sw.absmax, sc.absmax, `${dtype} ${n} ${quantType} absmax`);
          expect(sc.offset).toBe(sw.offset);
          const [dw, dc] = onBoth((dev) =>
            dequantize4bit(
              dev(pw),
              n > 100
                ? Object.assign(Object.create(Object.getPrototypeOf(sw)), sw, {
                    absmax: dev(sw.absmax),
                    state2: Object.assign(Object.create(Object.getPrototypeOf(sw.state2)), sw.state2, { absmax: dev(sw.state2!.absmax) }),
                  })
                : Object.assign(Object.create(Object.getPrototypeOf(sw)), sw, { absmax: dev(sw.absmax) }),
            ),
          );
          expect(dc.device).toBe('cuda:0');
          same(dw, dc, `${dtype} ${n} ${quantType} dequant`);
        }
        const [[qw, tw], [qc, tc]] = onBoth((dev) => quantizeBlockwise(dev(A), { blocksize: 256 }));
        same(qw, qc, `${dtype} ${n} blockwise q`);
        same(tw.absmax, tc.absmax, `${dtype} ${n} blockwise absmax`);
        const [bw, bc] = onBoth((dev) =>
          dequantizeBlockwise(dev(qw), Object.assign(Object.create(Object.getPrototypeOf(tw)), tw, { absmax: dev(tw.absmax) })),
        );
        same(bw, bc, `${dtype} ${n} blockwise dequant`);
      }
    }
  });

  it('gives the WebAssembly bits on a 100M-element tensor', () => {
    const n = 100_000_000;
    const x = new Uint16Array(n);
    for (let i = 0; i < n; i++) x[i] = (Math.imul(i, 2654435761) >>> 17) & 0xbfff; // bf16 patterns, finite
    const A = tensor(x, [n], 'bfloat16');
    const [[pw, sw], [pc, sc]] = onBoth((dev) => quantize4bit(dev(A), { quantType: 'nf4', compressStatistics: true }));
    same(pw, pc, 'packed');
    same(sw.absmax, sc.absmax, 'nested absmax');
    const [qw] = onBoth((dev) => quantizeBlockwise(dev(A), { blocksize: 256 }));
    same(qw[0], qw[0], 'blockwise');
    const qc = quantizeBlockwise(toDevice(A, 'cuda'), { blocksize: 256 })[0];
    same(qw[0], qc, 'blockwise codes');
  });

  it('int8 ops, GEMV and FP8 on device tensors', () => {
    const A16 = asDType(randn(rng, 64 * 256, 2), [64, 256], 'float16');
    const [[cbw, sw], [cbc, scd]] = onBoth((dev) => int8VectorwiseQuant(dev(A16)));
    same(cbw, cbc, 'int8 CB');
    same(sw, scd, 'int8 stats');
    const B = tensor(
      Int8Array.from({ length: 96 * 256 }, () => rng.int(-128, 127)),
      [96, 256],
    );
    const [Cw, Cc] = onBoth((dev) => int8LinearMatmul(dev(cbw), dev(B)));
    same(Cw, Cc, 'int8 matmul');
    const cs = tensor(Float32Array.from({ length: 96 }, () => rng.next() * 3));
    const [Dw, Dc] = onBoth((dev) => int8MmDequant(dev(Cw), dev(sw), dev(cs)));
    same(Dw, Dc, 'mm dequant');
    const W = asDType(randn(rng, 384 * 512, 1 / Math.sqrt(512)), [384, 512], 'float16');
    const [qB, st] = quantize4bit(W, { quantType: 'nf4', compressStatistics: true });
    const x = asDType(randn(rng, 512), [1, 512], 'float16');
    const [gw, gc] = onBoth((dev) =>
      gemv4bit(
        dev(x),
        dev(qB),
        Object.assign(Object.create(Object.getPrototypeOf(st)), st, {
          absmax: dev(st.absmax),
          state2: Object.assign(Object.create(Object.getPrototypeOf(st.state2)), st.state2, { absmax: dev(st.state2!.absmax) }),
        }),
      ),
    );
    expect(gc.device).toBe('cuda:0');
    const m = gemvMetrics(toFloat32(gw), toFloat32(host(gc)), 512);
    const bars = gemvBars('float16', 512);
    expect(m.err1).toBeLessThan(bars.err1);
    const w8 = tensor(
      Uint8Array.from({ length: 300 * 200 }, () => rng.int(0, 0x7e)),
      [300, 200],
      'float8_e4m3fn',
    );
    const s8 = tensor(
      Float32Array.from({ length: 6 }, () => rng.next()),
      [3, 2],
    );
    const [fw, fc] = onBoth((dev) => dequantizeFp8(dev(w8), dev(s8)));
    same(fw, fc, 'fp8');
  });
});
