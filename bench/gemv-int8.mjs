// gemv4bit / matmul4bit, int8-activation mode against the exact mode and a memcpy of the
// weight bytes (the DRAM floor), issue 17: N = 14336, K = 4096, nf4 bs64, A float32,
// weights resident (wasmTensor), M = 1 and 8, 1 and 2 threads. Calls interleaved (exact,
// int8, memcpy in turn), the caches flushed before each (a 64 MB buffer read), medians.
// Usage: npm run build && node bench/gemv-int8.mjs [--rounds N] [--n N] [--k K]
import { QuantState, isResident, matmul4bit, quantize4bit, setNumThreads, tensor, wasmBuild, wasmTensor } from '../dist/index.js';
import { maxThreads, setParallelThreshold } from '../dist/backend/wasm/threads/config.js';

const arg = (name, d) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : d);
const rounds = arg('--rounds', 15);
const N = arg('--n', 14336),
  K = arg('--k', 4096);

let seed = 7;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const W = Float32Array.from({ length: N * K }, () => rnd() * 2 - 1);
const [qB, st] = quantize4bit(tensor(W, [N, K]), { quantType: 'nf4', blocksize: 64 });
const rqB = wasmTensor(qB),
  rAbsmax = wasmTensor(st.absmax);
const rst = new QuantState({ ...st, absmax: rAbsmax });
if (!isResident(rqB)) console.log('(no shared kernel memory: the weights are copied per call)');
const weightBytes = qB.data.byteLength + st.absmax.data.byteLength;
const src = new Uint8Array(weightBytes),
  dst = new Uint8Array(weightBytes);
src.fill(1);
const flushBuf = new Float64Array(8 << 20); // 64 MB
let sink = 0;
function flush() {
  let s = 0;
  for (let i = 0; i < flushBuf.length; i += 8) s += flushBuf[i];
  sink += s;
}
const A = {
  1: tensor(
    Float32Array.from({ length: K }, () => rnd() * 2 - 1),
    [1, K],
  ),
  8: tensor(
    Float32Array.from({ length: 8 * K }, () => rnd() * 2 - 1),
    [8, K],
  ),
};
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const time = (f) => {
  flush();
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};

setParallelThreshold(0);
const threadCounts = [1, Math.min(2, maxThreads())].filter((t, i, a) => a.indexOf(t) === i);
console.log(
  `gemv4bit int8 vs exact: N ${N}, K ${K}, nf4 bs64, A f32, ${(weightBytes / 1e6).toFixed(1)} MB of weights, build ${wasmBuild()}, ${rounds} rounds, medians (ms)`,
);
console.log('| M | threads | exact | int8 | memcpy of the weight bytes | int8 / memcpy (floor fraction) | exact / int8 |');
console.log('|---|---|---|---|---|---|---|');
for (const M of [1, 8]) {
  for (const T of threadCounts) {
    setNumThreads(T);
    const a = A[M];
    const runs = {
      exact: () => matmul4bit(a, rqB, rst),
      int8: () => matmul4bit(a, rqB, rst, { accuracy: 'int8' }),
      memcpy: () => dst.set(src),
    };
    for (const f of Object.values(runs)) f(); // warm-up
    const ts = { exact: [], int8: [], memcpy: [] };
    for (let r = 0; r < rounds; r++) for (const [k, f] of Object.entries(runs)) ts[k].push(time(f));
    const m = Object.fromEntries(Object.entries(ts).map(([k, v]) => [k, median(v)]));
    console.log(
      `| ${M} | ${T} | ${m.exact.toFixed(2)} | ${m.int8.toFixed(2)} | ${m.memcpy.toFixed(2)} | ${(m.memcpy / m.int8).toFixed(2)} | ${(m.exact / m.int8).toFixed(2)} |`,
    );
  }
}
if (sink === 42) console.log('');
