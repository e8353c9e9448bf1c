import {
  vc, V_ABS, V_INF, V_F16_MIN, V_2P16, V_13_EXP, V_F16_INF, V_F16_SIGN, V_F16_NAN_LOW, V_2P112, V_F16_FINITE_MAX,
  V_EXP_112, V_7FFF, V_ONE,
} from "./vconst";

// Conversions between f32 and the 16-bit float formats, bit-exact with CUDA's
// __half2float / __float2half_rn / __float2bfloat16_rn (round to nearest even;
// NaN becomes the canonical 0x7fff).

export const DT_F32: i32 = 0;
export const DT_F16: i32 = 1;
export const DT_BF16: i32 = 2;

@inline export function f16ToF32(h: u32): f32 {
  const em = h & 0x7fff;
  let bits: u32;
  if (em >= 0x7c00) {
    bits = 0x7f800000 | ((em & 0x3ff) << 13);
  } else {
    // Place exponent and mantissa in an f32 and rescale by 2^112: exact for
    // normals and subnormals alike.
    bits = reinterpret<u32>(reinterpret<f32>(em << 13) * reinterpret<f32>(<u32>0x77800000));
  }
  return reinterpret<f32>(bits | ((h & 0x8000) << 16));
}

@inline export function f32ToBf16(f: f32): u32 {
  const b = reinterpret<u32>(f);
  if ((b & 0x7fffffff) > 0x7f800000) return 0x7fff;
  return (b + 0x7fff + ((b >> 16) & 1)) >> 16;
}

@inline export function f32ToF16(f: f32): u32 {
  const b = reinterpret<u32>(f);
  const ax = b & 0x7fffffff;
  const sign = (b >> 16) & 0x8000;
  if (ax > 0x7f800000) return 0x7fff;
  if (ax >= 0x477ff000) return sign | 0x7c00; // rounds to infinity (>= 65520)
  if (ax < 0x38800000) {
    // f16 subnormal range: adding 0.5 leaves the value's bits at 2^-24 spacing,
    // and the f32 addition rounds to nearest even for us.
    return sign | (reinterpret<u32>(reinterpret<f32>(ax) + 0.5) - 0x3f000000);
  }
  // Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
  return sign | ((ax + 0xc8000fff + ((ax >> 13) & 1)) >> 13);
}

@inline export function loadAsF32(src: usize, i: usize, dtype: i32): f32 {
  if (dtype == DT_F32) return load<f32>(src + (i << 2));
  const h = <u32>load<u16>(src + (i << 1));
  if (dtype == DT_BF16) return reinterpret<f32>(h << 16);
  return f16ToF32(h);
}

@inline export function storeFromF32(dst: usize, i: usize, v: f32, dtype: i32): void {
  if (dtype == DT_F32) {
    store<u32>(dst + (i << 2), v != v ? 0x7fffffff : reinterpret<u32>(v));
  } else if (dtype == DT_BF16) {
    store<u16>(dst + (i << 1), <u16>f32ToBf16(v));
  } else {
    store<u16>(dst + (i << 1), <u16>f32ToF16(v));
  }
}

// ---- SIMD forms (only compiled into the SIMD build) ----

// 4 f16 (zero-extended in i32 lanes) to f32: the exponent and mantissa bits placed
// in an f32 and rescaled by 2^112 (exact for normals and subnormals); inf/NaN
// (>= 0x7c00 << 13 before scaling) move up to the f32 inf exponent.
@inline export function f16x4ToF32x4(h: v128): v128 {
  const em = i32x4.shr_u(i32x4.shl(h, 17), 4);
  const f = i32x4.add(f32x4.mul(em, vc(V_2P112)), v128.and(i32x4.gt_s(em, vc(V_F16_FINITE_MAX)), vc(V_EXP_112)));
  return v128.or(f, i32x4.shl(i32x4.shr_u(h, 15), 31));
}

// Loads 4 consecutive elements as f32x4.
@inline export function loadF32x4(src: usize, i: usize, dtype: i32): v128 {
  if (dtype == DT_F32) return v128.load(src + (i << 2));
  const h = v128.load16x4_u(src + (i << 1));
  if (dtype == DT_BF16) return i32x4.shl(h, 16);
  return f16x4ToF32x4(h);
}

@inline export function f32x4ToBf16(v: v128): v128 {
  const r = i32x4.shr_u(i32x4.add(i32x4.add(v, vc(V_7FFF)), v128.and(i32x4.shr_u(v, 16), vc(V_ONE))), 16);
  return v128.bitselect(vc(V_7FFF), r, f32x4.ne(v, v));
}

// f32 to f16, round to nearest even, as f32ToF16. Adding 2^13 times the f16 step's
// exponent e (at least 2^-14, so subnormals share one step; at most 2^16, larger
// values overflow below) rounds |v| to that step in the f32 adder; the sum's low
// bits are the rounded mantissa, and the exponent field adds (e - 2^-14) >> 13.
@inline export function f32x4ToF16(v: v128): v128 {
  const ax = v128.and(v, vc(V_ABS));
  const e = i32x4.min_s(i32x4.max_s(v128.and(ax, vc(V_INF)), vc(V_F16_MIN)), vc(V_2P16));
  const magic = i32x4.add(e, vc(V_13_EXP));
  const t = f32x4.add(ax, magic);
  let h = i32x4.add(i32x4.sub(t, magic), i32x4.shr_u(i32x4.sub(e, vc(V_F16_MIN)), 13));
  h = i32x4.min_s(h, vc(V_F16_INF)); // overflow, inf and NaN -> 0x7c00
  const nan = i32x4.gt_s(ax, vc(V_INF));
  const sign = v128.andnot(v128.and(i32x4.shr_u(v, 16), vc(V_F16_SIGN)), nan);
  return v128.or(v128.or(h, sign), v128.and(nan, vc(V_F16_NAN_LOW)));
}

// Converts 8 f32 (two f32x4) to 8 16-bit values of the given dtype.
@inline export function f32x8To16(a: v128, b: v128, dtype: i32): v128 {
  if (dtype == DT_BF16) return i16x8.narrow_i32x4_u(f32x4ToBf16(a), f32x4ToBf16(b));
  return i16x8.narrow_i32x4_u(f32x4ToF16(a), f32x4ToF16(b));
}
