// Splatted v128 constants for hot loops, read from this table: V8 rebuilds an
// inline v128.const at each use inside a loop (three instructions), while a load
// from memory is one instruction and is hoisted. Nothing writes the table, so it is
// safe to share between threads. (The scalar build has no table.)
export const VC: usize = !ASC_FEATURE_SIMD ? 0 : memory.data<u32>([
  0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff, // V_ABS
  0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, // V_INF: f32 exponent / infinity
  0x38800000, 0x38800000, 0x38800000, 0x38800000, // V_F16_MIN: 2^-14, smallest f16 normal
  0x47800000, 0x47800000, 0x47800000, 0x47800000, // V_2P16
  0x06800000, 0x06800000, 0x06800000, 0x06800000, // V_13_EXP: 13 << 23
  0x00007c00, 0x00007c00, 0x00007c00, 0x00007c00, // V_F16_INF
  0x00008000, 0x00008000, 0x00008000, 0x00008000, // V_F16_SIGN
  0x000003ff, 0x000003ff, 0x000003ff, 0x000003ff, // V_F16_NAN_LOW: 0x7c00 | 0x3ff = 0x7fff
  0x77800000, 0x77800000, 0x77800000, 0x77800000, // V_2P112
  0x0f7fffff, 0x0f7fffff, 0x0f7fffff, 0x0f7fffff, // V_F16_FINITE_MAX: (0x7c00 << 13) - 1
  0x38000000, 0x38000000, 0x38000000, 0x38000000, // V_EXP_112: 112 << 23
  0x00007fff, 0x00007fff, 0x00007fff, 0x00007fff, // V_7FFF: bf16 rounding bias, canonical NaN
  0x00000001, 0x00000001, 0x00000001, 0x00000001, // V_ONE
  0x80000000, 0x80000000, 0x80000000, 0x80000000, // V_SIGN
  0x007f007f, 0x007f007f, 0x007f007f, 0x007f007f, // V_I16_127
  0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, 0x0f0f0f0f, // V_NIBBLE
  0x7fff7fff, 0x7fff7fff, 0x7fff7fff, 0x7fff7fff, // V_I16_ABS
  0x7c007c00, 0x7c007c00, 0x7c007c00, 0x7c007c00, // V_I16_F16_INF
  0x7f807f80, 0x7f807f80, 0x7f807f80, 0x7f807f80, // V_I16_BF16_INF
  0x7fc00000, 0x7fc00000, 0x7fc00000, 0x7fc00000, // V_QNAN: the NaN a JS number stores in a Float32Array
  0x00400000, 0x00400000, 0x00400000, 0x00400000, // V_QUIET: the f32 quiet-NaN bit
], 16);

@inline export const V_ABS: usize = 0;
@inline export const V_INF: usize = 1;
@inline export const V_F16_MIN: usize = 2;
@inline export const V_2P16: usize = 3;
@inline export const V_13_EXP: usize = 4;
@inline export const V_F16_INF: usize = 5;
@inline export const V_F16_SIGN: usize = 6;
@inline export const V_F16_NAN_LOW: usize = 7;
@inline export const V_2P112: usize = 8;
@inline export const V_F16_FINITE_MAX: usize = 9;
@inline export const V_EXP_112: usize = 10;
@inline export const V_7FFF: usize = 11;
@inline export const V_ONE: usize = 12;
@inline export const V_SIGN: usize = 13;
@inline export const V_I16_127: usize = 14;
@inline export const V_NIBBLE: usize = 15;
@inline export const V_I16_ABS: usize = 16;
@inline export const V_I16_F16_INF: usize = 17;
@inline export const V_I16_BF16_INF: usize = 18;
@inline export const V_QNAN: usize = 19;
@inline export const V_QUIET: usize = 20;

@inline export function vc(k: usize): v128 {
  return v128.load(VC + (k << 4));
}
