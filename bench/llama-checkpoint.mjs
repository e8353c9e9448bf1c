// The tiny Llama checkpoint for the benches that run its 4-bit layers (gemv-int8-llama.mjs,
// llama-logits.mjs): every tensor of a file, and each nf4 layer's packed weight, QuantState and
// float32 dequantized weight.
import { fileURLToPath } from 'node:url';
import { QuantState, dequantize4bit, toFloat32 } from '../dist/index.js';
import { openSafetensors } from '../dist/node.js';

export const DEFAULT_MODEL = fileURLToPath(new URL('../../shared/models/tiny-llama-nf4-dq/', import.meta.url));

/** Every tensor of a .safetensors file, by name (bnbjs tensors; raw bytes for other dtypes). */
export async function readAll(path) {
  const r = await openSafetensors(path);
  const out = {};
  for (const name of r.names()) out[name] = await r.read(name);
  await r.close();
  return out;
}

const SUFFIX = '.weight.quant_state.bitsandbytes__nf4';

/** { module: { B, st, W, shape } } for every nf4 layer of the state dict `sd`. */
export function layers4bit(sd) {
  const layers = {};
  for (const name of Object.keys(sd)) {
    if (!name.endsWith(SUFFIX)) continue;
    const mod = name.slice(0, -SUFFIX.length);
    const items = {};
    for (const [k, v] of Object.entries(sd)) if (k.startsWith(`${mod}.weight.`)) items[k] = v;
    const st = QuantState.fromDict(items);
    const B = sd[`${mod}.weight`];
    const W = toFloat32(dequantize4bit(B, new QuantState({ ...st, dtype: 'float32', state2: st.state2, offset: st.offset })));
    layers[mod] = { B, st, W, shape: st.shape };
  }
  return layers;
}
