// A 16-entry byte-table lookup. Every caller's indices are 0..15 (masked nibbles or 4-bit
// codes), where i8x16.relaxed_swizzle is defined to give exactly the bytes of
// i8x16.swizzle; on x86 it is one pshufb instead of a saturating add and a pshufb.
@inline export function lut16(table: v128, idx: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i8x16.relaxed_swizzle(table, idx);
  return i8x16.swizzle(table, idx);
}
