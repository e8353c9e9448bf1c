#!/usr/bin/env node
// Parity and speed check of the CUDA addon (build/bnbjs_cuda.node) against the
// WebAssembly reference (build/bnb.simd.wasm). Self-contained: loads both directly.
//
//   node native/cuda/check.mjs            # parity suite, then the benchmarks
//   node native/cuda/check.mjs --no-bench # parity only
//   node native/cuda/check.mjs --only=gemv,big # only these parity steps
//   node native/cuda/check.mjs --mock     # harness self-test without a GPU: the "device"
//                                         # is a second WebAssembly instance (small sizes)
// Every quantize/dequantize kernel must give the WebAssembly bytes exactly; the GEMV is
// compared with a float64 reference. Logs go to $OUT/check.log when OUT is set.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultDynamicMap } from '../../dist/maps.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = new Set(process.argv.slice(2));
const MOCK = argv.has('--mock');
const BENCH = !argv.has('--no-bench') && !MOCK;
const BIG = (!MOCK || argv.has('--big')) && !argv.has('--no-big');
// --only=gemv,int8: run only these parity steps (by name)
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',') ?? null;
const seed = Number(process.env.SEED ?? (Date.now() % 2 ** 31));

const logLines = [];
function log(...a) {
  const s = a.join(' ');
  console.log(s);
  logLines.push(s);
}
function flushLog() {
  if (process.env.OUT) writeFileSync(join(process.env.OUT, MOCK ? 'check-mock.log' : 'check.log'), logLines.join('\n') + '\n');
}

// ---------------------------------------------------------------- random data

function rngFrom(s) {
  let a = s >>> 0 || 1, b = 0x9e3779b9, c = 0x85ebca6b, d = 0xc2b2ae35;
  const next = () => {
    // xoshiro128**
    const r = Math.imul(Math.imul(b, 5) << 7 | Math.imul(b, 5) >>> 25, 9) >>> 0;
    const t = b << 9;
    c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = d << 11 | d >>> 21;
    return r;
  };
  for (let i = 0; i < 16; i++) next();
  const u32 = () => next();
  const uniform = () => next() / 4294967296;
  let spare = null;
  const normal = () => {
    if (spare !== null) { const s2 = spare; spare = null; return s2; }
    let u = 0, v = 0;
    while (u === 0) u = uniform();
    v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
  const int = (lo, hi) => lo + Math.floor(uniform() * (hi - lo + 1));
  const pick = (arr) => arr[Math.floor(uniform() * arr.length)];
  return { u32, uniform, normal, int, pick };
}
const rng = rngFrom(seed);

const F32 = new Float32Array(1), U32 = new Uint32Array(F32.buffer);
const bitsOf = (x) => ((F32[0] = x), U32[0]);
const fromBits = (b) => ((U32[0] = b >>> 0), F32[0]);

// f32 bits -> f16 / bf16 bits, round to nearest even (NaN -> 0x7fff)
function f32ToF16(b) {
  const ax = b & 0x7fffffff, sign = (b >>> 16) & 0x8000;
  if (ax > 0x7f800000) return 0x7fff;
  if (ax >= 0x477ff000) return sign | 0x7c00;
  if (ax < 0x38800000) return sign | ((bitsOf(Math.fround(fromBits(ax) + 0.5)) - 0x3f000000) >>> 0);
  return sign | ((((ax + 0xc8000fff) >>> 0) + ((ax >>> 13) & 1)) >>> 13 & 0xffff);
}
function f32ToBf16(b) {
  if ((b & 0x7fffffff) > 0x7f800000) return 0x7fff;
  return ((b >>> 0) + 0x7fff + ((b >>> 16) & 1)) >>> 16 & 0xffff;
}
function f16ToNumber(h) {
  const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (e ? (1 + m / 1024) * 2 ** (e - 15) : m * 2 ** -24);
}
const bf16ToNumber = (h) => fromBits(h << 16);

const ITEM = [4, 2, 2];
const DTN = ['f32', 'f16', 'bf16'];

const NF4_T = [0xbf591cd9, 0xbf1c5270, 0xbeeb8480, 0xbeadea76, 0xbe703cec, 0xbe0d38bc, 0xbd3a7871, 0x3d22faff, 0x3df64863,
  0x3e5067e0, 0x3e9582d4, 0x3ec753f9, 0x3f006d03, 0x3f248daf, 0x3f5c89d9];
const FP4_T = [0x3b2aaab9, 0x3db00000, 0x3e555555, 0x3e955555, 0x3ed55556, 0x3f155550, 0x3f555555];

// f32 values that land exactly on decision boundaries when the block max is 1
function tieValues(code) {
  const v = [];
  const add = (x) => { const b = bitsOf(x); v.push(x, fromBits(b + 1), fromBits(b - 1), -x); };
  for (const t of NF4_T) add(fromBits(t));
  for (const t of FP4_T) add(fromBits(t));
  for (let j = 0; j < 255; j++) add(Math.fround(Math.fround(code[j] + code[j + 1]) * 0.5));
  for (const t of [0.0026041667442768812, 0.2083333432674408, 0.5833333730697632]) add(Math.fround(t));
  return v.filter((x) => Number.isFinite(x) && Math.abs(x) <= 1);
}

// the default dynamic map, from the library itself (docs/bit-exactness.md#dynamic-map)
function dynamicCode() {
  return defaultDynamicMap().slice();
}
function codes() {
  const dyn = dynamicCode();
  const unsigned = new Float32Array(256);
  for (let i = 0; i < 256; i++) unsigned[i] = Math.fround(i / 255);
  const linear = new Float32Array(256); // signed linear map with an inserted zero (duplicate near-zeros)
  for (let i = 0; i < 255; i++) linear[i] = Math.fround(-1 + (2 * i) / 254);
  linear[255] = 0;
  linear.sort();
  const rnd = new Float32Array(256); // random sorted with duplicates
  for (let i = 0; i < 256; i++) rnd[i] = i % 17 === 0 && i > 0 ? NaN : Math.fround(rng.uniform() * 2 - 1);
  for (let i = 0; i < 256; i++) if (Number.isNaN(rnd[i])) rnd[i] = rnd[i - 1];
  rnd[0] = -1; rnd[255] = 1;
  rnd.sort();
  return { dynamic: dyn, unsigned, linear, random: rnd };
}
const CODES = codes();
const TIES = tieValues(CODES.dynamic);

// n elements of dtype with a mix of segment kinds (64-element segments)
function genFloats(n, dtype, { special = true, scale = 1 } = {}) {
  const out = dtype === 0 ? new Uint32Array(n) : new Uint16Array(n);
  const conv = dtype === 0 ? (b) => b >>> 0 : dtype === 1 ? f32ToF16 : f32ToBf16;
  for (let s = 0; s < n; s += 64) {
    const e = Math.min(n, s + 64);
    const r = special ? rng.uniform() : 0;
    if (r < 0.45) {
      const sc = scale * 10 ** (special ? rng.uniform() * 6 - 3 : 0);
      for (let i = s; i < e; i++) out[i] = conv(bitsOf(rng.normal() * sc));
    } else if (r < 0.53) {
      const sc = 2 ** rng.int(-140, 120);
      for (let i = s; i < e; i++) out[i] = conv(bitsOf(rng.normal() * sc));
    } else if (r < 0.61) {
      for (let i = s; i < e; i++) out[i] = dtype === 0 ? rng.u32() : rng.u32() & 0xffff;
    } else if (r < 0.67) {
      const neg = rng.uniform() < 0.3;
      for (let i = s; i < e; i++) out[i] = conv(neg && i % 3 === 0 ? 0x80000000 : 0);
    } else if (r < 0.76) {
      for (let i = s; i < e; i++) out[i] = conv(bitsOf(rng.normal()));
      for (let k = rng.int(1, 3); k > 0; k--) out[rng.int(s, e - 1)] = conv(rng.pick([0x7fc00000, 0x7f800000, 0xff800000, 0xffc00001, 0x7f800001]));
    } else if (r < 0.78) {
      for (let i = s; i < e; i++) out[i] = conv(0x7fc00000);
    } else if (r < 0.90) {
      for (let i = s; i < e; i++) out[i] = conv(bitsOf(rng.pick(TIES)));
      out[s] = conv(bitsOf(rng.uniform() < 0.5 ? 1 : -1));
    } else {
      // f32 on the 16-bit grid (the reciprocal's table) with varied exponents
      for (let i = s; i < e; i++) out[i] = conv((bitsOf(rng.normal() * 2 ** rng.int(-20, 20)) & ~0x1fff) >>> 0);
    }
  }
  return new Uint8Array(out.buffer);
}

function randomBytes(n) {
  const u = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const r = rng.u32();
    u[i] = r; if (i + 1 < n) u[i + 1] = r >>> 8; if (i + 2 < n) u[i + 2] = r >>> 16; if (i + 3 < n) u[i + 3] = r >>> 24;
  }
  return u;
}

// absmax-like f32 values with specials
function genAbsmax(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rng.uniform();
    if (r < 0.8) a[i] = Math.abs(rng.normal()) * 2 ** rng.int(-10, 10);
    else if (r < 0.85) a[i] = 0;
    else if (r < 0.88) a[i] = NaN;
    else if (r < 0.91) a[i] = Infinity;
    else if (r < 0.94) a[i] = fromBits(rng.int(1, 0x7fffff)); // subnormal
    else if (r < 0.97) a[i] = 3e38;
    else a[i] = -Math.abs(rng.normal());
  }
  return a;
}

// ---------------------------------------------------------------- the two backends

const align = (x, a) => Math.ceil(x / a) * a;
const wasmBytes = readFileSync(join(root, 'build', 'bnb.simd.wasm'));

class Wasm {
  constructor(bytes = wasmBytes) {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { abort: () => { throw new Error('wasm abort'); } } });
    this.k = inst.exports;
    // the NF4 bucket table quantize4bit reads (src/backend/wasm/runtime/exports.ts NF4_TABLE_BYTES), built once
    this.nf4 = align(this.k.heapBase(), 256);
    this.base = align(this.nf4 + 64 + 65536, 256);
    const have = this.k.memory.buffer.byteLength;
    if (this.base > have) this.k.memory.grow(Math.ceil((this.base - have) / 65536));
    this.k.prepareNf4Table(this.nf4);
    this.top = this.base;
  }
  u8() { return new Uint8Array(this.k.memory.buffer); }
  reset() { this.top = this.base; }
  alloc(bytes) {
    const p = this.top;
    this.top = align(p + Math.max(bytes, 1), 256);
    const have = this.k.memory.buffer.byteLength;
    if (this.top > have) this.k.memory.grow(Math.ceil((this.top - have) / 65536));
    return p;
  }
  put(bytes) { const p = this.alloc(bytes.byteLength); this.u8().set(bytes, p); return p; }
  get(p, n) { return this.u8().slice(p, p + n); }
}

const LUT_BYTES = 1024 + 65536 + 64;

function mockAddon() {
  const w = new Wasm();
  const k = w.k;
  const stack = [];
  const f32 = () => new Float32Array(w.k.memory.buffer);
  return {
    probe: () => ({ driverVersion: 0, runtimeVersion: 0, devices: [{ index: 0, name: 'mock (WebAssembly)', major: 0, minor: 0, totalMemory: 0, multiProcessorCount: 1 }] }),
    setDevice() {},
    malloc(bytes) { const p = w.alloc(bytes); stack.push(p); return p; },
    free(p) { if (stack[stack.length - 1] === p) { stack.pop(); w.top = p; } },
    memset(p, b, n) { w.u8().fill(b, p, p + n); },
    copyHtoD(d, s) { w.u8().set(new Uint8Array(s.buffer, s.byteOffset, s.byteLength), d); },
    copyDtoH(d, s) { new Uint8Array(d.buffer, d.byteOffset, d.byteLength).set(w.u8().subarray(s, s + d.byteLength)); },
    copyDtoD(d, s, n) { w.u8().copyWithin(d, s, s + n); },
    synchronize() {},
    eventRecord: () => performance.now(),
    eventElapsed: (a, b) => b - a,
    eventDestroy() {},
    quantize4bit: (...a) => k.quantize4bit(...a, w.nf4),
    dequantize4bit: (...a) => k.dequantize4bit(...a),
    quantizeBlockwise(src, n, dt, bs, code, q, absmax) {
      const lut = w.alloc(LUT_BYTES);
      k.prepareCodeLut(code, lut);
      k.quantizeBlockwise(src, n, dt, bs, code, lut, q, absmax);
      w.top = lut;
    },
    dequantizeBlockwise: (...a) => k.dequantizeBlockwise(...a),
    addScalarF32(p, n, v) { const x = f32(); for (let i = p / 4; i < p / 4 + n; i++) x[i] = x[i] + v; },
    subtractScalarF32(s, n, v, d) { const x = f32(); for (let i = 0; i < n; i++) x[d / 4 + i] = x[s / 4 + i] - v; },
    firstNonFinite: (...a) => k.firstNonFinite(...a),
    int8VectorwiseQuant: (...a) => k.int8VectorwiseQuant(...a),
    int8ColumnQuant: (...a) => k.int8ColumnQuant(...a),
    int8VectorwiseDequant: (...a) => k.int8VectorwiseDequant(...a),
    int8LinearMatmul: (...a) => k.int8LinearMatmul(...a),
    int8MmDequant: (...a) => k.int8MmDequant(...a),
    gemv4bit(a, m, kk, adt, packed, n, absmax, bs, qt, bias, dt, out) {
      const scratch = w.alloc(8192 + (m + 2) * Math.ceil(kk / 32) * 128); // gemvScratchBytes(m, k)
      k.gemv4bit(a, m, kk, adt, packed, 0, 0, n, absmax, bs, qt, bias, dt, out, scratch);
      w.top = scratch;
    },
    gemv4bitInt8(a, m, kk, adt, packed, n, absmax, bs, qt, bias, dt, out) {
      const G = Math.ceil(kk / 64), scratch = w.alloc(1024 + m * (G * 128 + G * 4) + G * 512); // gemv8ScratchBytes(m, k)
      k.gemv4bitInt8(a, m, kk, adt, packed, 0, 0, n, absmax, bs, qt, bias, dt, out, scratch);
      w.top = scratch;
    },
    dequantizeFp8: (...a) => k.dequantizeFp8(...a),
    dequantize4bitNested(packed, n, bs, qt, qab, code2, ab2, bs2, offset, dt, out) {
      const nb = Math.ceil(n / bs), tmp = w.alloc(nb * 4);
      k.dequantizeBlockwise(qab, nb, bs2, code2, ab2, 0, tmp);
      const x = f32();
      for (let i = tmp / 4; i < tmp / 4 + nb; i++) x[i] = x[i] + offset;
      k.dequantize4bit(packed, n, bs, qt, tmp, dt, out);
      w.top = tmp;
    },
  };
}

const require = createRequire(import.meta.url);
const addonPath = process.env.BNBJS_CUDA_ADDON ?? join(root, 'build', 'bnbjs_cuda.node');
const cuda = MOCK ? mockAddon() : require(addonPath);

class Gpu {
  constructor() { this.ptrs = []; }
  alloc(bytes) { const p = cuda.malloc(Math.max(bytes, 1)); this.ptrs.push(p); return p; }
  put(bytes) { const p = this.alloc(bytes.byteLength); cuda.copyHtoD(p, bytes); return p; }
  get(p, n) { const u = new Uint8Array(n); cuda.copyDtoH(u, p); return u; }
  // poisoned output buffer (so unwritten bytes show)
  out(bytes) { const p = this.alloc(bytes); cuda.memset(p, 0xa5, bytes); return p; }
  freeAll() { while (this.ptrs.length) cuda.free(this.ptrs.pop()); }
}

// ---------------------------------------------------------------- bookkeeping

const results = new Map(); // test -> { cases, bad, elems, notes[] }
function record(test, elems, bad, detail) {
  let r = results.get(test);
  if (!r) results.set(test, (r = { cases: 0, bad: 0, badCases: 0, elems: 0, notes: [] }));
  r.cases++;
  r.elems += elems;
  r.bad += bad;
  if (bad) {
    r.badCases++;
    if (r.notes.length < 8) r.notes.push(detail);
  }
}

// byte-wise comparison in units of `unit` bytes; returns { bad, first }
function diff(a, b, unit = 1) {
  let bad = 0, first = -1;
  const n = Math.max(a.length, b.length) / unit;
  for (let i = 0; i < n; i++) {
    let same = true;
    for (let j = 0; j < unit; j++) if (a[i * unit + j] !== b[i * unit + j]) { same = false; break; }
    if (!same) { if (first < 0) first = i; bad++; }
  }
  return { bad, first };
}
function hex(u8, unit, i) {
  let s = '';
  for (let j = unit - 1; j >= 0; j--) s += (u8[i * unit + j] ?? 0).toString(16).padStart(2, '0');
  return s;
}
function compare(test, what, ref, got, unit, ctx) {
  const d = diff(ref, got, unit);
  record(test, ref.length / unit, d.bad,
    d.bad ? `${ctx} ${what}: ${d.bad} of ${ref.length / unit} differ, first at ${d.first}: wasm ${hex(ref, unit, d.first)} cuda ${hex(got, unit, d.first)}` : '');
  return d.bad;
}

// A failed kernel can leave a sticky error that poisons the context: then stop testing.
let dead = null;
function checkAlive() {
  if (dead) return false;
  try { cuda.synchronize(); return true; } catch (e) { dead = e.message; log(`CUDA context lost: ${dead}`); return false; }
}
function guard(test, ctx, f) {
  if (dead) return;
  try {
    f();
  } catch (e) {
    record(test, 0, 1, `${ctx}: threw ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
    checkAlive();
  }
}

const BS4 = [32, 64, 128, 256, 512, 1024, 2048, 4096];
const BS8 = [64, 128, 256, 512, 1024, 2048, 4096];
const sizes = (bs) => {
  const s = new Set([1, 2, 3, bs - 1, bs, bs + 1, 2 * bs + 7, rng.int(1, 5000) * 2 + 1, rng.int(1000, MOCK ? 20000 : 200000)]);
  return [...s].filter((x) => x > 0);
};

// ---------------------------------------------------------------- parity tests

function test4bit(W, G, n, dtype, bs, qt, { offsetIn = 0, offsetOut = 0, src = null } = {}) {
  const ctx = `n=${n} ${DTN[dtype]} bs=${bs} ${qt ? 'nf4' : 'fp4'}${offsetIn ? ` src+${offsetIn}` : ''}${offsetOut ? ` out+${offsetOut}` : ''}`;
  const data = src ?? genFloats(n, dtype);
  const nb = Math.ceil(n / bs), nbytes = Math.ceil(n / 2);
  W.reset();
  const wsrc = W.put(data), wpk = W.alloc(nbytes), wab = W.alloc(nb * 4);
  W.k.quantize4bit(wsrc, n, dtype, bs, qt, wpk, wab, W.nf4);
  const refPk = W.get(wpk, nbytes), refAb = W.get(wab, nb * 4);
  const gsrcBase = G.alloc(data.length + offsetIn);
  cuda.copyHtoD(gsrcBase + offsetIn, data);
  const gpk = G.out(nbytes + 16) + offsetOut, gab = G.out(nb * 4);
  cuda.quantize4bit(gsrcBase + offsetIn, n, dtype, bs, qt, gpk, gab);
  compare('quantize4bit', 'packed', refPk, G.get(gpk, nbytes), 1, ctx);
  compare('quantize4bit', 'absmax', refAb, G.get(gab, nb * 4), 4, ctx);
  // dequantize the reference bytes with a random absmax (specials) to every dtype
  const absmax = new Uint8Array((rng.uniform() < 0.5 ? genAbsmax(nb) : new Float32Array(refAb.buffer.slice(0))).buffer);
  const wab2 = W.put(absmax);
  const gab2 = G.put(absmax), gpk2 = G.put(refPk);
  for (let odt = 0; odt < 3; odt++) {
    const ob = n * ITEM[odt];
    const wout = W.alloc(ob);
    W.k.dequantize4bit(wpk, n, bs, qt, wab2, odt, wout);
    const gout = G.out(ob + 16) + (offsetOut ? ITEM[odt] : 0);
    cuda.dequantize4bit(gpk2, n, bs, qt, gab2, odt, gout);
    compare('dequantize4bit', 'out', W.get(wout, ob), G.get(gout, ob), ITEM[odt], `${ctx} -> ${DTN[odt]}`);
  }
  G.freeAll();
}

// dequantize4bitNested (one kernel) vs the unfused path on the GPU (dequantizeBlockwise f32 +
// addScalarF32 + dequantize4bit) and vs the same three steps in WebAssembly (+ the f32(f64) add)
function testNested(W, G, n, bs, qt, bs2, offset, codeName, { offsetOut = 0, offsetPk = 0, wasm = true } = {}) {
  const ctx = `n=${n} bs=${bs} ${qt ? 'nf4' : 'fp4'} bs2=${bs2} offset=${offset} code=${codeName}${offsetPk ? ` packed+${offsetPk}` : ''}${offsetOut ? ` out+${offsetOut}` : ''}`;
  const nb = Math.ceil(n / bs), nb2 = Math.ceil(nb / bs2), nbytes = Math.ceil(n / 2);
  const pk = randomBytes(nbytes), qab = randomBytes(nb);
  const ab2 = new Uint8Array((rng.uniform() < 0.3 ? genAbsmax(nb2) : new Float32Array(nb2).map(() => Math.abs(rng.normal()) * 2 ** rng.int(-12, 4))).buffer);
  const codeBytes = new Uint8Array(CODES[codeName].buffer.slice(0));
  const gpkBase = G.alloc(nbytes + offsetPk);
  cuda.copyHtoD(gpkBase + offsetPk, pk);
  const gpk = gpkBase + offsetPk, gqab = G.put(qab), gab2 = G.put(ab2), gcode = G.put(codeBytes);
  const tmp = G.out(nb * 4);
  cuda.dequantizeBlockwise(gqab, nb, bs2, gcode, gab2, 0, tmp);
  cuda.addScalarF32(tmp, nb, offset);
  let wpk = 0, wtmp = 0;
  if (wasm) {
    W.reset();
    wpk = W.put(pk);
    const wqab = W.put(qab), wab2 = W.put(ab2), wcode = W.put(codeBytes);
    wtmp = W.alloc(nb * 4);
    W.k.dequantizeBlockwise(wqab, nb, bs2, wcode, wab2, 0, wtmp);
    const x = new Float32Array(W.k.memory.buffer, wtmp, nb);
    for (let i = 0; i < nb; i++) x[i] = x[i] + offset;
  }
  for (let odt = 0; odt < 3; odt++) {
    const ob = n * ITEM[odt];
    const gref = G.out(ob + 16) + (offsetOut ? ITEM[odt] : 0);
    cuda.dequantize4bit(gpk, n, bs, qt, tmp, odt, gref);
    const gout = G.out(ob + 16) + (offsetOut ? ITEM[odt] : 0);
    cuda.dequantize4bitNested(gpk, n, bs, qt, gqab, gcode, gab2, bs2, offset, odt, gout);
    const got = G.get(gout, ob);
    compare('dequantize4bitNested vs unfused (cuda)', 'out', G.get(gref, ob), got, ITEM[odt], `${ctx} -> ${DTN[odt]}`);
    if (wasm) {
      const wout = W.alloc(ob);
      W.k.dequantize4bit(wpk, n, bs, qt, wtmp, odt, wout);
      compare('dequantize4bitNested vs wasm', 'out', W.get(wout, ob), got, ITEM[odt], `${ctx} -> ${DTN[odt]}`);
    }
  }
  G.freeAll();
  W.reset();
}

let scalarWasm = null;
function testBlockwise(W, G, n, dtype, bs, codeName, { offsetIn = 0, dequant = true, scalar = false } = {}) {
  const code = CODES[codeName];
  const ctx = `n=${n} ${DTN[dtype]} bs=${bs} code=${codeName}${offsetIn ? ` src+${offsetIn}` : ''}`;
  const data = genFloats(n, dtype);
  const nb = Math.ceil(n / bs);
  W.reset();
  const codeBytes = new Uint8Array(code.buffer.slice(0));
  const wcode = W.put(codeBytes), wlut = W.alloc(LUT_BYTES);
  W.k.prepareCodeLut(wcode, wlut);
  const wsrc = W.put(data), wq = W.alloc(n), wab = W.alloc(nb * 4);
  W.k.quantizeBlockwise(wsrc, n, dtype, bs, wcode, wlut, wq, wab);
  const refQ = W.get(wq, n), refAb = W.get(wab, nb * 4);
  const gcode = G.put(codeBytes);
  const gsrcBase = G.alloc(data.length + offsetIn);
  cuda.copyHtoD(gsrcBase + offsetIn, data);
  const gq = G.out(n), gab = G.out(nb * 4);
  cuda.quantizeBlockwise(gsrcBase + offsetIn, n, dtype, bs, gcode, gq, gab);
  const gotQ = G.get(gq, n);
  compare('quantizeBlockwise', 'q', refQ, gotQ, 1, ctx);
  compare('quantizeBlockwise', 'absmax', refAb, G.get(gab, nb * 4), 4, ctx);
  if (scalar) {
    // the scalar build runs bitsandbytes' binary search literally (searchCode)
    const S = (scalarWasm ??= new Wasm(readFileSync(join(root, 'build', 'bnb.scalar.wasm'))));
    S.reset();
    const scode = S.put(codeBytes), slut = S.alloc(LUT_BYTES);
    S.k.prepareCodeLut(scode, slut);
    const ssrc = S.put(data), sq = S.alloc(n), sab = S.alloc(nb * 4);
    S.k.quantizeBlockwise(ssrc, n, dtype, bs, scode, slut, sq, sab);
    compare('quantizeBlockwise vs scalar build', 'q', S.get(sq, n), gotQ, 1, ctx);
    S.reset();
  }
  if (!dequant) {
    G.freeAll();
    return;
  }
  // dequantize random codes with special absmax
  const q = randomBytes(n), absmax = new Uint8Array(genAbsmax(nb).buffer);
  const wq2 = W.put(q), wab2 = W.put(absmax), gq2 = G.put(q), gab2 = G.put(absmax);
  for (let odt = 0; odt < 3; odt++) {
    const ob = n * ITEM[odt];
    const wout = W.alloc(ob);
    W.k.dequantizeBlockwise(wq2, n, bs, wcode, wab2, odt, wout);
    const gout = G.out(ob);
    cuda.dequantizeBlockwise(gq2, n, bs, gcode, gab2, odt, gout);
    compare('dequantizeBlockwise', 'out', W.get(wout, ob), G.get(gout, ob), ITEM[odt], `${ctx} -> ${DTN[odt]}`);
  }
  G.freeAll();
}

function testScalars(G) {
  for (const n of [1, 1000, 100003]) {
    const x = new Float32Array(genFloats(n, 0).buffer);
    for (const v of [Math.fround(0.123), -7.25, 0.1 /* not an f32 */, 1e30]) {
      const ref1 = new Float32Array(n), ref2 = new Float32Array(n);
      for (let i = 0; i < n; i++) { ref1[i] = x[i] + v; ref2[i] = x[i] - v; }
      const p = G.put(new Uint8Array(x.buffer)), d = G.out(n * 4);
      cuda.subtractScalarF32(p, n, v, d);
      cuda.addScalarF32(p, n, v);
      const canon = (a) => { const u = new Uint32Array(a.buffer.slice(0)); for (let i = 0; i < u.length; i++) if (Number.isNaN(fromBits(u[i]))) u[i] = 0x7fffffff; return new Uint8Array(u.buffer); };
      compare('add/subtractScalarF32', 'add', canon(new Uint8Array(ref1.buffer)), canon(G.get(p, n * 4)), 4, `n=${n} v=${v}`);
      compare('add/subtractScalarF32', 'sub', canon(new Uint8Array(ref2.buffer)), canon(G.get(d, n * 4)), 4, `n=${n} v=${v}`);
      G.freeAll();
    }
  }
}

function testNonFinite(W, G) {
  for (let dtype = 0; dtype < 3; dtype++) {
    for (const n of [1, 7, 64, 1001, 65536, MOCK ? 30000 : 3000001]) {
      for (const plant of ['none', 'one', 'two']) {
        for (const off of [0, ITEM[dtype]]) {
          const vals = dtype === 0 ? new Uint32Array(n) : new Uint16Array(n);
          const conv = dtype === 0 ? (b) => b : dtype === 1 ? f32ToF16 : f32ToBf16;
          for (let i = 0; i < n; i++) vals[i] = conv(bitsOf(rng.normal() * 100));
          if (plant !== 'none') vals[rng.int(0, n - 1)] = conv(rng.pick([0x7fc00000, 0x7f800000, 0xff800000]));
          if (plant === 'two') vals[rng.int(0, n - 1)] = conv(0xff800000);
          const bytes = new Uint8Array(vals.buffer);
          W.reset();
          const ref = W.k.firstNonFinite(W.put(bytes), n, dtype);
          const base = G.alloc(bytes.length + off);
          cuda.copyHtoD(base + off, bytes);
          const got = cuda.firstNonFinite(base + off, n, dtype);
          record('firstNonFinite', 1, ref === got ? 0 : 1, `n=${n} ${DTN[dtype]} ${plant} +${off}: wasm ${ref} cuda ${got}`);
          G.freeAll();
        }
      }
    }
  }
}

function genF16Matrix(rows, cols, scale = 1) {
  const v = new Uint16Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const kind = rng.uniform();
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      if (kind < 0.05) v[i] = rng.uniform() < 0.5 ? 0 : 0x8000;
      else v[i] = f32ToF16(bitsOf(rng.normal() * scale));
    }
    if (kind > 0.8) for (let k = rng.int(1, 3); k > 0; k--) v[r * cols + rng.int(0, cols - 1)] = rng.pick([0x7e00, 0x7c00, 0xfc00, f32ToF16(bitsOf(1000)), f32ToF16(bitsOf(-7))]);
    if (kind > 0.95) v[r * cols + rng.int(0, cols - 1)] = rng.u32() & 0xffff;
  }
  return new Uint8Array(v.buffer);
}

function testInt8(W, G) {
  const shapes = [[1, 1], [3, 7], [5, 8], [17, 64], [9, 250], [8, 256], [13, 1000], [6, 1024], [4, 4096], [3, 8192], [2, 12288],
    [2, 16384], [2, 20000], [64, 4096], [1, 33]];
  for (const [rows, cols] of shapes) {
    for (const thr of [0, 3, 6]) {
      const ctx = `${rows}x${cols} threshold=${thr}`;
      const a = genF16Matrix(rows, cols, rng.pick([0.5, 1, 3]));
      W.reset();
      const wa = W.put(a), wcb = W.alloc(rows * cols), ws = W.alloc(rows * 4);
      W.k.int8VectorwiseQuant(wa, rows, cols, thr, wcb, ws);
      const ga = G.put(a), gcb = G.out(rows * cols), gs = G.out(rows * 4);
      cuda.int8VectorwiseQuant(ga, rows, cols, thr, gcb, gs);
      compare('int8VectorwiseQuant', 'cb', W.get(wcb, rows * cols), G.get(gcb, rows * cols), 1, ctx);
      compare('int8VectorwiseQuant', 'stats', W.get(ws, rows * 4), G.get(gs, rows * 4), 4, ctx);
      if (rows * cols <= 300000) {
        const wcat = W.alloc(rows * cols), wcs = W.alloc(cols * 4);
        W.k.int8ColumnQuant(wa, rows, cols, thr, wcat, wcs);
        const gcat = G.out(rows * cols), gcs = G.out(cols * 4);
        cuda.int8ColumnQuant(ga, rows, cols, thr, gcat, gcs);
        compare('int8ColumnQuant', 'cat', W.get(wcat, rows * cols), G.get(gcat, rows * cols), 1, ctx);
        compare('int8ColumnQuant', 'stats', W.get(wcs, cols * 4), G.get(gcs, cols * 4), 4, ctx);
      }
      G.freeAll();
    }
    // misaligned input (generic path)
    if (cols <= 4096) {
      const a = genF16Matrix(rows, cols);
      W.reset();
      const wa = W.put(a), wcb = W.alloc(rows * cols), ws = W.alloc(rows * 4);
      W.k.int8VectorwiseQuant(wa, rows, cols, 0, wcb, ws);
      const base = G.alloc(a.length + 2);
      cuda.copyHtoD(base + 2, a);
      const gcb = G.out(rows * cols), gs = G.out(rows * 4);
      cuda.int8VectorwiseQuant(base + 2, rows, cols, 0, gcb, gs);
      compare('int8VectorwiseQuant', 'cb', W.get(wcb, rows * cols), G.get(gcb, rows * cols), 1, `${rows}x${cols} a+2`);
      G.freeAll();
    }
  }
  // vectorwise dequant: NaN payloads are not deterministic in WebAssembly, so NaN == NaN here
  for (const [rows, cols] of [[1, 1], [7, 13], [16, 64], [33, 1000], [128, 4096]]) {
    const a = randomBytes(rows * cols), st = new Uint8Array(genAbsmax(rows).buffer);
    W.reset();
    const wo = W.alloc(rows * cols * 4);
    W.k.int8VectorwiseDequant(W.put(a), rows, cols, W.put(st), wo);
    const go = G.out(rows * cols * 4);
    cuda.int8VectorwiseDequant(G.put(a), rows, cols, G.put(st), go);
    const ref = new Uint32Array(W.get(wo, rows * cols * 4).buffer), got = new Uint32Array(G.get(go, rows * cols * 4).buffer);
    let nanPayload = 0;
    for (let i = 0; i < ref.length; i++) {
      if (Number.isNaN(fromBits(ref[i])) && Number.isNaN(fromBits(got[i])) && ref[i] !== got[i]) { nanPayload++; ref[i] = got[i]; }
    }
    compare('int8VectorwiseDequant', 'out', new Uint8Array(ref.buffer), new Uint8Array(got.buffer), 4, `${rows}x${cols}`);
    if (nanPayload) results.get('int8VectorwiseDequant').nanPayload = (results.get('int8VectorwiseDequant').nanPayload ?? 0) + nanPayload;
    G.freeAll();
  }
  // int8 matmul: exact int32
  const mm = [[1, 4, 1], [5, 8, 3], [37, 64, 53], [128, 512, 512], [128, 499, 512], [33, 63, 17], [1, 4096, 1000], [256, 4096, 1024],
    [100, 1, 7], [3, 4, 1000], [17, 1024, 255]];
  for (const [m, k, n] of mm) {
    const a = randomBytes(m * k), b = randomBytes(n * k);
    if (rng.uniform() < 0.5) { a.fill(0x80, 0, Math.min(a.length, k)); b.fill(0x80, 0, Math.min(b.length, k)); } // -128 rows
    W.reset();
    const wo = W.alloc(m * n * 4);
    W.k.int8LinearMatmul(W.put(a), m, k, W.put(b), n, wo);
    const go = G.out(m * n * 4);
    guard('int8LinearMatmul', `${m}x${k}x${n}`, () => {
      cuda.int8LinearMatmul(G.put(a), m, k, G.put(b), n, go);
      compare('int8LinearMatmul', 'out', W.get(wo, m * n * 4), G.get(go, m * n * 4), 4, `m=${m} k=${k} n=${n}`);
    });
    G.freeAll();
  }
  // mm_dequant: every bias kind and output dtype
  for (const [rows, cols] of [[1, 1], [3, 7], [16, 64], [33, 1000], [64, 1024], [5, 8]]) {
    const acc = new Int32Array(rows * cols);
    for (let i = 0; i < acc.length; i++) {
      const r = rng.uniform();
      acc[i] = r < 0.9 ? Math.round(rng.normal() * 2 ** rng.int(4, 24)) : r < 0.95 ? rng.pick([0, 2147483647, -2147483648, 1, -1]) : rng.u32() | 0;
    }
    const rs = new Float32Array(rows), cs = new Float32Array(cols);
    for (let i = 0; i < rows; i++) rs[i] = rng.uniform() < 0.95 ? Math.abs(rng.normal()) * 2 ** rng.int(-4, 6) : rng.pick([0, Infinity, -1.5, NaN]);
    for (let i = 0; i < cols; i++) cs[i] = rng.uniform() < 0.95 ? Math.abs(rng.normal()) * 2 ** rng.int(-4, 6) : rng.pick([0, Infinity, -2.5]);
    const biasF32 = new Float32Array(cols), biasH = new Uint16Array(cols), biasBf = new Uint16Array(cols);
    for (let i = 0; i < cols; i++) { const v = rng.normal() * 10; biasF32[i] = v; biasH[i] = f32ToF16(bitsOf(v)); biasBf[i] = f32ToBf16(bitsOf(v)); }
    if (cols > 3) { biasH[0] = 0x7c00; biasF32[1] = NaN; biasBf[2] = 0xff80; }
    const accB = new Uint8Array(acc.buffer), rsB = new Uint8Array(rs.buffer), csB = new Uint8Array(cs.buffer);
    W.reset();
    const wa = W.put(accB), wr = W.put(rsB), wc = W.put(csB);
    const ga = G.put(accB), gr = G.put(rsB), gc = G.put(csB);
    const biases = [null, new Uint8Array(biasH.buffer), new Uint8Array(biasF32.buffer), new Uint8Array(biasBf.buffer)];
    for (let bk = 0; bk < 4; bk++) {
      const wb = bk ? W.put(biases[bk]) : 0, gb = bk ? G.put(biases[bk]) : 0;
      for (let odt = 0; odt < 3; odt++) {
        const ob = rows * cols * ITEM[odt];
        const wo = W.alloc(ob);
        W.k.int8MmDequant(wa, rows, cols, wr, wc, wb, bk, odt, wo);
        const go = G.out(ob);
        cuda.int8MmDequant(ga, rows, cols, gr, gc, gb, bk, odt, go);
        compare('int8MmDequant', 'out', W.get(wo, ob), G.get(go, ob), ITEM[odt], `${rows}x${cols} bias=${bk} -> ${DTN[odt]}`);
      }
    }
    G.freeAll();
  }
}

function testFp8(W, G) {
  const cases = [
    // rows, cols, row0, blockRows, blockCols (scale shape derived)
    [300, 256, 0, 128, 128], [300, 256, 128, 128, 128], [7, 130, 3, 128, 128], [64, 1024, 0, 1, 128], [33, 100, 0, 1, 100],
    [16, 48, 0, 16, 48], [50, 96, 5, 7, 32], [1, 16, 0, 1, 16], [256, 4096, 0, 128, 128],
  ];
  for (const [rows, cols, row0, br, bc] of cases) {
    const scaleRows = Math.ceil((row0 + rows) / br), scaleCols = Math.ceil(cols / bc);
    const w = randomBytes(rows * cols);
    const sc = new Float32Array(scaleRows * scaleCols);
    for (let i = 0; i < sc.length; i++) sc[i] = rng.uniform() < 0.95 ? rng.normal() * 2 ** rng.int(-20, 10) : rng.pick([0, NaN, Infinity, 3e38]);
    const scB = new Uint8Array(sc.buffer);
    W.reset();
    const ww = W.put(w), ws = W.put(scB), gw = G.put(w), gs = G.put(scB);
    for (let odt = 0; odt < 3; odt++) {
      const ob = rows * cols * ITEM[odt];
      const wo = W.alloc(ob);
      W.k.dequantizeFp8(ww, rows, cols, row0, ws, scaleCols, br, bc, odt, wo);
      const go = G.out(ob);
      cuda.dequantizeFp8(gw, rows, cols, row0, gs, scaleCols, br, bc, odt, go);
      compare('dequantizeFp8', 'out', W.get(wo, ob), G.get(go, ob), ITEM[odt], `${rows}x${cols} row0=${row0} block=${br}x${bc} -> ${DTN[odt]}`);
    }
    G.freeAll();
  }
}

function toNumbers(u8, dt) {
  if (dt === 0) return Array.from(new Float32Array(u8.buffer.slice(0)));
  const h = new Uint16Array(u8.buffer.slice(0));
  return Array.from(h, dt === 1 ? f16ToNumber : bf16ToNumber);
}
const EPS = [2 ** -24, 2 ** -11, 2 ** -8]; // half an ulp at 1, per output dtype

const gemvStats = [];

// bitsandbytes' test_gemv_4bit bars (test/helpers/gemv-bars.ts): each metric < mean + 7 sigma
const GEMV_BARS = {
  0: { small: [[2e-8, 2e-9], [8e-7, 1.2e-6], [6e-8, 2e-8]], large: [[1e-8, 2e-9], [5e-7, 1.6e-7], [5e-8, 1e-8]] },
  1: { small: [[5.2e-5, 6.3e-6], [2.4e-4, 3.57e-4], [4.2e-4, 6.87e-5]], large: [[1.8e-5, 2.8e-6], [1.0e-4, 1.97e-4], [1.7e-4, 1.79e-5]] },
  2: { small: [[4.2e-4, 5.9e-5], [4.1e-3, 1.153e-2], [3.7e-3, 5.56e-4]], large: [[1.4e-4, 9.5e-6], [1.2e-3, 6.79e-4], [1.0e-3, 1.37e-4]] },
};
function gemvBars(dt, dim) {
  const [e, r, m] = GEMV_BARS[dt][dim <= 512 ? 'small' : 'large'];
  return { err1: e[0] + 7 * e[1], relerr1: r[0] + 7 * r[1], maxerr1: m[0] + 7 * m[1] };
}
// err1 = mean |C1 - C2|, relerr1 = mean |C1 - C2| / (|C1| + 1e-5), maxerr1 = max, each / sqrt(dim)
function gemvMetrics(c1, c2, dim) {
  let err = 0, rel = 0, max = 0;
  for (let i = 0; i < c1.length; i++) {
    const d = Math.abs(c1[i] - c2[i]);
    err += d;
    rel += d / (Math.abs(c1[i]) + 1e-5);
    max = Math.max(max, d);
  }
  const s = Math.sqrt(dim);
  return { err1: err / c1.length / s, relerr1: rel / c1.length / s, maxerr1: max / s };
}

// The documented orders (docs/bit-exactness.md, "4-bit GEMV") written out literally in JS: every
// + and x of two float32 values is exact in float64 and rounded once by Math.fround, as one float32
// operation. Outputs as bytes of the output dtype (NaN canonical, as every backend stores it).
const fr = Math.fround;
const LUT4 = [
  [0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000,
    0x80000000, 0xbbaaaaab, 0xbf2aaaab, 0xbf800000, 0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000].map(fromBits),
  [0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
    0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000].map(fromBits),
];
function roundEven(v) {
  const f = Math.floor(v), d = v - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
}
function storeBytes(vals, odt) {
  const out = odt === 0 ? new Uint32Array(vals.length) : new Uint16Array(vals.length);
  for (let i = 0; i < vals.length; i++) {
    const b = bitsOf(vals[i]);
    out[i] = odt === 0 ? (Number.isNaN(vals[i]) ? 0x7fffffff : b) : odt === 1 ? f32ToF16(b) : f32ToBf16(b);
  }
  return new Uint8Array(out.buffer);
}
function lanesTree(r) {
  for (let s = 16; s >= 1; s >>= 1) for (let l = 0; l < s; l++) r[l] = fr(r[l] + r[l + s]);
  return r[0];
}
// nibble q of flat weight element p
const nib = (packed, p) => ((p & 1) === 0 ? packed[Math.floor(p / 2)] >> 4 : packed[Math.floor(p / 2)] & 15);
function refExact(A, m, k, packed, n, absmax, bs, qt, bias, odt) {
  const lut = LUT4[qt], vals = new Float64Array(m * n), acc = new Float64Array(128), r = new Float64Array(32);
  for (let j = 0; j < n; j++) {
    const w = new Float64Array(k);
    for (let t = 0; t < k; t++) { const p = j * k + t; w[t] = fr(lut[nib(packed, p)] * absmax[Math.floor(p / bs)]); }
    for (let i = 0; i < m; i++) {
      acc.fill(0);
      for (let t = 0; t < k; t++) {
        const slot = ((t >> 5) & 31) * 4 + ((t & 7) >> 1);
        acc[slot] = fr(acc[slot] + fr(A[i * k + t] * w[t]));
      }
      for (let l = 0; l < 32; l++) r[l] = fr(fr(acc[4 * l] + acc[4 * l + 1]) + fr(acc[4 * l + 2] + acc[4 * l + 3]));
      let v = lanesTree(r);
      if (bias) v = fr(v + bias[j]);
      vals[i * n + j] = v;
    }
  }
  return storeBytes(vals, odt);
}
function refInt8(A, m, k, packed, n, absmax, bs, qt, bias, odt) {
  const wq = LUT4[qt].map((c) => roundEven(fr(c * 127)));
  const G = Math.ceil(k / 64), vals = new Float64Array(m * n), r = new Float64Array(32);
  // A quantized per group
  const q = new Int32Array(m * k), d = new Float64Array(m * G);
  for (let i = 0; i < m; i++)
    for (let g = 0; g < G; g++) {
      const k0 = g * 64, k1 = Math.min(k, k0 + 64);
      let amax = 0, bad = false;
      for (let t = k0; t < k1; t++) { const a = Math.abs(A[i * k + t]); if (!(a <= 3.4028234663852886e38)) bad = true; amax = Math.max(amax, a); }
      if (bad) { d[i * G + g] = NaN; continue; }
      if (amax < 2 ** -126) { d[i * G + g] = 0; continue; }
      const rr = fr(127 / amax);
      for (let t = k0; t < k1; t++) {
        const v = fr(A[i * k + t] * rr);
        q[i * k + t] = Number.isNaN(v) ? 0 : Math.max(-127, Math.min(127, roundEven(v)));
      }
      d[i * G + g] = fr(amax / 16129);
    }
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      r.fill(0);
      for (let g = 0; g < G; g++) {
        const k0 = g * 64, k1 = Math.min(k, k0 + 64), dg = d[i * G + g];
        let t = 0, isum = 0, cur = -1, am = 0;
        for (let kk = k0; kk < k1; kk++) {
          const p = j * k + kk, b = Math.floor(p / bs);
          if (b !== cur) {
            if (cur >= 0) t = fr(t + fr(isum * fr(am * dg)));
            cur = b; am = absmax[b]; isum = 0;
          }
          isum += q[i * k + kk] * wq[nib(packed, p)];
        }
        t = fr(t + fr(isum * fr(am * dg)));
        r[g & 31] = fr(r[g & 31] + t);
      }
      let v = lanesTree(r);
      if (bias) v = fr(v + bias[j]);
      vals[i * n + j] = v;
    }
  return storeBytes(vals, odt);
}

const GEMV_NAME = {
  exact: 'gemv4bit exact, M < 64 (bytes vs the documented order, JS)',
  exactWasm: 'gemv4bit exact, M < 64 (bytes vs wasm)',
  big: 'gemv4bit M >= 64, cuBLASLt (float64 bars)',
  int8: 'gemv4bitInt8 (bytes vs the documented order, JS)',
  int8Wasm: 'gemv4bitInt8 (bytes vs wasm)',
};
// whether build/bnb.simd.wasm follows the documented order yet (its gemv4bit = the JS reference on a probe)
let wasmOrder = null;
const wasmInt8 = typeof new Wasm().k.gemv4bitInt8 === 'function';

// One gemv4bit / gemv4bitInt8 case. mode: 'exact' (M < 64: the WebAssembly bytes), 'big' (M >= 64:
// bitsandbytes' bars against float64, and the share of outputs equal to WebAssembly's) or 'int8' (bytes).
// opts: special (NaN/Inf/random bits in A), wild (random absmax with specials), offA / offP (misaligned A /
// packed: the generic kernels).
function testGemv(W, G, mode, m, k, n, adt, bs, qt, withBias, { special = false, wild = false, offA = 0, offP = 0 } = {}) {
  const odt = adt;
  const ctx = `m=${m} k=${k} n=${n} ${DTN[adt]} bs=${bs} ${qt ? 'nf4' : 'fp4'}${withBias ? ' bias' : ''}${special ? ' special' : ''}${wild ? ' wild-absmax' : ''}${offA ? ` a+${offA}` : ''}${offP ? ` packed+${offP}` : ''}`;
  const nw = n * k;
  W.reset();
  const wdata = genFloats(Math.max(nw, 1), 0, { special: false, scale: 1 / Math.sqrt(Math.max(k, 1)) });
  const wsrc = W.put(wdata), nb = Math.max(1, Math.ceil(nw / bs)), pbytes = Math.ceil(nw / 2) + 16;
  const pk = W.alloc(pbytes), ab = W.alloc(nb * 4);
  if (nw > 0) W.k.quantize4bit(wsrc, nw, 0, bs, qt, pk, ab, W.nf4);
  if (wild) W.u8().set(new Uint8Array(genAbsmax(nb).buffer), ab);
  const a = genFloats(Math.max(m * k, 1), adt, { special }).subarray(0, m * k * ITEM[adt]);
  const bias = new Float32Array(n);
  for (let j = 0; j < n; j++) bias[j] = rng.normal();
  const biasB = new Uint8Array(bias.buffer);
  const packedBytes = W.get(pk, pbytes), absmaxBytes = W.get(ab, nb * 4);
  const fn = mode === 'int8' ? 'gemv4bitInt8' : 'gemv4bit';
  const wa = W.put(a), wb = withBias ? W.put(biasB) : 0, wo = W.alloc(m * n * ITEM[odt]);
  const scratch = W.alloc(8192 + (m + 2) * Math.ceil(k / 32) * 128 + m * (k + 64) + m * Math.ceil(k / 64) * 8 + 4096); // gemvScratchBytes + int8 room
  if (typeof W.k[fn] === 'function') W.k[fn](wa, m, k, adt, pk, 0, 0, n, ab, bs, qt, wb, odt, wo, scratch);
  const wasmOut = W.get(wo, m * n * ITEM[odt]);
  const ga = G.alloc(m * k * ITEM[adt] + offA) + offA, gp = G.alloc(pbytes + offP) + offP;
  if (m * k) cuda.copyHtoD(ga, a);
  cuda.copyHtoD(gp, packedBytes);
  const gab = G.put(absmaxBytes), gb = withBias ? G.put(biasB) : 0;
  const go = G.out(m * n * ITEM[odt]);
  cuda[fn](ga, m, k, adt, gp, n, gab, bs, qt, gb, odt, go);
  const gpuOut = G.get(go, m * n * ITEM[odt]);
  if (mode !== 'big') {
    const A = toNumbers(a, adt), pkU8 = packedBytes, amF = new Float32Array(absmaxBytes.buffer.slice(0));
    const ref = (mode === 'int8' ? refInt8 : refExact)(A, m, k, pkU8, n, amF, bs, qt, withBias ? bias : null, odt);
    if (mode !== 'probe') compare(GEMV_NAME[mode], 'out', ref, gpuOut, ITEM[odt], ctx);
    if (mode === 'probe') {
      wasmOrder = diff(ref, wasmOut, ITEM[odt]).bad === 0;
      log(wasmOrder ? 'gemv4bit: build/bnb.simd.wasm follows the documented order: CUDA compared with it too' : `gemv4bit: build/bnb.simd.wasm does not follow the documented order yet (${ctx}): CUDA compared with the JS reference only`);
    } else if ((mode === 'int8' && wasmInt8) || (mode === 'exact' && wasmOrder)) compare(GEMV_NAME[mode + 'Wasm'], 'out', wasmOut, gpuOut, ITEM[odt], ctx);
  } else {
    const wdq = W.alloc(nw * 4);
    W.k.dequantize4bit(pk, nw, bs, qt, ab, 0, wdq);
    const Wf = new Float32Array(W.get(wdq, nw * 4).buffer);
    const A = toNumbers(a, adt), got = toNumbers(gpuOut, odt), ws = toNumbers(wasmOut, odt);
    const ref = new Float64Array(m * n);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let t = 0; t < k; t++) acc += A[i * k + t] * Wf[j * k + t];
        ref[i * n + j] = acc + (withBias ? bias[j] : 0);
      }
    const dim = Math.max(k, 128), bars = gemvBars(adt, k);
    const mg = gemvMetrics(ref, got, dim), mw = gemvMetrics(ref, ws, dim);
    const over = ['err1', 'relerr1', 'maxerr1'].filter((key) => !(mg[key] < bars[key]));
    let same = 0;
    for (let i = 0; i < m * n; i++) if (Object.is(got[i], ws[i])) same++;
    record(GEMV_NAME.big, m * n, over.length ? 1 : 0, `${ctx}: over the bar: ${over.map((key) => `${key} ${mg[key].toExponential(2)} >= ${bars[key].toExponential(2)}`).join(', ')}`);
    gemvStats.push({ ctx, cuda: mg, wasm: mw, bars, same: same / (m * n) });
  }
  G.freeAll();
}

function gemvSuite(W, G) {
  // does the WebAssembly build follow the documented order yet? (a probe against the JS reference)
  testGemv(W, G, 'probe', 3, 4096, 16, 0, 64, 1, true);
  const Ms = [1, 2, 3, 4, 7, 8, 16, 17, 40, 63];
  const Ks = [32, 64, 96, 4096, 33, 100, 48, 1];
  const Ns = [1, 5, 300];
  // every M x K, the rest drawn (three draws each), A with specials in a third of them
  for (const m of Ms) for (const k of Ks) for (let r = 0; r < 3; r++) {
    const n = rng.pick(Ns), adt = rng.int(0, 2), bs = rng.pick(BS4), qt = rng.int(0, 1), bias = rng.uniform() < 0.5;
    const opts = { special: r === 2, wild: r === 1 && rng.uniform() < 0.5 };
    guard(GEMV_NAME.exact, `m=${m} k=${k}`, () => testGemv(W, G, 'exact', m, k, n, adt, bs, qt, bias, opts));
  }
  // every dtype x quant type x blocksize on the aligned kernel and the generic one
  for (let adt = 0; adt < 3; adt++) for (const qt of [0, 1]) for (const bs of BS4) {
    const m = rng.pick(Ms);
    guard(GEMV_NAME.exact, 'grid', () => testGemv(W, G, 'exact', m, 1024, 300, adt, bs, qt, rng.uniform() < 0.5));
    guard(GEMV_NAME.exact, 'grid odd K', () => testGemv(W, G, 'exact', m, 999, 5, adt, bs, qt, rng.uniform() < 0.5));
  }
  // K = 0 (the bias or 0), non-power-of-two blocksizes, misaligned A and packed (generic kernels)
  for (let adt = 0; adt < 3; adt++) {
    guard(GEMV_NAME.exact, 'k=0', () => testGemv(W, G, 'exact', 3, 0, 5, adt, 64, 1, true));
    guard(GEMV_NAME.exact, 'k=0', () => testGemv(W, G, 'exact', 1, 0, 5, adt, 64, 1, false));
    guard(GEMV_NAME.exact, 'bs=100', () => testGemv(W, G, 'exact', 4, 256, 7, adt, 100, 1, true));
    guard(GEMV_NAME.exact, 'bs=48', () => testGemv(W, G, 'exact', 2, 96, 7, adt, 48, 0, false));
    guard(GEMV_NAME.exact, 'misaligned a', () => testGemv(W, G, 'exact', 5, 256, 9, adt, 64, 1, true, { offA: ITEM[adt] }));
    guard(GEMV_NAME.exact, 'misaligned packed', () => testGemv(W, G, 'exact', 3, 256, 9, adt, 64, 0, false, { offP: 1 }));
  }
  // the benchmark's kind of shape, smaller N
  guard(GEMV_NAME.exact, 'big', () => testGemv(W, G, 'exact', 1, 8192, MOCK ? 64 : 2048, 2, 64, 1, false));
  guard(GEMV_NAME.exact, 'big', () => testGemv(W, G, 'exact', 4, 8192, MOCK ? 32 : 1024, 1, 64, 1, true));
  guard(GEMV_NAME.exact, 'big', () => testGemv(W, G, 'exact', 16, 4096, MOCK ? 32 : 512, 0, 64, 0, false));
  guard(GEMV_NAME.exact, 'big', () => testGemv(W, G, 'exact', 40, 12288, MOCK ? 8 : 70, 2, 128, 1, true));

  // M >= 64: cuBLASLt (float64 bars)
  for (const m of [64, 100, MOCK ? 80 : 512]) for (const k of [64, 1024, 100]) for (let adt = 0; adt < 3; adt++) {
    const n = rng.pick([5, 300]), bias = rng.uniform() < 0.5;
    guard(GEMV_NAME.big, `m=${m} k=${k}`, () => testGemv(W, G, 'big', m, k, n, adt, rng.pick([64, 128, 32]), rng.int(0, 1), bias));
  }

  // int8-activation mode: bytes vs the WebAssembly kernel, any M
  if (!wasmInt8) log('int8: wasm comparison skipped (wasm kernel missing): compared with the JS reference only');
  for (const m of [1, 2, 3, 5, 8, 16, 17, 40, 64, 100]) for (const k of [32, 64, 96, 4096, 33, 100, 48, 1, 0]) {
    const n = rng.pick(Ns), adt = rng.int(0, 2), bs = rng.pick(BS4), qt = rng.int(0, 1), bias = rng.uniform() < 0.5;
    const opts = { special: rng.uniform() < 0.3, wild: rng.uniform() < 0.2 };
    guard(GEMV_NAME.int8, `m=${m} k=${k}`, () => testGemv(W, G, 'int8', m, k, n, adt, bs, qt, bias, opts));
  }
  for (let adt = 0; adt < 3; adt++) for (const qt of [0, 1]) for (const bs of BS4) {
    guard(GEMV_NAME.int8, 'grid', () => testGemv(W, G, 'int8', rng.pick([1, 4, 16]), 1024, 300, adt, bs, qt, rng.uniform() < 0.5));
    guard(GEMV_NAME.int8, 'grid odd K', () => testGemv(W, G, 'int8', 3, 999, 5, adt, bs, qt, true));
  }
  for (let adt = 0; adt < 3; adt++) {
    guard(GEMV_NAME.int8, 'bs=100', () => testGemv(W, G, 'int8', 4, 256, 7, adt, 100, 1, true));
    guard(GEMV_NAME.int8, 'misaligned packed', () => testGemv(W, G, 'int8', 3, 256, 9, adt, 64, 0, false, { offP: 1 }));
  }
  guard(GEMV_NAME.int8, 'big', () => testGemv(W, G, 'int8', 1, 8192, MOCK ? 64 : 2048, 2, 64, 1, false));
  guard(GEMV_NAME.int8, 'big', () => testGemv(W, G, 'int8', 16, 4096, MOCK ? 32 : 512, 1, 64, 0, true));
}

function testBig(W, G) {
  // >= 100M elements: NF4 bf16 bs64 quantize + dequantize, odd n
  const n = 100_000_001, dtype = 2, bs = 64;
  const t0 = performance.now();
  const vals = new Uint16Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = rng.u32();
    // bf16 of a random normal-ish value: sign, exponent near 127, random mantissa; a few specials
    vals[i] = ((r & 0x8000) | ((120 + (r >>> 16) % 10) << 7) | (r & 0x7f));
    if (i + 1 < n) vals[i + 1] = ((r >>> 1 & 0x8000) | ((118 + (r >>> 20) % 12) << 7) | (r >>> 7 & 0x7f));
  }
  for (let k = 0; k < 1000; k++) vals[rng.int(0, n - 1)] = rng.pick([0x7fc0, 0x7f80, 0xff80, 0, 0x8000]);
  for (let k = 0; k < 200; k++) { const s = rng.int(0, n / 64 - 1) * 64; vals.fill(0, s, s + 64); }
  const data = new Uint8Array(vals.buffer);
  const nb = Math.ceil(n / bs), nbytes = Math.ceil(n / 2);
  W.reset();
  const wsrc = W.put(data), wpk = W.alloc(nbytes), wab = W.alloc(nb * 4);
  W.k.quantize4bit(wsrc, n, dtype, bs, 1, wpk, wab, W.nf4);
  const gsrc = G.put(data), gpk = G.out(nbytes), gab = G.out(nb * 4);
  cuda.quantize4bit(gsrc, n, dtype, bs, 1, gpk, gab);
  const ctx = `n=${n} bf16 bs=64 nf4`;
  compare('big (>=100M)', 'packed', W.get(wpk, nbytes), G.get(gpk, nbytes), 1, ctx);
  compare('big (>=100M)', 'absmax', W.get(wab, nb * 4), G.get(gab, nb * 4), 4, ctx);
  const wout = wsrc; // reuse: same size as the bf16 input
  W.k.dequantize4bit(wpk, n, bs, 1, wab, 2, wout);
  const gout = G.out(n * 2);
  cuda.dequantize4bit(gpk, n, bs, 1, gab, 2, gout);
  compare('big (>=100M)', 'dequantized', W.get(wout, n * 2), G.get(gout, n * 2), 2, ctx + ' -> bf16');
  G.freeAll();
  W.reset();
  // 8-bit blockwise, f16, 64M + 3 elements
  const n8 = 64 * 1024 * 1024 + 3;
  const d8 = genFloats(n8, 1, { special: false });
  const wcode = W.put(new Uint8Array(CODES.dynamic.buffer.slice(0))), wlut = W.alloc(LUT_BYTES);
  W.k.prepareCodeLut(wcode, wlut);
  const w8 = W.put(d8), wq = W.alloc(n8), wab8 = W.alloc(Math.ceil(n8 / 256) * 4);
  W.k.quantizeBlockwise(w8, n8, 1, 256, wcode, wlut, wq, wab8);
  const gcode = G.put(new Uint8Array(CODES.dynamic.buffer.slice(0))), g8 = G.put(d8), gq = G.out(n8), gab8 = G.out(Math.ceil(n8 / 256) * 4);
  cuda.quantizeBlockwise(g8, n8, 1, 256, gcode, gq, gab8);
  compare('big (>=100M)', 'q8', W.get(wq, n8), G.get(gq, n8), 1, `n=${n8} f16 bs=256`);
  G.freeAll();
  W.reset();
  log(`big tests: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

function parity() {
  const W = new Wasm(), G = new Gpu();
  const t0 = performance.now();
  const step = (name, f) => {
    if (dead || (ONLY && !ONLY.includes(name))) return;
    const s = performance.now();
    try { f(); } catch (e) { record(name, 0, 1, `threw: ${e.stack?.split('\n').slice(0, 4).join(' | ')}`); }
    try { G.freeAll(); } catch (e) { G.ptrs.length = 0; }
    checkAlive();
    log(`  ${name}: ${((performance.now() - s) / 1000).toFixed(1)} s`);
  };
  if (!MOCK) step('misaligned typed pointers throw', () => {
    const p = G.alloc(1024), o = G.alloc(1024);
    const expectThrow = (what, f) => {
      let msg = null;
      try { f(); } catch (e) { msg = e.message; }
      record('misaligned pointers rejected', 1, msg && /aligned/.test(msg) ? 0 : 1, `${what}: ${msg ?? 'did not throw'}`);
    };
    expectThrow('quantize4bit f32 src+1', () => cuda.quantize4bit(p + 1, 10, 0, 64, 1, o, o + 512));
    expectThrow('dequantize4bit f16 out+1', () => cuda.dequantize4bit(p, 10, 64, 1, o + 512, 1, o + 1));
    expectThrow('quantizeBlockwise absmax+2', () => cuda.quantizeBlockwise(p, 10, 1, 64, p, o, o + 2));
    expectThrow('int8MmDequant a+2', () => cuda.int8MmDequant(p + 2, 1, 2, o, o, 0, 0, 1, o));
    expectThrow('gemv4bit out+1', () => cuda.gemv4bit(p, 1, 64, 2, o, 1, o, 64, 1, 0, 2, p + 1));
  });
  step('4-bit', () => {
    for (let dtype = 0; dtype < 3; dtype++) for (const qt of [0, 1]) for (const bs of BS4) for (const n of sizes(bs)) {
      guard('quantize4bit', `n=${n} ${DTN[dtype]} bs=${bs}`, () => test4bit(W, G, n, dtype, bs, qt));
    }
    // other paths: misaligned pointers, non-power-of-two and small blocksizes (generic kernels)
    for (let dtype = 0; dtype < 3; dtype++) for (const qt of [0, 1]) {
      guard('quantize4bit', 'misaligned', () => test4bit(W, G, 10001, dtype, 64, qt, { offsetIn: ITEM[dtype] }));
      guard('quantize4bit', 'misaligned out', () => test4bit(W, G, 10001, dtype, 64, qt, { offsetOut: 1 }));
      for (const bs of [2, 6, 16, 48, 100, 8192]) guard('quantize4bit', `bs=${bs}`, () => test4bit(W, G, 9999, dtype, bs, qt));
    }
  });
  step('8-bit blockwise', () => {
    for (let dtype = 0; dtype < 3; dtype++) for (const bs of BS8) for (const n of sizes(bs)) for (const c of Object.keys(CODES)) {
      if (c !== 'dynamic' && n > 20000) continue;
      guard('quantizeBlockwise', `n=${n} ${DTN[dtype]} bs=${bs} ${c}`, () => testBlockwise(W, G, n, dtype, bs, c));
    }
    // n >= 2^22: the bucket-table path of the CUDA kernel
    const big = MOCK ? 70001 : (1 << 22) + 17;
    for (let dtype = 0; dtype < 3; dtype++) for (const bs of [64, 256, 4096]) for (const c of Object.keys(CODES)) {
      const scalar = dtype === 0 && bs === 256 && (c === 'random' || c === 'linear');
      guard('quantizeBlockwise', `n=${big} ${c}`, () => testBlockwise(W, G, big, dtype, bs, c, { dequant: false, scalar }));
    }
    guard('quantizeBlockwise', 'scalar small', () => testBlockwise(W, G, 100003, 1, 64, 'random', { dequant: false, scalar: true }));
    for (let dtype = 0; dtype < 3; dtype++) {
      guard('quantizeBlockwise', 'misaligned', () => testBlockwise(W, G, 10001, dtype, 256, 'dynamic', { offsetIn: ITEM[dtype] }));
      for (const bs of [1, 8, 16, 32, 100, 8192]) guard('quantizeBlockwise', `bs=${bs}`, () => testBlockwise(W, G, 9999, dtype, bs, 'dynamic'));
    }
  });
  step('4-bit nested absmax (fused)', () => {
    const BS2 = [64, 128, 256, 512, 1024, 2048, 4096, 100, 1, 3];
    const OFFS = [0, 0.01, Math.fround(0.0123), -0.5, 1e-8, 3e38];
    for (const qt of [0, 1]) for (const bs of [...BS4, 8, 16, 2, 48, 100]) for (const n of sizes(bs)) {
      for (let r = 0; r < 2; r++) {
        const bs2 = rng.pick(BS2), off = rng.uniform() < 0.3 ? rng.normal() * 0.1 : rng.pick(OFFS), c = rng.pick(Object.keys(CODES));
        guard('dequantize4bitNested vs unfused (cuda)', `n=${n} bs=${bs}`, () => testNested(W, G, n, bs, qt, bs2, off, c));
      }
    }
    for (const qt of [0, 1]) for (const bs2 of [64, 256, 4096]) {
      guard('dequantize4bitNested vs unfused (cuda)', 'misaligned out', () => testNested(W, G, 10001, 64, qt, bs2, 0.01, 'dynamic', { offsetOut: 1 }));
      guard('dequantize4bitNested vs unfused (cuda)', 'misaligned packed', () => testNested(W, G, 10001, 64, qt, bs2, 0.01, 'dynamic', { offsetPk: 1 }));
    }
    // the streaming-store path (>= 2^21 units) and a large blocksize2
    const big = MOCK ? 300007 : (1 << 24) + 9;
    guard('dequantize4bitNested vs unfused (cuda)', 'big', () => testNested(W, G, big, 64, 1, 256, 0.0123, 'dynamic', { wasm: MOCK }));
    guard('dequantize4bitNested vs unfused (cuda)', 'big', () => testNested(W, G, big, 64, 1, 4096, -0.01, 'linear', { wasm: MOCK }));
  });
  step('scalars', () => testScalars(G));
  step('firstNonFinite', () => testNonFinite(W, G));
  step('int8', () => testInt8(W, G));
  step('fp8', () => testFp8(W, G));
  step('gemv', () => gemvSuite(W, G));
  if (BIG) step('big', () => testBig(W, G));
  log(`parity: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------- benchmarks

function median(a) { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; }
function timeIt(f, reps = 30) {
  for (let i = 0; i < 3; i++) f();
  cuda.synchronize();
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const s = cuda.eventRecord();
    f();
    const e = cuda.eventRecord();
    ts.push(cuda.eventElapsed(s, e));
    cuda.eventDestroy(s);
    cuda.eventDestroy(e);
  }
  return median(ts);
}

// fill a device buffer with `bytes` bytes of a repeated random host pattern (32 MiB)
function fillRandom(G, bytes, gen) {
  const p = G.alloc(bytes);
  const chunk = Math.min(bytes, 32 << 20);
  const pattern = gen(chunk);
  for (let o = 0; o < bytes; o += chunk) cuda.copyHtoD(p + o, pattern.subarray(0, Math.min(chunk, bytes - o)));
  return p;
}

const BNB = { copy: 3038, dq4: 2222, q4: 263, dq8: 1971, q8: 515, vq: 1191, gemv: 1029, mm: 896, mmdq: 2664 };

function bench() {
  const G = new Gpu();
  const rows = [];
  const add = (name, ms, bytes, ref, unit = 'GB/s', value = bytes / ms / 1e6) => {
    rows.push({ name, ms, value, unit, ref });
    log(`  ${name}: ${ms.toFixed(3)} ms, ${value.toFixed(0)} ${unit}${ref ? ` (bitsandbytes ${ref}, x${(value / ref).toFixed(2)})` : ''}`);
  };
  const N = 8192 * 28672; // 234,881,024 elements
  const bf16 = (bytes) => { const u = new Uint16Array(bytes / 2); for (let i = 0; i < u.length; i++) u[i] = f32ToBf16(bitsOf(rng.normal())); return new Uint8Array(u.buffer); };
  const f16 = (bytes) => { const u = new Uint16Array(bytes / 2); for (let i = 0; i < u.length; i++) u[i] = f32ToF16(bitsOf(rng.normal())); return new Uint8Array(u.buffer); };
  const f32 = (bytes) => { const u = new Float32Array(bytes / 4); for (let i = 0; i < u.length; i++) u[i] = rng.normal(); return new Uint8Array(u.buffer); };

  // device-to-device copy: the ceiling
  {
    const bytes = 1 << 30;
    const a = G.alloc(bytes), b = G.alloc(bytes);
    cuda.memset(a, 1, bytes);
    add('copyDtoD 1 GiB (read+write)', timeIt(() => cuda.copyDtoD(b, a, bytes), 20), 2 * bytes, BNB.copy);
    add('memset 1 GiB (write only)', timeIt(() => cuda.memset(b, 3, bytes), 20), bytes);
    G.freeAll();
  }
  // 4-bit
  {
    const src = fillRandom(G, N * 2, bf16);
    const pk = G.alloc(N / 2), ab = G.alloc((N / 64) * 4), out = G.alloc(N * 2);
    add('quantize4bit nf4 bs64 bf16 8192x28672', timeIt(() => cuda.quantize4bit(src, N, 2, 64, 1, pk, ab)), N * 2 + N / 2 + (N / 64) * 4, BNB.q4);
    add('quantize4bit fp4 bs64 bf16', timeIt(() => cuda.quantize4bit(src, N, 2, 64, 0, pk, ab)), N * 2 + N / 2 + (N / 64) * 4);
    add('dequantize4bit nf4 bs64 -> bf16 8192x28672', timeIt(() => cuda.dequantize4bit(pk, N, 64, 1, ab, 2, out)), N / 2 + (N / 64) * 4 + N * 2, BNB.dq4);
    add('dequantize4bit nf4 bs64 -> f16', timeIt(() => cuda.dequantize4bit(pk, N, 64, 1, ab, 1, out)), N / 2 + (N / 64) * 4 + N * 2);
    {
      const nb = N / 64, qab = fillRandom(G, nb, (b) => randomBytes(b)), code2 = G.put(new Uint8Array(CODES.dynamic.buffer.slice(0)));
      const ab2 = G.put(new Uint8Array(new Float32Array(nb / 256).map(() => Math.abs(rng.normal()) * 0.1).buffer)), tmp = G.alloc(nb * 4);
      add('dequantize4bit nested (unfused: 3 launches) -> bf16', timeIt(() => { cuda.dequantizeBlockwise(qab, nb, 256, code2, ab2, 0, tmp); cuda.addScalarF32(tmp, nb, 0.01); cuda.dequantize4bit(pk, N, 64, 1, tmp, 2, out); }), N / 2 + nb + N * 2);
      add('dequantize4bitNested nf4 bs64 bs2 256 -> bf16 (fused)', timeIt(() => cuda.dequantize4bitNested(pk, N, 64, 1, qab, code2, ab2, 256, 0.01, 2, out)), N / 2 + nb + N * 2);
    }
    // GEMV: A 1x8192 bf16, W 28672x8192 nf4 (effective bytes: packed weight + absmax)
    const a = G.put(bf16(8192 * 2)), o = G.alloc(28672 * 2);
    add('gemv4bit nf4 bs64 1x8192 @ 28672x8192 (bf16)', timeIt(() => cuda.gemv4bit(a, 1, 8192, 2, pk, 28672, ab, 64, 1, 0, 2, o), 50), N / 2 + (N / 64) * 4, BNB.gemv);

    const a4 = G.put(bf16(4 * 8192 * 2)), o4 = G.alloc(4 * 28672 * 2);
    add('gemv4bit nf4 bs64 4x8192 @ 28672x8192 (bf16)', timeIt(() => cuda.gemv4bit(a4, 4, 8192, 2, pk, 28672, ab, 64, 1, 0, 2, o4), 20), N / 2 + (N / 64) * 4);
    G.freeAll();
    const s32 = fillRandom(G, N * 4, f32);
    const pk2 = G.alloc(N / 2), ab2 = G.alloc((N / 64) * 4);
    add('quantize4bit nf4 bs64 f32', timeIt(() => cuda.quantize4bit(s32, N, 0, 64, 1, pk2, ab2), 20), N * 4 + N / 2 + (N / 64) * 4);
    G.freeAll();
  }
  // 8-bit blockwise bs256
  {
    const code = G.put(new Uint8Array(CODES.dynamic.buffer.slice(0)));
    const src = fillRandom(G, N * 2, bf16);
    const q = G.alloc(N), ab = G.alloc((N / 256) * 4), out = G.alloc(N * 2);
    add('quantizeBlockwise bs256 bf16', timeIt(() => cuda.quantizeBlockwise(src, N, 2, 256, code, q, ab)), N * 2 + N + (N / 256) * 4, BNB.q8);
    add('quantizeBlockwise bs4096 bf16', timeIt(() => cuda.quantizeBlockwise(src, N, 2, 4096, code, q, ab)), N * 2 + N + (N / 4096) * 4);
    add('dequantizeBlockwise bs256 -> bf16', timeIt(() => cuda.dequantizeBlockwise(q, N, 256, code, ab, 2, out)), N + (N / 256) * 4 + N * 2, BNB.dq8);
    G.freeAll();
    const code2 = G.put(new Uint8Array(CODES.dynamic.buffer.slice(0)));
    const s32 = fillRandom(G, (N / 2) * 4, f32);
    const q2 = G.alloc(N / 2), ab2 = G.alloc((N / 512) * 4), o32 = G.alloc((N / 2) * 4);
    add('quantizeBlockwise bs256 f32 (117M)', timeIt(() => cuda.quantizeBlockwise(s32, N / 2, 0, 256, code2, q2, ab2), 20), (N / 2) * 5 + (N / 512) * 4);
    add('dequantizeBlockwise bs256 -> f32 (117M)', timeIt(() => cuda.dequantizeBlockwise(q2, N / 2, 256, code2, ab2, 0, o32), 20), (N / 2) * 5 + (N / 512) * 4);
    G.freeAll();
  }
  // LLM.int8
  {
    const R = 16384, C = 8192;
    const a = fillRandom(G, R * C * 2, f16);
    const cb = G.alloc(R * C), st = G.alloc(R * 4);
    add('int8VectorwiseQuant 16384x8192 f16', timeIt(() => cuda.int8VectorwiseQuant(a, R, C, 0, cb, st)), R * C * 3 + R * 4, BNB.vq);
    add('int8VectorwiseQuant threshold 6', timeIt(() => cuda.int8VectorwiseQuant(a, R, C, 6, cb, st)), R * C * 3 + R * 4);
    G.freeAll();
    const M = 8192;
    const A = fillRandom(G, M * M, (b) => randomBytes(b)), B = fillRandom(G, M * M, (b) => randomBytes(b)), O = G.alloc(M * M * 4);
    const ms = timeIt(() => cuda.int8LinearMatmul(A, M, M, B, M, O), 10);
    add('int8LinearMatmul 8192^3 (cuBLASLt)', ms, 0, BNB.mm, 'TOPS', (2 * M ** 3) / ms / 1e9);
    const rs = G.put(new Uint8Array(new Float32Array(M).fill(1.5).buffer)), cs = G.put(new Uint8Array(new Float32Array(M).fill(0.5).buffer));
    const out = G.alloc(M * M * 2);
    add('int8MmDequant 8192^2 -> f16', timeIt(() => cuda.int8MmDequant(O, M, M, rs, cs, 0, 0, 1, out)), M * M * 6 + M * 8, BNB.mmdq);
    G.freeAll();
    const m2 = 8192, k2 = 8190; // k % 4 != 0: the integer kernel
    const A2 = fillRandom(G, 1024 * k2, (b) => randomBytes(b)), B2 = fillRandom(G, m2 * k2, (b) => randomBytes(b)), O2 = G.alloc(1024 * m2 * 4);
    const ms2 = timeIt(() => cuda.int8LinearMatmul(A2, 1024, k2, B2, m2, O2), 5);
    add('int8LinearMatmul 1024x8190x8192 (own kernel)', ms2, 0, 0, 'TOPS', (2 * 1024 * k2 * m2) / ms2 / 1e9);
    G.freeAll();
  }
  // FP8
  {
    const R = 8192, C = 28672;
    const w = fillRandom(G, R * C, (b) => randomBytes(b));
    const sc = G.put(new Uint8Array(new Float32Array((R / 128) * (C / 128)).fill(0.01).buffer)), out = G.alloc(R * C * 2);
    add('dequantizeFp8 8192x28672 128x128 -> bf16', timeIt(() => cuda.dequantizeFp8(w, R, C, 0, sc, C / 128, 128, 128, 2, out)), R * C * 3);
    G.freeAll();
  }
  {
    const n = N;
    const src = fillRandom(G, n * 2, bf16);
    add('firstNonFinite bf16 (none)', timeIt(() => cuda.firstNonFinite(src, n, 2), 10), n * 2);
    G.freeAll();
  }
  return rows;
}

// ---------------------------------------------------------------- main

const probe = cuda.probe();
log(`bnbjs CUDA check — seed ${seed}${MOCK ? ' (MOCK: the device is a second WebAssembly instance)' : ''}`);
log(`probe: ${JSON.stringify(probe)}`);
if (!probe.devices.length) {
  log('no CUDA device: nothing to check');
  flushLog();
  process.exit(2);
}
try { parity(); } catch (e) { log(`parity aborted: ${e.stack}`); record('harness', 0, 1, String(e)); }
if (dead) record('harness', 0, 1, `CUDA context lost: ${dead}`);
log('');
log('parity (bytes of the CUDA addon vs build/bnb.simd.wasm):');
log('| test | cases | elements compared | mismatching elements | cases with mismatches |');
log('|---|---|---|---|---|');
let failed = false;
for (const [name, r] of results) {
  log(`| ${name} | ${r.cases} | ${r.elems} | ${r.bad} | ${r.badCases} |${r.nanPayload ? ` (${r.nanPayload} NaN payloads differ, ignored)` : ''}`);
  if (r.bad) failed = true;
}
for (const [name, r] of results) for (const note of r.notes) log(`  ${name}: ${note}`);
log('');
log('gemv4bit M >= 64 (cuBLASLt) vs float64, bitsandbytes test_gemv_4bit metrics: err1 relerr1 maxerr1 for cuda | wasm (exact order) | bar; share of outputs identical to wasm');
const fmt = (x) => `${x.err1.toExponential(2)} ${x.relerr1.toExponential(2)} ${x.maxerr1.toExponential(2)}`;
for (const s of gemvStats) log(`  ${s.ctx}: ${fmt(s.cuda)} | ${fmt(s.wasm)} | ${fmt(s.bars)}; ${(100 * s.same).toFixed(1)}% identical${s.same === 1 ? ' (the exact kernels ran: cuBLASLt missing?)' : ''}`);
log(wasmInt8 ? 'int8: compared with build/bnb.simd.wasm gemv4bitInt8 and the JS reference' : 'int8: skipped (wasm kernel missing); compared with the JS reference of the documented order only');
log(wasmOrder ? 'gemv4bit exact: compared with build/bnb.simd.wasm and the JS reference' : 'gemv4bit exact: build/bnb.simd.wasm does not follow the documented order yet: compared with the JS reference only');
flushLog();
if (BENCH && !dead) {
  log('');
  log('benchmarks (median of CUDA-event timings, device-resident data):');
  let rows = [];
  try { rows = bench(); } catch (e) { log(`bench threw: ${e.stack}`); }
  log('');
  log('| kernel | ms | throughput | bitsandbytes | ratio |');
  log('|---|---|---|---|---|');
  for (const r of rows) log(`| ${r.name} | ${r.ms.toFixed(3)} | ${r.value.toFixed(0)} ${r.unit} | ${r.ref || ''} | ${r.ref ? (r.value / r.ref).toFixed(2) : ''} |`);
}
log('');
log(failed ? 'PARITY: MISMATCHES (see above)' : 'PARITY: all compared bytes identical');
flushLog();
process.exit(failed ? 1 : 0);
