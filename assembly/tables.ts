// Code tables and decision thresholds exactly as bitsandbytes' CUDA kernels hold them
// (docs/bit-exactness.md#4-bit-code-tables, #4-bit-thresholds), as f32 bit patterns.

// Decode tables indexed by the 4-bit code. The FP4 entry for code 8 is -0.0 as in
// CUDA's fp4_dequantization_lut (Python's get_4bit_type('fp4') has +0.0 there).
export const NF4_LUT: usize = memory.data<u32>([
  0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
  0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000,
], 16);
export const FP4_LUT: usize = memory.data<u32>([
  0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000,
  0x80000000, 0xbbaaaaab, 0xbf2aaaab, 0xbf800000, 0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000,
], 16);

// NF4 thresholds T0..T14: the f32 values of the decimal literals in dQuantizeNF4.
// code = #{ j : s > T_j }. T0, T8, T12 and T14 differ from the exact midpoints.
@inline export const NF4_T0: f32 = reinterpret<f32>(<u32>0xbf591cd9);
@inline export const NF4_T1: f32 = reinterpret<f32>(<u32>0xbf1c5270);
@inline export const NF4_T2: f32 = reinterpret<f32>(<u32>0xbeeb8480);
@inline export const NF4_T3: f32 = reinterpret<f32>(<u32>0xbeadea76);
@inline export const NF4_T4: f32 = reinterpret<f32>(<u32>0xbe703cec);
@inline export const NF4_T5: f32 = reinterpret<f32>(<u32>0xbe0d38bc);
@inline export const NF4_T6: f32 = reinterpret<f32>(<u32>0xbd3a7871);
@inline export const NF4_T7: f32 = reinterpret<f32>(<u32>0x3d22faff);
@inline export const NF4_T8: f32 = reinterpret<f32>(<u32>0x3df64863);
@inline export const NF4_T9: f32 = reinterpret<f32>(<u32>0x3e5067e0);
@inline export const NF4_T10: f32 = reinterpret<f32>(<u32>0x3e9582d4);
@inline export const NF4_T11: f32 = reinterpret<f32>(<u32>0x3ec753f9);
@inline export const NF4_T12: f32 = reinterpret<f32>(<u32>0x3f006d03);
@inline export const NF4_T13: f32 = reinterpret<f32>(<u32>0x3f248daf);
@inline export const NF4_T14: f32 = reinterpret<f32>(<u32>0x3f5c89d9);

// FP4 magnitude thresholds (dQuantizeFP4 literals); magnitude bits by
// c = #{ k : |s| > T_k } are FP4_MAG[c].
@inline export const FP4_T0: f32 = reinterpret<f32>(<u32>0x3b2aaab9);
@inline export const FP4_T1: f32 = reinterpret<f32>(<u32>0x3db00000);
@inline export const FP4_T2: f32 = reinterpret<f32>(<u32>0x3e555555);
@inline export const FP4_T3: f32 = reinterpret<f32>(<u32>0x3e955555);
@inline export const FP4_T4: f32 = reinterpret<f32>(<u32>0x3ed55556);
@inline export const FP4_T5: f32 = reinterpret<f32>(<u32>0x3f155550);
@inline export const FP4_T6: f32 = reinterpret<f32>(<u32>0x3f555555);

export const QT_FP4: i32 = 0;
export const QT_NF4: i32 = 1;
