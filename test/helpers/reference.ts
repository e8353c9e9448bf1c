// An independent JS statement of bitsandbytes' CUDA code assignment, used to
// explain (never to excuse silently) any code that differs from a golden file.
import { bitsToF32, f32Bits } from '../../src/float16.js';

const hex = (xs: number[]) => xs.map(bitsToF32);
// dQuantizeNF4 / dQuantizeFP4 literals as f32 (docs/bit-exactness.md#4-bit-thresholds)
export const NF4_T = hex([
  0xbf591cd9, 0xbf1c5270, 0xbeeb8480, 0xbeadea76, 0xbe703cec, 0xbe0d38bc, 0xbd3a7871, 0x3d22faff, 0x3df64863, 0x3e5067e0, 0x3e9582d4,
  0x3ec753f9, 0x3f006d03, 0x3f248daf, 0x3f5c89d9,
]);
export const FP4_T = hex([0x3b2aaab9, 0x3db00000, 0x3e555555, 0x3e955555, 0x3ed55556, 0x3f155550, 0x3f555555]);
const FP4_MAG = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

export function nf4Code(s: number): number {
  return NF4_T.filter((t) => s > t).length;
}

export function fp4Code(s: number): number {
  return (s < 0 ? 8 : 0) | FP4_MAG[FP4_T.filter((t) => Math.abs(s) > t).length]!;
}

/** Nearest code entry; an exact tie at the f32 midpoint goes to the even index; NaN -> 0. */
export function code8(code: Float32Array, s: number): number {
  if (Number.isNaN(s)) return 0;
  let c = 0;
  while (c < 256 && code[c]! < s) c++;
  if (c === 0) return 0;
  if (c === 256) return 255;
  const mid = Math.fround(Math.fround(code[c - 1]! + code[c]!) * 0.5);
  if (s > mid) return c;
  if (s < mid) return c - 1;
  return c % 2 === 0 ? c : c - 1;
}

export function nextUp(x: number): number {
  const b = f32Bits(x);
  return bitsToF32(x >= 0 ? b + 1 : b - 1);
}

export function nextDown(x: number): number {
  const b = f32Bits(x);
  return bitsToF32(x > 0 ? b - 1 : b + 1);
}

/**
 * True when `golden` is what the code function gives for x with the reciprocal
 * of amax moved by one ulp: the only difference docs/bit-exactness.md#the-reciprocal allows.
 */
export function explainedByReciprocal(x: number, amax: number, golden: number, codeOf: (s: number) => number): boolean {
  const r = Math.fround(1 / amax);
  return [nextDown(r), nextUp(r)].some((rr) => codeOf(Math.fround(x * rr)) === golden);
}

/** Distance in units in the last place between two f32 values of the same sign. */
export function ulpDistance(a: number, b: number): number {
  return Math.abs(f32Bits(a) - f32Bits(b));
}
