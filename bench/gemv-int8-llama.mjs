// The int8-activation mode's error on a real checkpoint (issue 17): every 4-bit linear layer of
// the tiny Llama in ../shared/models/tiny-llama-nf4-dq (nf4, double quant) run on 64 random
// Gaussian activation rows (float32, and with heavy-tailed rows: 1% of elements x20), int8 and
// exact mode against a float64 product with the dequantized weight. Per layer: relative error
// (mean |out - ref| / mean |ref|), and how many of the 64 rows keep the float64 argmax.
// Usage: npm run build && node bench/gemv-int8-llama.mjs [models folder]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { QuantState, dequantize4bit, matmul4bit, tensor, toFloat32 } from '../dist/index.js';

const dir = process.argv[2] ?? fileURLToPath(new URL('../../shared/models/tiny-llama-nf4-dq/', import.meta.url));
function load(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  const T = { U8: [Uint8Array, 'uint8'], F32: [Float32Array, 'float32'], BF16: [Uint16Array, 'bfloat16'], F16: [Uint16Array, 'float16'] };
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__' || !T[info.dtype]) continue;
    const [a, b] = info.data_offsets;
    const [C, dtype] = T[info.dtype];
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const data = new C(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    out[name] = tensor(data, info.shape.length ? info.shape : [data.length], dtype);
  }
  return out;
}
const sd = load(`${dir}/model.safetensors`);
const modules = Object.keys(sd)
  .filter((k) => k.endsWith('.weight.quant_state.bitsandbytes__nf4'))
  .map((k) => k.slice(0, -'.weight.quant_state.bitsandbytes__nf4'.length));

let seed = 11;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
const M = 64;

const rows = [];
const totals = { int8: [0, 0, 0], exact: [0, 0, 0] };
for (const mod of modules) {
  const items = {};
  for (const [k, v] of Object.entries(sd)) if (k.startsWith(`${mod}.weight.`)) items[k] = v;
  const st0 = QuantState.fromDict(items);
  const st = new QuantState({ ...st0, dtype: 'float32', state2: st0.state2, offset: st0.offset });
  const B = sd[`${mod}.weight`];
  const [N, K] = st.shape;
  const W = toFloat32(dequantize4bit(B, st));
  for (const tails of [false, true]) {
    const a = Float32Array.from({ length: M * K }, () => normal() * (tails && rnd() < 0.01 ? 20 : 1));
    const A = tensor(a, [M, K]);
    const ref = new Float64Array(M * N);
    for (let i = 0; i < M; i++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[i * K + k] * W[n * K + k];
        ref[i * N + n] = s;
      }
    const res = {};
    for (const acc of ['int8', 'exact']) {
      const o = toFloat32(matmul4bit(A, B, st, { accuracy: acc }));
      let err = 0,
        mag = 0,
        agree = 0;
      for (let i = 0; i < M; i++) {
        let bo = 0,
          br = 0;
        for (let n = 0; n < N; n++) {
          err += Math.abs(o[i * N + n] - ref[i * N + n]);
          mag += Math.abs(ref[i * N + n]);
          if (o[i * N + n] > o[i * N + bo]) bo = n;
          if (ref[i * N + n] > ref[i * N + br]) br = n;
        }
        if (bo === br) agree++;
      }
      res[acc] = { rel: err / mag, agree };
      totals[acc][0] += err / mag;
      totals[acc][1] += agree;
      totals[acc][2] += M;
    }
    rows.push(
      `| ${mod} | ${N}x${K} | ${tails ? 'heavy-tailed' : 'Gaussian'} | ${res.int8.rel.toExponential(2)} | ${res.exact.rel.toExponential(2)} | ${res.int8.agree}/${M} | ${res.exact.agree}/${M} |`,
    );
  }
}
console.log(`tiny-llama-nf4-dq, ${modules.length} layers, ${M} random rows each (float32), against float64 with the dequantized weight`);
console.log('| layer | N x K | activations | int8 rel. error | exact rel. error | int8 argmax = f64 | exact argmax = f64 |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
const n = rows.length;
console.log(
  `| all | | | mean ${(totals.int8[0] / n).toExponential(2)} | mean ${(totals.exact[0] / n).toExponential(2)} | ${totals.int8[1]}/${totals.int8[2]} | ${totals.exact[1]}/${totals.exact[2]} |`,
);
