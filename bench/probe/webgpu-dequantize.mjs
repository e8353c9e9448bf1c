// A WGSL dequantize4bit (nf4/fp4 -> float32, float16, bfloat16) that gives WebAssembly's bytes although the GPU
// flushes subnormals (bench/probe/webgpu-float.mjs): code x absmax on the float unit where the
// result is surely normal, else an exact integer product (24 x 24-bit mantissas in 16-bit limbs)
// rounded to nearest even into the subnormal range; NaN written as 0x7fffffff as the WebAssembly
// kernels do; float16/bfloat16 by the WebAssembly kernels' bit manipulation on u32 (no
// shader-f16). Issue 18 groundwork: compares every byte with bnbjs' dequantize4bit on blocks
// whose absmax spans normal, tiny, subnormal and zero values.
// Setup and usage: bench/probe/webgpu-device.mjs.
import { QuantState, dequantize4bit, get4bitType, tensor } from '../../dist/index.js';
import { device } from './webgpu-device.mjs';

// the kernels' code tables (assembly/tables.ts): FP4 code 8 is -0, as in CUDA
const NF4 = [
  0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000, 0x3da2faff, 0x3e24cae3, 0x3e7c04dd,
  0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000,
];
const FP4 = [
  0x00000000, 0x3baaaaab, 0x3f2aaaab, 0x3f800000, 0x3eaaaaab, 0x3f000000, 0x3e2aaaab, 0x3e800000, 0x80000000, 0xbbaaaaab, 0xbf2aaaab,
  0xbf800000, 0xbeaaaaab, 0xbf000000, 0xbe2aaaab, 0xbe800000,
];
const hex = (a) => a.map((v) => `0x${v.toString(16)}u`).join(', ');

const code = /* wgsl */ `
struct Params { n: u32, shift: u32, qtype: u32, dtype: u32 }
@group(0) @binding(0) var<storage, read> P: array<u32>;
@group(0) @binding(1) var<storage, read> AM: array<u32>;
@group(0) @binding(2) var<storage, read_write> O: array<u32>;
@group(0) @binding(3) var<uniform> prm: Params;
const NF4 = array<u32, 16>(${hex(NF4)});
const FP4 = array<u32, 16>(${hex(FP4)});

// (lo, hi) >> k for 0 <= k, as 64 bits
fn shr64(p: vec2u, k: u32) -> vec2u {
  if (k == 0u) { return p; }
  if (k >= 64u) { return vec2u(0u, 0u); }
  if (k >= 32u) { return vec2u(p.y >> (k - 32u), 0u); }
  return vec2u((p.x >> k) | (p.y << (32u - k)), p.y >> k);
}

// the float32 bits of a * b rounded to nearest even, subnormals included
fn mulExact(a: u32, b: u32) -> u32 {
  let ea = (a >> 23u) & 0xffu;
  let eb = (b >> 23u) & 0xffu;
  let sign = (a ^ b) & 0x80000000u;
  let ma0 = a & 0x7fffffu;
  let mb0 = b & 0x7fffffu;
  let za = ea == 0u && ma0 == 0u;
  let zb = eb == 0u && mb0 == 0u;
  if (ea == 255u || eb == 255u) {
    if ((ea == 255u && ma0 != 0u) || (eb == 255u && mb0 != 0u) || za || zb) { return 0x7fffffffu; }
    return sign | 0x7f800000u;
  }
  if (za || zb) { return sign; }
  if (ea != 0u && eb != 0u && ea + eb >= 128u) {
    return bitcast<u32>(bitcast<f32>(a) * bitcast<f32>(b)); // surely normal (or infinite): the float unit rounds it
  }
  let ma = select(ma0, ma0 | 0x800000u, ea != 0u);
  let mb = select(mb0, mb0 | 0x800000u, eb != 0u);
  let e = i32(max(ea, 1u)) + i32(max(eb, 1u)) - 300; // value = ma * mb * 2^e
  let alo = ma & 0xffffu; let ahi = ma >> 16u;
  let blo = mb & 0xffffu; let bhi = mb >> 16u;
  let ll = alo * blo;
  let mid = alo * bhi + ahi * blo;
  let lo = ll + (mid << 16u);
  let hi = ahi * bhi + (mid >> 16u) + select(0u, 1u, lo < ll);
  let p = vec2u(lo, hi);
  let l = select(i32(firstLeadingBit(lo)), 32 + i32(firstLeadingBit(hi)), hi != 0u);
  let q = max(l + e - 23, -149); // the result's quantum: 2^q
  let k = u32(q - e);            // bits dropped (>= 0 here)
  var mant = shr64(p, k).x;
  if (k > 0u) {
    let half = (shr64(p, k - 1u).x & 1u) == 1u;
    let km1 = k - 1u;
    var sticky = false;
    if (km1 >= 64u) { sticky = (p.x | p.y) != 0u; }
    else if (km1 >= 32u) { sticky = p.x != 0u || (p.y & ((1u << (km1 - 32u)) - 1u)) != 0u; }
    else if (km1 > 0u) { sticky = (p.x & ((1u << km1) - 1u)) != 0u; }
    if (half && (sticky || (mant & 1u) == 1u)) { mant = mant + 1u; }
  }
  return sign | ((u32(q + 149) << 23u) + mant); // also right when mant rounded up to 2^24 (or to 2^23 from below)
}

// float32 bits -> bfloat16 / float16 bits, rounded to nearest even (assembly/convert.ts)
fn toBf16(b: u32) -> u32 {
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 0x7fffu; }
  return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
fn toF16(b: u32) -> u32 {
  let ax = b & 0x7fffffffu;
  let sign = (b >> 16u) & 0x8000u;
  if (ax > 0x7f800000u) { return 0x7fffu; }
  if (ax >= 0x477ff000u) { return sign | 0x7c00u; }
  if (ax < 0x38800000u) {
    // f16 subnormals: the float unit adds 0.5 (a normal result, rounded to nearest even; a
    // flushed subnormal ax rounds to 0.5 either way)
    return sign | (bitcast<u32>(bitcast<f32>(ax) + 0.5) - 0x3f000000u);
  }
  return sign | ((ax + 0xc8000fffu + ((ax >> 13u) & 1u)) >> 13u);
}

fn element(w: u32, j: u32, i: u32) -> u32 {
  let byte = (w >> (8u * (j >> 1u))) & 0xffu;
  let c = select(byte & 15u, byte >> 4u, (j & 1u) == 0u);
  return mulExact(select(FP4[c], NF4[c], prm.qtype == 1u), AM[i >> prm.shift]);
}

@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let word = g.x;
  if (word * 8u >= prm.n) { return; }
  let w = P[word];
  if (prm.dtype == 0u) {
    for (var j = 0u; j < 8u; j = j + 1u) {
      let i = word * 8u + j;
      if (i < prm.n) { O[i] = element(w, j, i); }
    }
    return;
  }
  // 16-bit outputs: two per u32, four u32 per invocation (elements past n are 0)
  for (var h = 0u; h < 4u; h = h + 1u) {
    var pair = 0u;
    for (var t = 0u; t < 2u; t = t + 1u) {
      let j = 2u * h + t;
      let i = word * 8u + j;
      if (i < prm.n) {
        let f = element(w, j, i);
        pair = pair | (select(toBf16(f), toF16(f), prm.dtype == 1u) << (16u * t));
      }
    }
    O[word * 4u + h] = pair;
  }
}`;

const module = device.createShaderModule({ code });
const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
if (errors.length) {
  console.error(errors.map((m) => `WGSL ${m.lineNum}:${m.linePos}: ${m.message}`).join('\n'));
  process.exit(1);
}
const pipe = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });

// one set of buffers for every case (Dawn on SwiftShader aborts when many are created and dropped)
const N = 1 << 16;
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
const bufs = {
  p: device.createBuffer({ size: N / 2, usage }),
  am: device.createBuffer({ size: N, usage }),
  prm: device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }),
  o: device.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC }),
  rb: device.createBuffer({ size: N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
};
const bindGroup = device.createBindGroup({
  layout: pipe.getBindGroupLayout(0),
  entries: [bufs.p, bufs.am, bufs.o, bufs.prm].map((buffer, binding) => ({ binding, resource: { buffer } })),
});

async function dequantGpu(packed, absmaxBits, n, blocksize, qtype, dtype) {
  device.queue.writeBuffer(bufs.p, 0, packed);
  device.queue.writeBuffer(bufs.am, 0, absmaxBits);
  device.queue.writeBuffer(bufs.prm, 0, new Uint32Array([n, Math.log2(blocksize), qtype, dtype]));
  const size = dtype === 0 ? n * 4 : Math.ceil(n / 8) * 16;
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(Math.ceil(Math.ceil(n / 8) / 64));
  pass.end();
  enc.copyBufferToBuffer(bufs.o, 0, bufs.rb, 0, size);
  device.queue.submit([enc.finish()]);
  await bufs.rb.mapAsync(GPUMapMode.READ, 0, size);
  const bytes = new Uint8Array(bufs.rb.getMappedRange(0, size).slice(0));
  bufs.rb.unmap();
  return bytes;
}

// One case per process: Dawn on SwiftShader crashed (abort, segfault or hang) after 3 to 8
// rounds of submit + mapAsync in one process here, whether buffers were reused or not.
const CASES = [];
for (const [dtype, did, size] of [
  ['float32', 0, 4],
  ['float16', 1, 2],
  ['bfloat16', 2, 2],
])
  for (const quantType of ['nf4', 'fp4'])
    for (const blocksize of [64, 256])
      for (const kind of ['normal', 'tiny and subnormal', 'mixed, with zeros'])
        CASES.push({ dtype, did, size, quantType, blocksize, kind });

const at = process.argv.indexOf('--case');
if (at < 0) {
  const { spawnSync } = await import('node:child_process');
  console.log('| output | quant type | blocksize | elements | absmax | elements differing from bnbjs (WebAssembly) |');
  console.log('|---|---|---:|---:|---|---:|');
  let total = 0,
    crashed = 0,
    retried = 0;
  for (let k = 0; k < CASES.length; k++) {
    let r;
    for (let attempt = 0; attempt < 3; attempt++) {
      r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--case', String(k)], { encoding: 'utf8', timeout: 60000 });
      if (r.status === 0 || r.status === 1) break;
      retried++;
    }
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 && r.status !== 1) {
      crashed++;
      console.log(`| case ${k} | crashed (${r.signal ?? r.status}) | | | | |`);
      continue;
    }
    total += Number(/\| (\d+) \|$/.exec(line)?.[1] ?? NaN);
    console.log(line);
  }
  console.log(
    `\n${total === 0 ? 'every byte identical' : `${total} elements differ`}; ${retried} crashed child runs retried, ${crashed} cases without a result`,
  );
  process.exit(total === 0 && crashed === 0 ? 0 : 1);
}

const c = CASES[Number(process.argv[at + 1])];
let s = 17 + Number(process.argv[at + 1]);
const r = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
const n = N;
const absmax = Float32Array.from({ length: n / c.blocksize }, (_, b) => {
  if (c.kind === 'normal') return r() * 4;
  const tiny = (r() + 0.01) * 2 ** -(110 + Math.floor(r() * 40)); // 2^-110 .. 2^-150: subnormal below 2^-126
  if (c.kind === 'tiny and subnormal') return tiny;
  return b % 5 === 0 ? 0 : b % 5 === 1 ? tiny : b % 5 === 2 ? 2 ** -126 * r() : r() * 2 ** -100;
});
const packed = Uint8Array.from({ length: n / 2 }, () => Math.floor(r() * 256));
const state = new QuantState({
  absmax: tensor(absmax),
  shape: [n],
  blocksize: c.blocksize,
  quantType: c.quantType,
  code: get4bitType(c.quantType),
  dtype: c.dtype,
});
const d = dequantize4bit(tensor(packed), state).data;
const want = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
const got = await dequantGpu(packed, new Uint32Array(absmax.buffer), n, c.blocksize, c.quantType === 'nf4' ? 1 : 0, c.did);
let bad = 0;
for (let i = 0; i < n; i++) {
  for (let b = 0; b < c.size; b++) {
    if (got[i * c.size + b] !== want[i * c.size + b]) {
      bad++;
      break;
    }
  }
}
console.log(`| ${c.dtype} | ${c.quantType} | ${c.blocksize} | ${n} | ${c.kind} | ${bad} |`);
process.exit(bad === 0 ? 0 : 1);
