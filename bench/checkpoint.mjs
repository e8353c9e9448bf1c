// Checkpoint conversion benchmarks on generated Llama-shaped bf16 checkpoints.
//
// Default mode: peak memory and throughput of `quantize` and `dequantize` (nf4 + double
// quant) on two sizes (200 MB and 2 GB): peak RSS must not grow with the checkpoint
// (within 1.5x of each other plus the largest tensor).
//   npm run build && node bench/checkpoint.mjs [--small MB] [--large MB] [--dir DIR]
//
// --int8 mode (issue 14): int8 against nf4 on one model folder (hidden 1536, intermediate
// 4000, 3 layers, vocab 8000, bf16 config.json so that int8 dequantizes back to bf16):
// quantize nf4, quantize int8, dequantize each result, every conversion in a fresh process,
// interleaved, repeated; prints medians and the int8/nf4 ratios.
//   npm run build && node bench/checkpoint.mjs --int8 [--reps N] [--dir DIR]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSafetensorsWriter } from '../dist/node.js';

const arg = (k, d) => (process.argv.includes(k) ? process.argv[process.argv.indexOf(k) + 1] : d);
const dir = mkdtempSync(join(arg('--dir', tmpdir()), 'bnbjs-ckpt-bench-'));
const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/** The tensors of `layers` Llama decoder layers (7 projections and 2 norms each). */
function layerShapes(layers, hidden, inter) {
  const shapes = [];
  for (let l = 0; l < layers; l++) {
    for (const p of ['q', 'k', 'v', 'o']) shapes.push([`model.layers.${l}.self_attn.${p}_proj.weight`, [hidden, hidden]]);
    shapes.push([`model.layers.${l}.mlp.gate_proj.weight`, [inter, hidden]], [`model.layers.${l}.mlp.up_proj.weight`, [inter, hidden]]);
    shapes.push([`model.layers.${l}.mlp.down_proj.weight`, [hidden, inter]]);
    shapes.push([`model.layers.${l}.input_layernorm.weight`, [hidden]], [`model.layers.${l}.post_attention_layernorm.weight`, [hidden]]);
  }
  return shapes;
}

/** Writes a bf16 safetensors file of these tensors, one at a time, |x| in about [0.004, 0.03]. */
async function writeModel(file, shapes) {
  const w = await createSafetensorsWriter(
    file,
    shapes.map(([name, shape]) => ({ name, dtype: 'BF16', shape })),
    { metadata: { format: 'pt' } },
  );
  let seed = 1;
  for (const [name, shape] of shapes) {
    const n = numel(shape);
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      data[i] = 0x3c00 + (seed >>> 22) - 512 + ((seed & 1) << 15);
    }
    await w.write(name, { dtype: 'bfloat16', shape, data, device: 'cpu' });
  }
  await w.finish();
}

/** Runs one conversion in a fresh process; its report (the function's own timing) and peak RSS. */
function run(fn, input, output, opts) {
  const script = `
import { ${fn} } from '${new URL('../dist/node.js', import.meta.url).href}';
const r = await ${fn}(${JSON.stringify(input)}, ${JSON.stringify(output)}, ${JSON.stringify(opts)});
console.log(JSON.stringify({ ...r, peakRss: process.resourceUsage().maxRSS * 1024 }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').pop());
}

const fmt = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function memoryRun() {
  const HIDDEN = 2048,
    INTER = 5632; // a TinyLlama-sized layer: 7 projections, ~44 M parameters
  const rows = [];
  for (const mb of [Number(arg('--small', 200)), Number(arg('--large', 2048))]) {
    const src = join(dir, `bf16-${mb}`);
    mkdirSync(src, { recursive: true });
    const layers = Math.max(1, Math.round((mb * 2 ** 20) / 2 / (4 * HIDDEN * HIDDEN + 3 * HIDDEN * INTER)));
    const shapes = layerShapes(layers, HIDDEN, INTER).filter(([n]) => !n.includes('post_attention'));
    await writeModel(join(src, 'model.safetensors'), shapes);
    const g = { bytes: shapes.reduce((s, [, sh]) => s + 2 * numel(sh), 0), largest: 2 * HIDDEN * INTER };
    // --shard SIZE: folders in and out, both outputs sharded at SIZE
    const shard = arg('--shard', null),
      ext = shard ? '' : '.safetensors',
      opts = shard ? { maxShardSize: shard } : {};
    const q = run('quantizeCheckpoint', shard ? src : join(src, 'model.safetensors'), join(dir, `nf4-${mb}${ext}`), {
      format: 'nf4',
      doubleQuant: true,
      ...opts,
    });
    const d = run('dequantizeCheckpoint', join(dir, `nf4-${mb}${ext}`), join(dir, `back-${mb}${ext}`), opts);
    rows.push({ g, q, d });
    rmSync(src, { recursive: true, force: true });
    rmSync(join(dir, `back-${mb}${ext}`), { recursive: true, force: true });
  }
  console.log(
    `\n### ${new Date().toISOString().slice(0, 10)} — checkpoint conversion, Node ${process.version}, ${availableParallelism()} threads (the default)\n`,
  );
  console.log(
    `Command: \`npm run build && node bench/checkpoint.mjs${arg('--shard', null) ? ` --shard ${arg('--shard')}` : ''}\` (generated Llama-shaped bf16 checkpoints, nf4 + double quant)\n`,
  );
  console.log('| checkpoint | step | input | output | files written | time | throughput (input MB/s) | peak RSS |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const { g, q, d } of rows) {
    for (const [step, r] of [
      ['quantize', q],
      ['dequantize', d],
    ]) {
      console.log(
        `| ${fmt(g.bytes)} | ${step} | ${fmt(r.bytesIn)} | ${fmt(r.bytesOut)} | ${r.files.length} | ${r.seconds.toFixed(1)} s | ${(r.bytesIn / 2 ** 20 / r.seconds).toFixed(0)} | ${fmt(r.peakRss)} |`,
      );
    }
  }
  const [s, l] = rows;
  for (const step of ['q', 'd']) {
    const bound = 1.5 * s[step].peakRss + l.g.largest;
    console.log(
      `\n${step === 'q' ? 'quantize' : 'dequantize'}: peak RSS ${fmt(l[step].peakRss)} (large) vs ${fmt(s[step].peakRss)} (small); bound 1.5x small + largest tensor = ${fmt(bound)}: ${l[step].peakRss <= bound ? 'within' : 'EXCEEDED'}`,
    );
  }
}

async function int8Run() {
  const HIDDEN = 1536,
    INTER = 4000,
    LAYERS = 3,
    VOCAB = 8000;
  const reps = Number(arg('--reps', 3));
  const src = join(dir, 'bf16');
  mkdirSync(src);
  const shapes = [
    ['model.embed_tokens.weight', [VOCAB, HIDDEN]],
    ...layerShapes(LAYERS, HIDDEN, INTER),
    ['model.norm.weight', [HIDDEN]],
    ['lm_head.weight', [VOCAB, HIDDEN]],
  ];
  await writeModel(join(src, 'model.safetensors'), shapes);
  writeFileSync(
    join(src, 'config.json'),
    JSON.stringify(
      {
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        dtype: 'bfloat16',
        hidden_size: HIDDEN,
        intermediate_size: INTER,
        num_hidden_layers: LAYERS,
        num_attention_heads: 12,
        num_key_value_heads: 12,
        vocab_size: VOCAB,
        tie_word_embeddings: false,
      },
      null,
      2,
    ),
  );
  const params = shapes.reduce((s, [, sh]) => s + numel(sh), 0);
  const linear = shapes.filter(([n, sh]) => sh.length === 2 && n.startsWith('model.layers.')).reduce((s, [, sh]) => s + numel(sh), 0);
  const steps = ['quantize nf4', 'quantize int8', 'dequantize nf4', 'dequantize int8'];
  const times = Object.fromEntries(steps.map((s) => [s, []]));
  for (let r = 0; r < reps; r++) {
    // alternate which format goes first, so that neither always runs on a warmer machine
    const formats = r % 2 ? ['int8', 'nf4'] : ['nf4', 'int8'];
    for (const f of formats) {
      rmSync(join(dir, f), { recursive: true, force: true });
      times[`quantize ${f}`].push(run('quantizeCheckpoint', src, join(dir, f), { format: f }).seconds);
    }
    for (const f of formats) {
      times[`dequantize ${f}`].push(run('dequantizeCheckpoint', join(dir, f), join(dir, `${f}-back`), { force: true }).seconds);
    }
  }
  const med = Object.fromEntries(steps.map((s) => [s, median(times[s])]));
  console.log(`\n### ${new Date().toISOString().slice(0, 10)} — int8 against nf4, Node ${process.version}, default threads\n`);
  console.log(
    `Command: \`npm run build && node bench/checkpoint.mjs --int8 --reps ${reps}\` (bf16 Llama, hidden ${HIDDEN}, intermediate ${INTER}, ` +
      `${LAYERS} layers, vocab ${VOCAB}: ${(params / 1e6).toFixed(1)} M parameters, ${(linear / 1e6).toFixed(1)} M of them in the ${7 * LAYERS} Linear layers; each conversion in a fresh process)\n`,
  );
  console.log('| step | runs (s) | median (s) |');
  console.log('|---|---|---:|');
  for (const s of steps) console.log(`| ${s} | ${times[s].map((t) => t.toFixed(2)).join(', ')} | ${med[s].toFixed(2)} |`);
  console.log(
    `\nint8/nf4: quantize ${(med['quantize int8'] / med['quantize nf4']).toFixed(2)}, dequantize ${(med['dequantize int8'] / med['dequantize nf4']).toFixed(2)}`,
  );
}

try {
  await (process.argv.includes('--int8') ? int8Run() : memoryRun());
} finally {
  rmSync(dir, { recursive: true, force: true });
}
