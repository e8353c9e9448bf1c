// CUDA kernel throughput on the GPU machine: device-resident data, CUDA events, median
// of many runs, shapes as in ../shared/DEVICE.md, next to bitsandbytes' figures there.
// Usage (GPU machine): node bench/cuda.mjs   (needs build/bnbjs_cuda.node: npm run build:cuda)
import { cudaAddon } from '../dist/backend/cuda/addon.js';
import { defaultDynamicMap } from '../dist/maps.js';

const { addon: cuda, probe, reason } = cudaAddon();
if (!cuda) {
  console.error(`CUDA unavailable: ${reason}`);
  process.exit(1);
}
const REPS = Number(process.env.REPS ?? 20);

// Each run is queued behind a 50 us GPU-side wait (cuda.spin), which keeps the GPU busy
// while the host enqueues the start event and the call: the events time the kernel, not
// the launch latency of an idle GPU, and no memory is touched (data several times the
// 50 MB L2, as DEVICE.md asks). `cold` queues it behind a 256 MB memset instead: a cold
// L2, as triton's do_bench, but the memset's dirty lines are written back while the
// kernel runs, which costs short kernels a few microseconds.
const FLUSH_BYTES = 256 << 20;
const flush = cuda.malloc(FLUSH_BYTES);
function timeOnce(f, cold) {
  if (cold) cuda.memset(flush, 0, FLUSH_BYTES);
  else cuda.spin(50);
  const a = cuda.eventRecord();
  f();
  const b = cuda.eventRecord();
  const ms = cuda.eventElapsed(a, b);
  cuda.eventDestroy(a);
  cuda.eventDestroy(b);
  return ms;
}
function median(f) {
  f();
  cuda.synchronize();
  const med = (cold) => {
    const t = Array.from({ length: REPS }, () => timeOnce(f, cold)).sort((x, y) => x - y);
    return t[t.length >> 1];
  };
  const cold = med(true);
  const ms = med(false);
  return Object.assign(new Number(ms), { cold });
}

function random(ptr, bytes, kind) {
  // fill on the host in slices: normal-ish bf16/f16 patterns or random bytes
  const slice = 1 << 26;
  for (let off = 0; off < bytes; off += slice) {
    const n = Math.min(slice, bytes - off);
    const b = new Uint8Array(n);
    let s = off + 12345;
    if (kind === 'u16') {
      const u = new Uint16Array(b.buffer);
      for (let i = 0; i < u.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        u[i] = 0x3c00 + (s >>> 24) - 128 + ((s & 1) << 15);
      }
    } else if (kind === 'bf16') {
      const u = new Uint16Array(b.buffer);
      for (let i = 0; i < u.length; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        u[i] = 0x3f00 + (s >>> 25) - 64 + ((s & 1) << 15);
      }
    } else
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        b[i] = s >>> 24;
      }
    cuda.copyHtoD(ptr + off, b);
  }
}

const rows = [];
const row = (op, ms, bytes, bnb, unit = 'GB/s', ops = 0) => {
  // ms: median() result
  const cold = ms?.cold ?? null;
  ms = Number(ms);
  const v = unit === 'TOPS' ? ops / ms / 1e9 : bytes / ms / 1e6;
  rows.push({ op, ms, cold, v, unit, bnb, ratio: bnb ? v / bnb : null });
};

const N = 8192 * 28672;
const x = cuda.malloc(N * 2);
random(x, N * 2, 'bf16');
const packed = cuda.malloc(N / 2),
  absmax = cuda.malloc((N / 64) * 4),
  out = cuda.malloc(N * 2);
{
  // copies
  const host = new Uint8Array(1 << 30).fill(1); // touched: no page faults in the timing
  const buf = cuda.malloc(1 << 30);
  const best = (f) => {
    let ms = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      f();
      ms = Math.min(ms, performance.now() - t0);
    }
    return ms;
  };
  const h2d = (1 << 30) / best(() => cuda.copyHtoD(buf, host)) / 1e6;
  const d2h = (1 << 30) / best(() => cuda.copyDtoH(host, buf)) / 1e6;
  row('host -> device copy (1 GiB, pageable)', 0, 0, null);
  rows.at(-1).v = h2d;
  row('device -> host copy (1 GiB, pageable)', 0, 0, null);
  rows.at(-1).v = d2h;
  const ms = median(() => cuda.copyDtoD(out, x, N * 2));
  row('device -> device copy (470 MB)', ms, 2 * N * 2, 3038);
  cuda.free(buf);
}
cuda.quantize4bit(x, N, 2, 64, 1, packed, absmax);
row(
  'quantize4bit nf4 bs64 bf16 8192x28672',
  median(() => cuda.quantize4bit(x, N, 2, 64, 1, packed, absmax)),
  N * 2 + N / 2 + N / 16,
  263,
);
row(
  'dequantize4bit nf4 bs64 -> bf16 8192x28672',
  median(() => cuda.dequantize4bit(packed, N, 64, 1, absmax, 2, out)),
  N / 2 + N / 16 + N * 2,
  2222,
);
{
  // nested: de-nest absmax then dequantize (what dequantize4bit does for a nested state)
  const nb = N / 64,
    q2 = cuda.malloc(nb),
    a2 = cuda.malloc(Math.ceil(nb / 256) * 4),
    tmp = cuda.malloc(nb * 4),
    code = cuda.malloc(1024);
  const c = new Float32Array(256).map((_, i) => -1 + (2 * i) / 255);
  cuda.copyHtoD(code, c);
  cuda.quantizeBlockwise(absmax, nb, 0, 256, code, q2, a2);
  const ms = median(() => {
    cuda.dequantizeBlockwise(q2, nb, 256, code, a2, 0, tmp);
    cuda.addScalarF32(tmp, nb, 0.01);
    cuda.dequantize4bit(packed, N, 64, 1, tmp, 2, out);
  });
  row('dequantize4bit nf4 bs64 nested -> bf16', ms, N / 2 + nb + N * 2, 2222);
  const msf = median(() => cuda.dequantize4bitNested(packed, N, 64, 1, q2, code, a2, 256, 0.01, 2, out));
  row('dequantize4bitNested nf4 bs64 -> bf16 (fused)', msf, N / 2 + nb + N * 2, 2222);
  [q2, a2, tmp, code].forEach((p) => cuda.free(p));
}
{
  const code = cuda.malloc(1024),
    q = cuda.malloc(N),
    am = cuda.malloc((N / 256) * 4);
  cuda.copyHtoD(code, defaultDynamicMap()); // bnb's default code
  row(
    'quantizeBlockwise bs256 bf16 8192x28672',
    median(() => cuda.quantizeBlockwise(x, N, 2, 256, code, q, am)),
    N * 2 + N + N / 64,
    515,
  );
  row(
    'dequantizeBlockwise bs256 -> bf16',
    median(() => cuda.dequantizeBlockwise(q, N, 256, code, am, 2, out)),
    N + N / 64 + N * 2,
    1971,
  );
  [code, q, am].forEach((p) => cuda.free(p));
}
{
  const M = 8192,
    K = 8192,
    a = cuda.malloc(M * K * 2),
    cb = cuda.malloc(M * K),
    st = cuda.malloc(M * 4);
  random(a, M * K * 2, 'u16');
  row(
    'int8VectorwiseQuant f16 8192x8192',
    median(() => cuda.int8VectorwiseQuant(a, M, K, 0, cb, st)),
    M * K * 2 + M * K + M * 4,
    1191,
  );
  const C = cuda.malloc(M * K * 4),
    h = cuda.malloc(M * K * 2),
    cs = cuda.malloc(K * 4);
  random(cs, K * 4, 'u16');
  const ms = median(() => cuda.int8LinearMatmul(cb, M, K, cb, M, C));
  row('int8LinearMatmul 8192^3 (cuBLASLt)', ms, 0, 896, 'TOPS', 2 * M * M * K);
  row(
    'int8MmDequant 8192x8192 -> f16',
    median(() => cuda.int8MmDequant(C, M, K, st, st, 0, 0, 1, h)),
    M * K * 4 + M * K * 2,
    2664,
  );
  [a, cb, st, C, h, cs].forEach((p) => cuda.free(p));
}
// gemv4bit / matmul4bit, nf4 bs64, A bf16 [M, 8192] . W [28672, 8192] (issue 17): the exact order for
// M < 64 (one weight pass for M <= 16), dequantize + cuBLASLt for M >= 64; the int8-activation mode.
// Beside each: a device-to-device copy of the weight bytes (packed + absmax) in the same run, and for
// M >= 64 the dequantize alone and the cuBLASLt GEMM alone.
const gemvRows = [];
{
  const Nw = 28672,
    K = 8192,
    n = Nw * K,
    wbytes = n / 2 + (n / 64) * 4,
    Mmax = 512,
    a = cuda.malloc(Mmax * K * 2),
    o = cuda.malloc(Mmax * Nw * 4),
    copyDst = cuda.malloc(wbytes);
  random(a, Mmax * K * 2, 'bf16');
  // the weight bytes copied device to device (read + write: the ceiling of a kernel that reads them once)
  const copyMs = Number(
    median(() => {
      cuda.copyDtoD(copyDst, packed, n / 2);
      cuda.copyDtoD(copyDst + n / 2, absmax, (n / 64) * 4);
    }),
  );
  const copyBw = (2 * wbytes) / copyMs / 1e6;
  row(`device -> device copy of the weight bytes (${(wbytes / 1e6).toFixed(0)} MB)`, copyMs, 2 * wbytes, null);
  const dq = cuda.malloc(n * 2);
  const dqMs = median(() => cuda.dequantize4bit(packed, n, 64, 1, absmax, 2, dq));
  row("dequantize4bit nf4 bs64 -> bf16 28672x8192 (the M >= 64 path's first step)", dqMs, wbytes + n * 2, null);
  const gemv = (label, M, f) => {
    let ms;
    try {
      ms = median(f);
    } catch (e) {
      console.error(`${label} M=${M}: ${e.message}`);
      return null;
    }
    const bw = wbytes / Number(ms) / 1e6;
    row(`${label} M=${M} (weight GB/s)`, ms, wbytes, null);
    gemvRows.push({ label, M, ms: Number(ms), cold: ms.cold, bw, ratio: bw / copyBw, tflops: (2 * M * n) / Number(ms) / 1e9 });
    return Number(ms);
  };
  for (const M of [1, 4, 16, 64, 512]) {
    const total = gemv('gemv4bit nf4 bs64 x8192 . 28672x8192 (bf16)', M, () =>
      cuda.gemv4bit(a, M, K, 2, packed, Nw, absmax, 64, 1, 0, 2, o),
    );
    if (M >= 64) {
      let gemmMs = null;
      try {
        gemmMs = Number(median(() => cuda.gemmLt(a, dq, 2, M, K, Nw, o, 2)));
        row(`cuBLASLt GEMM alone bf16 M=${M} x8192 . 28672x8192`, gemmMs, 0, null, 'TOPS', 2 * M * n);
      } catch (e) {
        console.error(`gemmLt M=${M}: ${e.message}`);
      }
      if (gemmMs !== null && total !== null)
        gemvRows.push({ label: 'M >= 64 path vs (cuBLAS GEMM + dequantize)', M, ms: total, goal: gemmMs + Number(dqMs) });
    }
  }
  for (const M of [1, 16])
    gemv('gemv4bitInt8 nf4 bs64 x8192 . 28672x8192 (bf16)', M, () => cuda.gemv4bitInt8(a, M, K, 2, packed, Nw, absmax, 64, 1, 0, 2, o));
  [a, o, copyDst, dq].forEach((p) => cuda.free(p));
  gemvRows.push({ copyBw, copyMs });
}
{
  const R = 7168,
    C = 7168,
    w = cuda.malloc(R * C),
    s = cuda.malloc(56 * 56 * 4),
    o = cuda.malloc(R * C * 2);
  random(w, R * C, 'u8');
  cuda.memset(s, 0, 56 * 56 * 4);
  row(
    'dequantizeFp8 7168x7168 128x128 tiles -> bf16',
    median(() => cuda.dequantizeFp8(w, R, C, 0, s, 56, 128, 128, 2, o)),
    R * C * 3,
    null,
  );
  [w, s, o].forEach((p) => cuda.free(p));
}
const d = probe.devices[0];
console.log(
  `\n### ${new Date().toISOString().slice(0, 10)} — ${d.name} (sm_${d.major}${d.minor}), driver ${probe.driverVersion}, runtime ${probe.runtimeVersion}`,
);
console.log(
  `\nCommand: \`node bench/cuda.mjs\` on the GPU machine (device-resident data, CUDA events, median of ${REPS} runs; ms: queued behind a 50 us GPU-side wait; cold-L2 ms: behind a 256 MB memset instead; throughput from ms)\n`,
);
console.log('| kernel | ms | cold-L2 ms | throughput | bitsandbytes (DEVICE.md) | ratio |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.op} | ${r.ms ? r.ms.toFixed(3) : ''} | ${r.cold ? r.cold.toFixed(3) : ''} | ${r.v.toFixed(0)} ${r.unit} | ${r.bnb ?? ''} | ${r.ratio ? r.ratio.toFixed(2) : ''} |`,
  );

const copy = gemvRows.pop();
console.log(
  `\nIssue 17 — gemv4bit / matmul4bit, nf4 bs64, A bf16 [M, 8192], W 28672x8192 (${((copy.copyBw * copy.copyMs) / 2 / 1e3).toFixed(0)} MB of weight bytes); device copy of those bytes: ${copy.copyMs.toFixed(3)} ms, ${copy.copyBw.toFixed(0)} GB/s (read + write)\n`,
);
console.log('| kernel | M | ms | cold-L2 ms | weight GB/s | x copy bandwidth | TFLOPS |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of gemvRows.filter((r) => r.bw !== undefined))
  console.log(
    `| ${r.label} | ${r.M} | ${r.ms.toFixed(3)} | ${r.cold ? r.cold.toFixed(3) : ''} | ${r.bw.toFixed(0)} | ${r.ratio.toFixed(2)} | ${r.tflops.toFixed(1)} |`,
  );
for (const r of gemvRows.filter((r) => r.goal !== undefined))
  console.log(
    `\nM = ${r.M}: gemv4bit ${r.ms.toFixed(3)} ms against cuBLAS GEMM + dequantize ${r.goal.toFixed(3)} ms: ${(r.goal / r.ms).toFixed(2)} (goal >= 0.9)`,
  );
