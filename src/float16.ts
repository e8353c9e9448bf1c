// Exact conversions between numbers and 16-bit float bit patterns (round to
// nearest even, NaN -> 0x7fff), matching the WebAssembly kernels.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

export function bitsToF32(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

export function bf16ToNumber(h: number): number {
  return bitsToF32((h & 0xffff) << 16);
}

export function f16ToNumber(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function numberToBf16(x: number): number {
  const b = f32Bits(x);
  if ((b & 0x7fffffff) > 0x7f800000) return 0x7fff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function numberToF16(x: number): number {
  const b = f32Bits(x);
  const ax = b & 0x7fffffff;
  const sign = (b >>> 16) & 0x8000;
  if (ax > 0x7f800000) return 0x7fff;
  if (ax >= 0x477ff000) return sign | 0x7c00;
  if (ax < 0x38800000) return sign | (f32Bits(bitsToF32(ax) + 0.5) - 0x3f000000);
  return sign | (((ax - 0x37fff001 + ((ax >>> 13) & 1)) >>> 13) & 0xffff);
}
