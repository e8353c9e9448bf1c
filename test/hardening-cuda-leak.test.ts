// Device memory: no op leaks CUDA memory across 10,000 calls. Every cudaMalloc and
// cudaFree of the addon is counted (the outputs are disposed each call, so whatever
// stays allocated would be an op's own temporary). Runs where the CUDA addon and a
// GPU are available (the GPU machine); elsewhere skipped with the probe's reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Tensor,
  dequantize4bit,
  dequantizeBlockwise,
  dequantizeFp8,
  gemv4bit,
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  probe,
  quantize4bit,
  quantizeBlockwise,
  setForcedBackend,
  tensor,
  toDevice,
} from '../src/index.js';
import { cudaAddon } from '../src/backend/cuda/addon.js';
import { Rng, asDType, randn } from './helpers/random.js';

const p = probe();
const available = p.cuda.available;
if (!available) console.log(`CUDA leak test skipped: ${p.cuda.reason}`);

/** Disposes every device tensor in a result (tensors, arrays, QuantStates). */
function dispose(x: unknown, seen = new Set<unknown>()): void {
  if (x === null || typeof x !== 'object' || seen.has(x)) return;
  seen.add(x);
  const t = x as Tensor;
  if (typeof t.device === 'string' && t.device !== 'cpu' && typeof t.dispose === 'function') return t.dispose();
  for (const v of Array.isArray(x) ? x : Object.values(x)) dispose(v, seen);
}

const NAMES = [
  'quantize4bit',
  'dequantize4bit',
  'quantizeBlockwise',
  'dequantizeBlockwise',
  'int8VectorwiseQuant',
  'int8DoubleQuant',
  'int8VectorwiseDequant',
  'int8LinearMatmul',
  'int8MmDequant',
  'gemv4bit',
  'dequantizeFp8',
] as const;

/** Counts the addon's allocations (wraps malloc and free) and builds the ops on device tensors. */
function setup() {
  const addon = cudaAddon().addon!;
  const live = new Map<number, number>();
  const malloc = addon.malloc.bind(addon),
    free = addon.free.bind(addon);
  let mallocs = 0;
  addon.malloc = (n: number) => {
    const ptr = malloc(n);
    live.set(ptr, n);
    mallocs++;
    return ptr;
  };
  addon.free = (ptr: number) => {
    live.delete(ptr);
    free(ptr);
  };
  setForcedBackend(null);
  const dev = (t: Tensor) => toDevice(t, 'cuda');
  const rng = new Rng(3);
  const f32 = dev(tensor(randn(rng, 4096), [16, 256]));
  const f16 = dev(asDType(randn(rng, 4096), [16, 256], 'float16'));
  const [p4, s4] = quantize4bit(f32, { quantType: 'nf4', compressStatistics: true });
  const [q8, s8] = quantizeBlockwise(f32, { blocksize: 256, nested: true });
  const [cb, rs] = int8VectorwiseQuant(f16);
  const i32 = int8LinearMatmul(cb, cb);
  const cs = dev(tensor(randn(rng, 16).map(Math.abs)));
  const [pw, sw] = quantize4bit(dev(tensor(randn(rng, 64 * 256), [64, 256])), { quantType: 'fp4', compressStatistics: true });
  const x = dev(tensor(randn(rng, 2 * 256), [2, 256]));
  const e4m3 = dev(
    tensor(
      Uint8Array.from({ length: 4096 }, (_, i) => i % 255),
      [16, 256],
      'float8_e4m3fn',
    ),
  );
  const scale = dev(tensor(new Float32Array(2).fill(0.5), [1, 2]));
  const ops: Record<(typeof NAMES)[number], () => unknown> = {
    quantize4bit: () => quantize4bit(f32, { quantType: 'nf4', compressStatistics: true }),
    dequantize4bit: () => dequantize4bit(p4, s4),
    quantizeBlockwise: () => quantizeBlockwise(f32, { blocksize: 256, nested: true }),
    dequantizeBlockwise: () => dequantizeBlockwise(q8, s8),
    int8VectorwiseQuant: () => int8VectorwiseQuant(f16, { threshold: 2 }),
    int8DoubleQuant: () => int8DoubleQuant(f16),
    int8VectorwiseDequant: () => int8VectorwiseDequant(cb, rs),
    int8LinearMatmul: () => int8LinearMatmul(cb, cb),
    int8MmDequant: () => int8MmDequant(i32, rs, cs),
    gemv4bit: () => gemv4bit(x, pw, sw),
    dequantizeFp8: () => dequantizeFp8(e4m3, scale, { blockSize: 128 }),
  };
  return { ops, live, bytes: () => [...live.values()].reduce((a, b) => a + b, 0), mallocs: () => mallocs };
}

describe.skipIf(!available)('CUDA: no op leaks device memory across 10,000 calls', () => {
  let env: ReturnType<typeof setup>;
  const report: string[] = [];
  beforeAll(() => {
    env = setup();
  });
  afterAll(() =>
    console.log(`CUDA leak check on ${p.cuda.devices[0]?.name}, 10,000 calls per op (outputs disposed):\n${report.join('\n')}`),
  );

  for (const name of NAMES) {
    it(name, () => {
      const op = env.ops[name];
      for (let i = 0; i < 100; i++) dispose(op());
      const n0 = env.live.size,
        b0 = env.bytes(),
        m0 = env.mallocs();
      for (let i = 0; i < 10_000; i++) dispose(op());
      report.push(`  ${name}: ${env.mallocs() - m0} cudaMalloc, live allocations ${n0} -> ${env.live.size}, ${b0} -> ${env.bytes()} bytes`);
      expect(env.live.size).toBe(n0);
      expect(env.bytes()).toBe(b0);
    });
  }
});
