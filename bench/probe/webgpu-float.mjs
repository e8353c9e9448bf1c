// What WebGPU's float32 arithmetic does to the bits the kernels must reproduce (issue 18): each
// operation run in a compute shader on 2^16 random pairs (magnitudes 2^-100..2^40, so that
// subnormal inputs and results occur), compared with Math.fround of the exact result: products,
// sums, a * b + c (does the compiler contract it into a fused multiply-add?), 1 / x, subnormal
// inputs.
// Setup and usage: bench/probe/webgpu-device.mjs.
import { adapter, device } from './webgpu-device.mjs';
const info = adapter.info ?? {};
console.log(`adapter: ${info.vendor} ${info.architecture} ${info.description}; shader-f16 ${adapter.features.has('shader-f16')}`);

const N = 1 << 16;
let s = 3;
const r = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
const rand = (lo, hi) => Float32Array.from({ length: N }, () => (r() - 0.5) * 2 ** (Math.floor(r() * (hi - lo)) + lo));
const a = rand(-40, 40),
  b = rand(-100, -20),
  c = rand(-60, -20),
  x = rand(-130, 40);

async function run(expr) {
  const code = `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> C: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.x;
  if (i >= arrayLength(&A)) { return; }
  let a = A[i]; let b = B[i]; let c = C[i];
  O[i] = ${expr};
}`;
  const up = (arr) => {
    const buf = device.createBuffer({ size: arr.byteLength, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
    new Float32Array(buf.getMappedRange()).set(arr);
    buf.unmap();
    return buf;
  };
  const o = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const rb = device.createBuffer({ size: N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const pipe = device.createComputePipeline({
    layout: 'auto',
    compute: { module: device.createShaderModule({ code }), entryPoint: 'main' },
  });
  const bufs = [up(a), up(b), up(c), o];
  const bg = device.createBindGroup({
    layout: pipe.getBindGroupLayout(0),
    entries: bufs.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const enc = device.createCommandEncoder();
  const p = enc.beginComputePass();
  p.setPipeline(pipe);
  p.setBindGroup(0, bg);
  p.dispatchWorkgroups(N / 64);
  p.end();
  enc.copyBufferToBuffer(o, 0, rb, 0, N * 4);
  device.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(rb.getMappedRange().slice(0));
  return out;
}

const sub = (v) => v !== 0 && Math.abs(v) < 2 ** -126;
const f = Math.fround;
const cases = [
  ['a * b', (i) => f(a[i] * b[i])],
  ['b * c (tiny * tiny)', (i) => f(b[i] * c[i]), 'b * c'],
  ['a + b', (i) => f(a[i] + b[i])],
  ['a * b + c', (i) => f(f(a[i] * b[i]) + c[i])],
  ['1.0 / a', (i) => f(1 / a[i])],
];
// inputs that are subnormal: x replaces a
a.set(x.map((v, i) => (i % 4 === 0 ? v : a[i])));
console.log('| expression | outputs differing from float32 rounding | of them: subnormal expected | subnormal input involved |');
console.log('|---|---:|---:|---:|');
for (const [label, want, expr] of cases) {
  const got = await run(expr ?? label);
  let bad = 0,
    badSub = 0,
    badSubIn = 0;
  for (let i = 0; i < N; i++) {
    const w = want(i);
    if (Object.is(got[i], w)) continue;
    bad++;
    if (sub(w)) badSub++;
    if (sub(a[i]) || sub(b[i]) || sub(c[i])) badSubIn++;
  }
  console.log(`| \`${expr ?? label}\` | ${bad} of ${N} | ${badSub} | ${badSubIn} |`);
}
process.exit(0);
