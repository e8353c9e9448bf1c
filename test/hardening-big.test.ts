// Tensors larger than one WebAssembly memory (4 GiB): the ops stream them through
// wasm memory in chunks, and no view over a whole tensor is made (a Uint8Array cannot
// exceed 2^32 bytes in Node 20, while a Uint16Array of 2^31 + ... elements can hold a
// 4 GiB bfloat16 tensor). bitsandbytes' own large-tensor bar is 2^31 - 1 elements
// (docs/bit-exactness.md#size-limits); here one tensor has more than 2^31, and sampled blocks are checked
// against the same blocks quantized on their own.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { freemem, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Tensor, dequantize4bit, probe, quantize4bit, readSafetensors, tensor, writeSafetensors } from '../src/index.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { numberToBf16 } from '../src/float16.js';
import { Rng } from './helpers/random.js';

const N = 2 ** 31 + 2 ** 20 + 37; // > 2^31 elements, not a multiple of the blocksize
const BLOCKSIZE = 64;
// input 4 GiB + packed 1 GiB + absmax 128 MiB + output 4 GiB, and room to spare
const NEED = 12 * 2 ** 30;
// Through the CUDA backend (BNBJS_BACKEND=cuda) one op holds its input or output and the packed data in device memory.
const DEVICE_NEED = 6 * 2 ** 30;
const p = probe();
const device = p.forced === 'cuda' && p.cuda.available ? Math.min(...p.cuda.devices.map((d) => d.totalMemory)) : Infinity;
const force = process.env.BNBJS_BIG === '1';
const skip =
  device < DEVICE_NEED
    ? `needs ${DEVICE_NEED / 2 ** 30} GiB of device memory with BNBJS_BACKEND=cuda; ${p.cuda.devices[0]?.name} has ${(device / 2 ** 30).toFixed(1)} GiB`
    : process.env.BNBJS_BIG === '0' || (!force && freemem() < NEED)
      ? `needs ${NEED / 2 ** 30} GiB free (${(freemem() / 2 ** 30).toFixed(1)} of ${(totalmem() / 2 ** 30).toFixed(1)} GiB free${process.env.BNBJS_BIG === '0' ? ', BNBJS_BIG=0' : ''}); BNBJS_BIG=1 forces it`
      : null;
if (skip) console.log(`hardening-big skipped: ${skip}`);

/** bf16 data of n elements: a random pattern of a length coprime with the blocksize, repeated (fast to fill). */
function bigInput(n: number): Uint16Array {
  const period = 2 ** 20 + 7;
  const rng = new Rng(2026);
  const x = new Uint16Array(n);
  for (let i = 0; i < period; i++) x[i] = numberToBf16(rng.normal() * (1 + (i % 97)));
  for (let filled = period; filled < n; filled *= 2) x.copyWithin(filled, 0, Math.min(filled, n - filled));
  return x;
}

let kept: Uint16Array | null = null;

describe.skipIf(skip !== null)('one op on more than 2^31 elements', () => {
  it(`quantize4bit and dequantize4bit of a ${N}-element (${((N * 2) / 2 ** 30).toFixed(2)} GiB) bfloat16 tensor`, () => {
    let t = performance.now();
    const data = bigInput(N);
    const A = tensor(data, [N], 'bfloat16');
    const fill = performance.now() - t;
    t = performance.now();
    const [packed, state] = quantize4bit(A, { quantType: 'nf4', blocksize: BLOCKSIZE });
    const quant = performance.now() - t;
    expect(packed.shape).toEqual([Math.ceil(N / 2), 1]);
    expect(state.absmax.data.length).toBe(Math.ceil(N / BLOCKSIZE));
    t = performance.now();
    const out = dequantize4bit(packed, state);
    const deq = performance.now() - t;
    expect(out.shape).toEqual([N]);
    expect(out.data.length).toBe(N);

    // blocks at both ends, around 2^31 elements and 2^32 bytes of input, and at random
    const nb = Math.ceil(N / BLOCKSIZE);
    const rng = new Rng(31);
    const blocks = new Set([0, 1, nb - 2, nb - 1, 2 ** 31 / BLOCKSIZE - 1, 2 ** 31 / BLOCKSIZE, 2 ** 32 / 2 / BLOCKSIZE + 1]);
    while (blocks.size < 2000) blocks.add(rng.int(0, nb - 1));
    for (const b of blocks) {
      const start = b * BLOCKSIZE,
        len = Math.min(BLOCKSIZE, N - start);
      const small = tensor(data.slice(start, start + len), [len], 'bfloat16');
      const [p1, s1] = quantize4bit(small, { quantType: 'nf4', blocksize: BLOCKSIZE });
      expect(state.absmax.data[b], `absmax of block ${b}`).toBe(s1.absmax.data[0]);
      const bytes = packed.data.subarray(start / 2, start / 2 + Math.ceil(len / 2));
      expect(Buffer.from(bytes).equals(Buffer.from(p1.data as Uint8Array)), `packed block ${b}`).toBe(true);
      const d1 = dequantize4bit(p1, s1);
      expect(
        Buffer.from((out.data as Uint16Array).slice(start, start + len).buffer).equals(Buffer.from(d1.data.buffer)),
        `dequantized block ${b}`,
      ).toBe(true);
    }
    console.log(
      `> 2^31 elements: fill ${(fill / 1000).toFixed(1)} s, quantize4bit ${(quant / 1000).toFixed(1)} s, dequantize4bit ${(deq / 1000).toFixed(1)} s, ${blocks.size} blocks checked`,
    );
    if (force) kept = data;
  }, 600_000);

  // 4 GiB of disk and another minute: only with BNBJS_BIG=1
  it.skipIf(!force)(
    'a 4 GiB tensor through a safetensors file and quantizeCheckpoint (BNBJS_BIG=1)',
    async () => {
      const data = kept ?? bigInput(N);
      kept = null;
      const dir = mkdtempSync(join(tmpdir(), 'bnbjs-big-'));
      try {
        const path = join(dir, 'model.safetensors');
        let t = performance.now();
        await writeSafetensors(path, { 'model.layers.0.mlp.up_proj.weight': tensor(data, [N], 'bfloat16') });
        const write = performance.now() - t;
        expect(statSync(path).size).toBeGreaterThan(2 ** 32);
        t = performance.now();
        let read: number;
        {
          const back = (await readSafetensors(path)).tensors['model.layers.0.mlp.up_proj.weight'] as Tensor;
          read = performance.now() - t;
          expect(back.data.length).toBe(N);
          const rng = new Rng(7);
          for (let k = 0; k < 100_000; k++) {
            const i = k < 4 ? [0, N - 1, 2 ** 31, 2 ** 31 - 1][k]! : rng.int(0, N - 1);
            if (back.data[i] !== data[i]) throw new Error(`element ${i}: ${back.data[i]} vs ${data[i]}`);
          }
        }
        // a 2-D [2^15 + ..., 2^16] weight of the same bytes, quantized as a checkpoint (one tensor > 4 GiB)
        const rows = Math.floor(N / 65536);
        await writeSafetensors(
          path,
          { 'model.layers.0.mlp.up_proj.weight': tensor(data.subarray(0, rows * 65536), [rows, 65536], 'bfloat16') },
          { force: true },
        );
        t = performance.now();
        const r = await quantizeCheckpoint(path, join(dir, 'nf4.safetensors'), { format: 'nf4' });
        const conv = performance.now() - t;
        expect(r.layers).toBe(1);
        console.log(
          `4 GiB tensor: write ${(write / 1000).toFixed(1)} s, read ${(read / 1000).toFixed(1)} s, quantizeCheckpoint ${(conv / 1000).toFixed(1)} s (${r.bytesOut} bytes out)`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    900_000,
  );
});
