// The documented gemv4bit order (docs/bit-exactness.md, "4-bit GEMV", exact mode) written
// literally with Math.fround: the reference every backend's bytes are compared with.
import { numberToBf16, numberToF16 } from '../../src/float16.js';
import { FloatDType } from '../../src/dtypes.js';

const f = Math.fround;

/** One output element: x and w are row k-vectors of float32 values (w = dequantize4bit's). */
export function gemvElement(x: ArrayLike<number>, w: ArrayLike<number>, xOff: number, wOff: number, K: number): number {
  const acc = new Float64Array(128); // float32 values held in doubles
  for (let k = 0; k < K; k++) {
    const slot = ((Math.floor(k / 32) % 32) << 2) | ((k % 8) >> 1);
    acc[slot] = f(acc[slot]! + f(x[xOff + k]! * w[wOff + k]!));
  }
  const r = new Float64Array(32);
  for (let l = 0; l < 32; l++) r[l] = f(f(acc[4 * l]! + acc[4 * l + 1]!) + f(acc[4 * l + 2]! + acc[4 * l + 3]!));
  for (let s = 16; s >= 1; s >>= 1) for (let l = 0; l < s; l++) r[l] = f(r[l]! + r[l + s]!);
  return r[0]!;
}

/** out [M, N] as the bytes of dtype: A [M, K] and W [N, K] as float32 values, bias float32 or null. */
export function gemvReference(
  A: Float32Array,
  W: Float32Array,
  M: number,
  N: number,
  K: number,
  bias: Float32Array | null,
  dtype: FloatDType,
): Uint8Array {
  const out = dtype === 'float32' ? new Float32Array(M * N) : new Uint16Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = gemvElement(A, W, i * K, j * K, K);
      if (bias) s = f(s + bias[j]!);
      out[i * N + j] = dtype === 'float32' ? s : dtype === 'float16' ? numberToF16(s) : numberToBf16(s);
    }
  }
  if (dtype === 'float32') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) if (Number.isNaN((out as Float32Array)[i])) bits[i] = 0x7fffffff;
  }
  return new Uint8Array(out.buffer);
}
