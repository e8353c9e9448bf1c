// Counting sorted thresholds below s with one table read per element (SIMD build).
//
// K(s) is the order-preserving integer image of s: s < t exactly when K(s) < K(t)
// (for -0 and +0 see below). A code "c = #{j : s counts threshold j}" becomes
// c = #{j : K(s) >= TK[j]} for sorted u32 threshold keys TK. The table has one u16
// entry per bucket of the top 15 bits of K: E = start * 128 + x, start = #{j :
// TK[j] <= the bucket's lowest key}. A bucket holding one threshold, at offset T in
// the low 17 key bits, has x = 127 - (T >> 11): the top 6 offset bits o decide it,
// c = start + (o > T >> 11) = (E + o) >> 7, unless E + o ends in 127 (o == T >> 11).
// A bucket without one has x = 0 and is always decided. Bit 15 (SEARCH) marks
// buckets the caller must resolve otherwise: several thresholds, +inf/NaN (bucket
// 0x7fc0), and optionally 0x3fff, which holds -0 (K(-0) = 0x7fffffff, below +0's).
// Buckets below 0x40 hold NaN and -inf keys only, those above 0x7fc0 NaN only:
// entry 0 (code 0).

export const SEARCH: u32 = 0x8000;

@inline export function orderKey(s: f32): u32 {
  const b = reinterpret<u32>(s);
  return b ^ (<u32>(<i32>b >> 31) | 0x80000000);
}

// Entry of bucket b whose start is c; tk holds the count sorted keys (u32).
@inline function bucketEntry(tk: usize, count: u32, b: u32, c: u32): u32 {
  const lo = b << 17;
  let e = c;
  while (e < count && load<u32>(tk + (e << 2)) <= lo + 0x1ffff) e++;
  if (e == c) return c << 7;
  if (e == c + 1) return (c << 7) + 127 - ((load<u32>(tk + (c << 2)) - lo) >> 11);
  return SEARCH | (c << 7);
}

// Fills the 32768 u16 entries at table for the sorted keys tk[0..count).
export function buildBuckets(tk: usize, count: u32, table: usize, searchNegZero: bool): void {
  let c: u32 = 0;
  for (let b: u32 = 0; b < 32768; b++) {
    let entry: u32 = 0;
    if (b == 0x7fc0 || (searchNegZero && b == 0x3fff)) {
      entry = SEARCH;
    } else if (b >= 0x40 && b < 0x7fc0) {
      while (c < count && load<u32>(tk + (c << 2)) <= b << 17) c++;
      entry = bucketEntry(tk, count, b, c);
    }
    store<u16>(table + (b << 1), entry);
  }
}

// The bucket's start for key k (scalar paths).
@inline export function bucketStart(table: usize, k: u32): u32 {
  return (<u32>load<u16>(table + ((k >> 17) << 1)) >> 7) & 255;
}

// ---- SIMD ----

// Keys of 4 floats (a -0 keeps its own key).
@inline export function keys4(s: v128, sign: v128): v128 {
  return v128.xor(s, v128.or(i32x4.shr_s(s, 31), sign));
}

@inline function addrs4(k: v128, table: v128): v128 {
  return i32x4.add(i32x4.shl(i32x4.shr_u(k, 17), 1), table);
}

// No gather in wasm: one lane load per entry, 8 entries as i16 lanes.
@inline function entries8(ka: v128, kb: v128, table: v128): v128 {
  const a = addrs4(ka, table), b = addrs4(kb, table);
  let e = v128.load16_lane(<usize>i32x4.extract_lane(a, 0), i16x8.splat(0), 0);
  e = v128.load16_lane(<usize>i32x4.extract_lane(a, 1), e, 1);
  e = v128.load16_lane(<usize>i32x4.extract_lane(a, 2), e, 2);
  e = v128.load16_lane(<usize>i32x4.extract_lane(a, 3), e, 3);
  e = v128.load16_lane(<usize>i32x4.extract_lane(b, 0), e, 4);
  e = v128.load16_lane(<usize>i32x4.extract_lane(b, 1), e, 5);
  e = v128.load16_lane(<usize>i32x4.extract_lane(b, 2), e, 6);
  return v128.load16_lane(<usize>i32x4.extract_lane(b, 3), e, 7);
}

// E + o for the 8 keys ka, kb (i16 lanes): bits 7.. are the code where decided.
@inline export function sums8(ka: v128, kb: v128, table: v128): v128 {
  const o = i16x8.narrow_i32x4_u(i32x4.shr_u(i32x4.shl(ka, 15), 26), i32x4.shr_u(i32x4.shl(kb, 15), 26));
  return i16x8.add(entries8(ka, kb, table), o);
}

// Bit 15 set in lanes the table does not decide (m7 = i16x8.splat(127)).
@inline export function undecided8(sum: v128, m7: v128): v128 {
  return v128.or(i16x8.eq(v128.and(sum, m7), m7), sum);
}

// The 4 bucket starts of keys k (i32 lanes), for exact fix-ups.
@inline export function starts4(k: v128, table: v128): v128 {
  const a = addrs4(k, table);
  let e = v128.load16_lane(<usize>i32x4.extract_lane(a, 0), i32x4.splat(0), 0);
  e = v128.load16_lane(<usize>i32x4.extract_lane(a, 1), e, 2);
  e = v128.load16_lane(<usize>i32x4.extract_lane(a, 2), e, 4);
  e = v128.load16_lane(<usize>i32x4.extract_lane(a, 3), e, 6);
  return v128.and(i32x4.shr_u(e, 7), i32x4.splat(0xff));
}

// tk[start] for 4 starts (i32 lanes); tkv = splat(tk).
@inline export function thresholds4(start: v128, tkv: v128): v128 {
  const a = i32x4.add(i32x4.shl(start, 2), tkv);
  let t = v128.load32_zero(<usize>i32x4.extract_lane(a, 0));
  t = v128.load32_lane(<usize>i32x4.extract_lane(a, 1), t, 1);
  t = v128.load32_lane(<usize>i32x4.extract_lane(a, 2), t, 2);
  return v128.load32_lane(<usize>i32x4.extract_lane(a, 3), t, 3);
}
