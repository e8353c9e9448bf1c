// The int8-activation mode's error on a real checkpoint (issue 17): every 4-bit linear layer of
// the tiny Llama in ../shared/models/tiny-llama-nf4-dq (nf4, double quant) run on 64 random
// Gaussian activation rows (float32, and with heavy-tailed rows: 1% of elements x20), int8 and
// exact mode against a float64 product with the dequantized weight. Per layer: relative error
// (mean |out - ref| / mean |ref|), and how many of the 64 rows keep the float64 argmax.
// Usage: npm run build && node bench/gemv-int8-llama.mjs [models folder]
import { matmul4bit, tensor, toFloat32 } from '../dist/index.js';
import { DEFAULT_MODEL, layers4bit, readAll } from './llama-checkpoint.mjs';

const dir = process.argv[2] ?? DEFAULT_MODEL;
const layers = layers4bit(await readAll(`${dir}/model.safetensors`));
const modules = Object.keys(layers);

let seed = 11;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const normal = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
const M = 64;

const rows = [];
const totals = { int8: [0, 0, 0], exact: [0, 0, 0] };
for (const mod of modules) {
  const { B, st, W } = layers[mod];
  const [N, K] = st.shape;
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
