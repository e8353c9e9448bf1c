// The WebAssembly kernels of gemv4bit (and matmul4bit), both modes: rows of the 4-bit
// weight in chunks that threads share, against blocks of A's rows.
import { BnbError, show } from '../../errors.js';
import { Tensor, toFloat32 } from '../../tensor.js';
import { DTYPE_ID, QTYPE_ID } from '../abi.js';
import { Checked } from '../../ops/registry.js';
import { gemv4bitOp } from '../../ops/gemv4bit.js';
import { emptyTensor } from '../../ops/validate.js';
import { gemv8ScratchBytes, gemvScratchBytes } from './runtime/exports.js';
import { absmaxF32 } from './blockwise.js';
import { byteView, chunkElements } from './chunk.js';
import { kernelsFor, runChunks } from './threads/parallel.js';

/**
 * The WebAssembly kernels of gemv4bit / matmul4bit.
 * out = A @ W^T (+ bias), W = dequantize4bit(B, state) of shape state.shape = [N, K], in the
 * order of docs/bit-exactness.md ("4-bit GEMV"): the exact mode decodes the weights exactly
 * as dequantize4bit's f32 values and accumulates in f32 (chunks of 32, 32 lanes, a fixed
 * tree); `accuracy: 'int8'` quantizes A per group of 64 (each call its own rows, in its
 * scratch) and sums integers (assembly/gemv8.ts). Either way identical in every build and
 * thread count (each output is one kernel call's, whatever chunk it falls in) and on CUDA;
 * one rounding to A's dtype. B is read as bytes, so `qB` and its transposed [1, n] form are
 * the same.
 */
export function gemv4bitWasm(c: Checked<typeof gemv4bitOp>): Tensor {
  return c.accuracy === 'int8' ? runGemv(c, 'gemv4bitInt8', gemv8ScratchBytes) : runGemv(c, 'gemv4bit', gemvScratchBytes);
}

function runGemv(
  c: Checked<typeof gemv4bitOp>,
  kernel: 'gemv4bit' | 'gemv4bitInt8',
  scratchBytes: (m: number, k: number) => number,
): Tensor {
  const { A: a, B: b, M, N, K, quantType, blocksize, dtype, bias, absmax: checked, outShape, shape } = c;
  const biasF32 = bias === null ? null : toFloat32(bias);
  const result = emptyTensor(dtype, outShape);
  if (M === 0 || N === 0) return result;
  const absmax = absmaxF32(checked);
  const size = dtype === 'float32' ? 4 : 2;
  const { m, threads } = kernelsFor(N * K + (M * N * K) / 16, b.data, absmax);
  const budget = chunkElements(1) * 4; // weights (and A elements) per kernel call
  const nc = Math.max(1, Math.min(N, Math.floor(budget / Math.max(K, 1)), threads > 1 ? Math.ceil(N / (8 * threads)) : N));
  const mc = Math.max(1, Math.min(M, Math.floor(budget / Math.max(K, 1))));
  // Each call sees flat indices relative to an anchor row J whose flat index J*K is a
  // multiple of the blocksize: no u32 index overflows past 2^32 weights, and the
  // kernel's 32-element groups stay where they are in one call (same bits).
  const g = blocksize / gcd(K, blocksize);
  const W = b.data;
  const rowsOf = (j: number) => {
    const j0 = j * nc,
      nj = Math.min(nc, N - j0),
      J = Math.floor(j0 / g) * g;
    return {
      j0,
      nj,
      J,
      first: Math.floor((j0 * K) / 2),
      last: Math.ceil(((j0 + nj) * K) / 2),
      b0: (J * K) / blocksize,
      b1: Math.ceil(((j0 + nj) * K) / blocksize),
    };
  };
  for (let j = 0; j * nc < N; j++) {
    const { j0, nj, J } = rowsOf(j);
    if ((j0 + nj - J) * K >= 2 ** 32) {
      throw new BnbError(
        'E_SHAPE',
        `state.shape = ${show(shape)} with blocksize ${blocksize}: rows of ${K} weights align with the blocks only every ${g} rows, too far apart for gemv4bit to process in chunks`,
      );
    }
  }
  for (let i0 = 0; i0 < M; i0 += mc) {
    const mi = Math.min(mc, M - i0);
    runChunks(m, threads, {
      count: Math.ceil(N / nc),
      shared: [mc * K * size],
      prepare: ([pA]) => m.write(pA!, byteView(a.data, i0 * K * size, mi * K * size)),
      slot: [
        (Math.ceil(((g + nc) * K) / blocksize) + 1) * 4,
        (g + nc) * 4,
        Math.ceil((nc * K) / 2) + 16, // the SIMD kernels read whole 16-byte chunks
        mc * nc * size,
        scratchBytes(mc, K),
      ],
      load(j, p) {
        const [pAbs, pBias] = p;
        const { j0, nj, J, first, last, b0, b1 } = rowsOf(j);
        p[2] = m.place(p[2]!, byteView(W, first, last - first));
        p[0] = m.place(pAbs!, byteView(absmax, b0 * 4, (b1 - b0) * 4));
        if (biasF32) m.write(pBias!, byteView(biasF32, J * 4, (j0 + nj - J) * 4));
      },
      calls(j, [pAbs, pBias, pW, pOut, pScratch], [pA]) {
        const { j0, nj, J, first } = rowsOf(j);
        return [
          [
            kernel,
            pA!,
            mi,
            K,
            DTYPE_ID[dtype],
            pW!,
            first * 2 - J * K,
            j0 - J,
            nj,
            pAbs!,
            blocksize,
            QTYPE_ID[quantType],
            biasF32 ? pBias! : 0,
            DTYPE_ID[dtype],
            pOut!,
            pScratch!,
          ],
        ];
      },
      store(j, [, , , pOut]) {
        const { j0, nj } = rowsOf(j);
        if (nj === N) m.read(pOut!, result.data, i0 * N * size, mi * N * size);
        else for (let i = 0; i < mi; i++) m.read(pOut! + i * nj * size, result.data, ((i0 + i) * N + j0) * size, nj * size);
      },
    });
  }
  return result;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
