// Peak memory and throughput of `quantize` and `dequantize` on generated checkpoints of
// two sizes (default 200 MB and 2 GB of bf16 weights): peak RSS must not grow with the
// checkpoint (within 1.5x of each other plus the largest tensor).
// Usage: npm run build && node bench/checkpoint.mjs [--small MB] [--large MB] [--dir DIR]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSafetensorsWriter } from '../dist/node.js';

const arg = (k, d) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1] : d);
const dir = mkdtempSync(join(arg('--dir', tmpdir()), 'bnbjs-ckpt-bench-'));
const HIDDEN = 2048, INTER = 5632; // a TinyLlama-sized layer: 7 projections, ~44 M parameters

/** Writes a Llama-shaped bf16 checkpoint of about `mb` megabytes, one tensor at a time. */
async function generate(path, mb) {
  const shapes = [];
  const layers = Math.max(1, Math.round((mb * 2 ** 20) / 2 / (4 * HIDDEN * HIDDEN + 3 * HIDDEN * INTER)));
  for (let l = 0; l < layers; l++) {
    for (const p of ['q', 'k', 'v', 'o']) shapes.push([`model.layers.${l}.self_attn.${p}_proj.weight`, [HIDDEN, HIDDEN]]);
    shapes.push([`model.layers.${l}.mlp.gate_proj.weight`, [INTER, HIDDEN]], [`model.layers.${l}.mlp.up_proj.weight`, [INTER, HIDDEN]]);
    shapes.push([`model.layers.${l}.mlp.down_proj.weight`, [HIDDEN, INTER]], [`model.layers.${l}.input_layernorm.weight`, [HIDDEN]]);
  }
  const w = await createSafetensorsWriter(join(path, 'model.safetensors'), shapes.map(([name, shape]) => ({ name, dtype: 'BF16', shape })), { metadata: { format: 'pt' } });
  let seed = 1;
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      data[i] = 0x3c00 + (seed >>> 22) - 512 + ((seed & 1) << 15); // |x| in about [0.004, 0.03]
    }
    await w.write(name, { dtype: 'bfloat16', shape, data, device: 'cpu' });
  }
  await w.finish();
  return { layers, bytes: shapes.reduce((s, [, sh]) => s + 2 * sh.reduce((a, b) => a * b, 1), 0), largest: 2 * HIDDEN * INTER };
}

function run(script) {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').pop());
}

const job = (fn, input, output, opts) => `
import { ${fn} } from '${new URL('../dist/node.js', import.meta.url).href}';
const r = await ${fn}(${JSON.stringify(input)}, ${JSON.stringify(output)}, ${JSON.stringify(opts)});
console.log(JSON.stringify({ ...r, peakRss: process.resourceUsage().maxRSS * 1024 }));`;

const rows = [];
try {
  for (const mb of [Number(arg('--small', 200)), Number(arg('--large', 2048))]) {
    const src = join(dir, `bf16-${mb}`);
    execFileSync('mkdir', ['-p', src]);
    const g = await generate(src, mb);
    const q = run(job('quantizeCheckpoint', join(src, 'model.safetensors'), join(dir, `nf4-${mb}.safetensors`), { format: 'nf4', doubleQuant: true }));
    const d = run(job('dequantizeCheckpoint', join(dir, `nf4-${mb}.safetensors`), join(dir, `back-${mb}.safetensors`), {}));
    rows.push({ mb, g, q, d });
    rmSync(src, { recursive: true, force: true });
    rmSync(join(dir, `back-${mb}.safetensors`), { force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const fmt = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
console.log(`\n### ${new Date().toISOString().slice(0, 10)} — checkpoint conversion, Node ${process.version}, 1 thread\n`);
console.log('Command: `npm run build && node bench/checkpoint.mjs` (generated Llama-shaped bf16 checkpoints, nf4 + double quant)\n');
console.log('| checkpoint | step | input | output | time | throughput (input MB/s) | peak RSS |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const { g, q, d } of rows) {
  for (const [step, r] of [['quantize', q], ['dequantize', d]]) {
    console.log(`| ${fmt(g.bytes)} | ${step} | ${fmt(r.bytesIn)} | ${fmt(r.bytesOut)} | ${r.seconds.toFixed(1)} s | ${(r.bytesIn / 2 ** 20 / r.seconds).toFixed(0)} | ${fmt(r.peakRss)} |`);
  }
}
const [s, l] = rows;
for (const step of ['q', 'd']) {
  const bound = 1.5 * s[step].peakRss + l.g.largest;
  console.log(`\n${step === 'q' ? 'quantize' : 'dequantize'}: peak RSS ${fmt(l[step].peakRss)} (large) vs ${fmt(s[step].peakRss)} (small); bound 1.5x small + largest tensor = ${fmt(bound)}: ${l[step].peakRss <= bound ? 'within' : 'EXCEEDED'}`);
}
