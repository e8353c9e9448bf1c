// The tiny Llama's logits through bnbjs (issue 17): a plain Llama forward pass (RMSNorm, rotary
// attention with grouped KV heads, SiLU MLP) in JS whose every 4-bit linear layer is bnbjs'
// matmul4bit, in the exact mode and in the int8-activation mode, against the same forward in
// float64 on the dequantized weights, and against transformers' own logits stored with the
// checkpoint (reference.safetensors: bf16 compute on the GPU). Per mode: max |logit difference|,
// and how many positions keep the float64 argmax, on the reference ids and on random sequences.
// Usage: npm run build && node bench/llama-logits.mjs [--seqs 16] [--len 32] [model folder]
import { readFile } from 'node:fs/promises';
import { matmul4bit, tensor, toFloat32 } from '../dist/index.js';
import { DEFAULT_MODEL, layers4bit, readAll } from './llama-checkpoint.mjs';

const argv = process.argv.slice(2);
const opt = (name, d) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : d);
const dir = argv.find((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--')) ?? DEFAULT_MODEL;
const SEQS = opt('--seqs', 16),
  LEN = opt('--len', 32);

const sd = await readAll(`${dir}/model.safetensors`);
const ref = await readAll(`${dir}/reference.safetensors`);
const config = JSON.parse(await readFile(`${dir}/config.json`, 'utf8'));
const H = config.hidden_size,
  NH = config.num_attention_heads,
  KVH = config.num_key_value_heads,
  HD = config.head_dim ?? H / NH,
  EPS = config.rms_norm_eps,
  THETA = config.rope_parameters?.rope_theta ?? config.rope_theta ?? 10000;
const f32 = (name) => toFloat32(sd[name]);

// every 4-bit linear layer: packed weight, its QuantState, and its float64 dequantized weight
const layers = layers4bit(sd);

// y = x @ W^T in float64
const plainLinear = (x, T, W, N, K) => {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[t * K + k] * W[n * K + k];
      y[t * N + n] = s;
    }
  return y;
};

// y = x @ W^T for x [T, K] (Float64Array), by mode
function linear(mod, x, T, mode) {
  const { B, st, W, shape } = layers[mod];
  const [N, K] = shape;
  if (mode === 'f64') return plainLinear(x, T, W, N, K);
  const out = matmul4bit(tensor(Float32Array.from(x), [T, K]), B, st, { accuracy: mode });
  return Float64Array.from(toFloat32(out));
}

function rmsnorm(x, T, w) {
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < H; i++) ss += x[t * H + i] ** 2;
    const r = 1 / Math.sqrt(ss / H + EPS);
    for (let i = 0; i < H; i++) y[t * H + i] = x[t * H + i] * r * w[i];
  }
  return y;
}

function rope(x, T, heads) {
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < HD / 2; i++) {
        const f = t / THETA ** ((2 * i) / HD);
        const c = Math.cos(f),
          s = Math.sin(f);
        const p = (t * heads + h) * HD;
        const a = x[p + i],
          b = x[p + i + HD / 2];
        x[p + i] = a * c - b * s;
        x[p + i + HD / 2] = b * c + a * s;
      }
}

function forward(ids, mode) {
  const T = ids.length;
  const emb = f32('model.embed_tokens.weight');
  let h = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) h[t * H + i] = emb[ids[t] * H + i];
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const x = rmsnorm(h, T, f32(`${p}.input_layernorm.weight`));
    const q = linear(`${p}.self_attn.q_proj`, x, T, mode),
      k = linear(`${p}.self_attn.k_proj`, x, T, mode),
      v = linear(`${p}.self_attn.v_proj`, x, T, mode);
    rope(q, T, NH);
    rope(k, T, KVH);
    const att = new Float64Array(T * NH * HD);
    for (let hh = 0; hh < NH; hh++) {
      const kv = Math.floor(hh / (NH / KVH));
      for (let t = 0; t < T; t++) {
        const sc = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let u = 0; u <= t; u++) {
          let s = 0;
          for (let i = 0; i < HD; i++) s += q[(t * NH + hh) * HD + i] * k[(u * KVH + kv) * HD + i];
          sc[u] = s / Math.sqrt(HD);
          mx = Math.max(mx, sc[u]);
        }
        let z = 0;
        for (let u = 0; u <= t; u++) z += sc[u] = Math.exp(sc[u] - mx);
        for (let u = 0; u <= t; u++) for (let i = 0; i < HD; i++) att[(t * NH + hh) * HD + i] += (sc[u] / z) * v[(u * KVH + kv) * HD + i];
      }
    }
    const o = linear(`${p}.self_attn.o_proj`, att, T, mode);
    for (let i = 0; i < h.length; i++) h[i] += o[i];
    const y = rmsnorm(h, T, f32(`${p}.post_attention_layernorm.weight`));
    const g = linear(`${p}.mlp.gate_proj`, y, T, mode),
      u = linear(`${p}.mlp.up_proj`, y, T, mode);
    for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    const d = linear(`${p}.mlp.down_proj`, g, T, mode);
    for (let i = 0; i < h.length; i++) h[i] += d[i];
  }
  const V = config.vocab_size;
  return plainLinear(rmsnorm(h, T, f32('model.norm.weight')), T, f32('lm_head.weight'), V, H);
}

function compare(a, b, T) {
  const V = config.vocab_size;
  let max = 0,
    agree = 0;
  for (let t = 0; t < T; t++) {
    let ia = 0,
      ib = 0;
    for (let i = 0; i < V; i++) {
      max = Math.max(max, Math.abs(a[t * V + i] - b[t * V + i]));
      if (a[t * V + i] > a[t * V + ia]) ia = i;
      if (b[t * V + i] > b[t * V + ib]) ib = i;
    }
    if (ia === ib) agree++;
  }
  return { max, agree };
}

const rawIds = ref.input_ids.data; // I64: raw little-endian bytes
const ids = Array.from(new BigInt64Array(rawIds.buffer.slice(rawIds.byteOffset, rawIds.byteOffset + rawIds.byteLength)), Number);
const theirs = Float64Array.from(toFloat32(ref.logits));
const T0 = ids.length;
const base = forward(ids, 'f64');
console.log(`${dir}: ${config.num_hidden_layers} layers, hidden ${H}, vocab ${config.vocab_size}`);
console.log(`\nreference ids (${T0} positions): transformers' logits (bf16 compute) against this forward`);
console.log('| forward | max |logit diff| vs transformers | argmax = transformers | max |diff| vs float64 | argmax = float64 |');
console.log('|---|---:|---:|---:|---:|');
for (const mode of ['f64', 'exact', 'int8']) {
  const l = mode === 'f64' ? base : forward(ids, mode);
  const a = compare(l, theirs, T0),
    b = compare(l, base, T0);
  console.log(`| ${mode} | ${a.max.toExponential(2)} | ${a.agree}/${T0} | ${b.max.toExponential(2)} | ${b.agree}/${T0} |`);
}
let seed = 5;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const tot = { exact: { max: 0, agree: 0 }, int8: { max: 0, agree: 0 } };
for (let s = 0; s < SEQS; s++) {
  const seq = Array.from({ length: LEN }, () => Math.floor(rnd() * config.vocab_size));
  const f = forward(seq, 'f64');
  for (const mode of ['exact', 'int8']) {
    const c = compare(forward(seq, mode), f, LEN);
    tot[mode].max = Math.max(tot[mode].max, c.max);
    tot[mode].agree += c.agree;
  }
}
console.log(`\n${SEQS} random sequences of ${LEN} tokens: against the float64 forward`);
console.log('| forward | max |logit diff| | argmax = float64 |');
console.log('|---|---:|---:|');
for (const mode of ['exact', 'int8']) console.log(`| ${mode} | ${tot[mode].max.toExponential(2)} | ${tot[mode].agree}/${SEQS * LEN} |`);
