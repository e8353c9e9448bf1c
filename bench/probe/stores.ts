// Loops with no lookup, for bench/f32-ceiling.mjs: what plain wasm stores reach.
export function heapBase(): usize {
  return __heap_base;
}
// store-only: n f32
export function fill(out: usize, n: i32): void {
  let v = i32x4.splat(0x3f800000);
  for (let i = 0; i < n; i += 16) {
    const d = out + ((<usize>i) << 2);
    v128.store(d, v);
    v128.store(d, v, 16);
    v128.store(d, v, 32);
    v128.store(d, v, 48);
  }
}
// read n/2 bytes, write n f32 (no lookup)
export function expand(packed: usize, out: usize, n: i32): void {
  for (let i = 0; i < n; i += 64) {
    const s = packed + (i >> 1),
      d = out + ((<usize>i) << 2);
    const a = v128.load(s),
      b = v128.load(s, 16);
    const c = v128.xor(a, b);
    v128.store(d, a);
    v128.store(d, b, 16);
    v128.store(d, c, 32);
    v128.store(d, a, 48);
    v128.store(d, b, 64);
    v128.store(d, c, 80);
    v128.store(d, a, 96);
    v128.store(d, b, 112);
    v128.store(d, a, 128);
    v128.store(d, b, 144);
    v128.store(d, c, 160);
    v128.store(d, a, 176);
    v128.store(d, b, 192);
    v128.store(d, c, 208);
    v128.store(d, a, 224);
    v128.store(d, b, 240);
  }
}
