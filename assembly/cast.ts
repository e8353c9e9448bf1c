import {
  DT_F32, DT_F16, DT_BF16, f16ToF32, f32ToBf16, f32ToF16, loadAsF32, loadF32x4, f16x4ToF32x4, f32x8To16,
} from "./convert";
import { vc, V_QNAN, V_QUIET } from "./vconst";

// castFloat: n elements of one float dtype to another, bit-exact with the host's
// per-element reference (src/backend/wasm/cast.ts). 16-bit outputs round to nearest even,
// every NaN -> 0x7fff. float32 outputs are exact, and a NaN comes out as a
// JavaScript number carries it into a Float32Array: float16's as 0x7fc00000
// (f16ToNumber returns the NaN literal), bfloat16's quieted with its sign and
// payload kept (the f32 -> f64 -> f32 round trip sets the quiet bit).

@inline function widenBits(h: u32, from: i32): u32 {
  if (from == DT_BF16) {
    const b = h << 16;
    return (b & 0x7fffffff) > 0x7f800000 ? b | 0x00400000 : b;
  }
  const f = f16ToF32(h);
  return f != f ? 0x7fc00000 : reinterpret<u32>(f);
}

@inline function castScalar(src: usize, dst: usize, i: usize, end: usize, from: i32, to: i32): void {
  for (; i < end; i++) {
    if (to == DT_F32) {
      store<u32>(dst + (i << 2), widenBits(<u32>load<u16>(src + (i << 1)), from));
    } else {
      const v = loadAsF32(src, i, from);
      store<u16>(dst + (i << 1), <u16>(to == DT_BF16 ? f32ToBf16(v) : f32ToF16(v)));
    }
  }
}

// 8 elements a step; from and to are constants in each caller, so every pair is its own loop.
@inline function castPair(src: usize, n: usize, dst: usize, from: i32, to: i32): void {
  let i: usize = 0;
  if (ASC_FEATURE_SIMD) {
    for (; i + 8 <= n; i += 8) {
      if (to == DT_F32) {
        for (let k: usize = 0; k < 8; k += 4) {
          const h = v128.load16x4_u(src + ((i + k) << 1));
          let v: v128;
          if (from == DT_BF16) {
            v = i32x4.shl(h, 16);
            v = v128.or(v, v128.and(f32x4.ne(v, v), vc(V_QUIET)));
          } else {
            v = f16x4ToF32x4(h);
            v = v128.bitselect(vc(V_QNAN), v, f32x4.ne(v, v));
          }
          v128.store(dst + ((i + k) << 2), v);
        }
      } else {
        v128.store(dst + (i << 1), f32x8To16(loadF32x4(src, i, from), loadF32x4(src, i + 4, from), to));
      }
    }
  }
  castScalar(src, dst, i, n, from, to);
}

export function castFloat(src: usize, n: i32, from: i32, dst: usize, to: i32): void {
  const len = <usize>n;
  if (from == to) memory.copy(dst, src, len << (from == DT_F32 ? 2 : 1));
  else if (from == DT_F32 && to == DT_F16) castPair(src, len, dst, DT_F32, DT_F16);
  else if (from == DT_F32) castPair(src, len, dst, DT_F32, DT_BF16);
  else if (from == DT_F16 && to == DT_BF16) castPair(src, len, dst, DT_F16, DT_BF16);
  else if (from == DT_F16) castPair(src, len, dst, DT_F16, DT_F32);
  else if (to == DT_F16) castPair(src, len, dst, DT_BF16, DT_F16);
  else castPair(src, len, dst, DT_BF16, DT_F32);
}
