// Recognising the quantized layers of a Hugging Face checkpoint from its tensor names:
// those transformers + bitsandbytes write (4-bit and LLM.int8), and FP8 block-quantized
// ones (DeepSeek-V3 / Qwen FP8: a float8_e4m3fn weight with its weight_scale_inv).
import { BnbError, show } from '../errors.js';
import { QuantType } from '../maps.js';

export interface Layer4bit {
  kind: '4bit';
  /** module prefix, e.g. model.layers.0.mlp.down_proj */
  module: string;
  weight: string;
  quantType: QuantType;
  /** the `weight.*` items of the QuantState (absmax, quant_map, nested_*, the JSON blob) */
  stateKeys: string[];
}

export interface LayerInt8 {
  kind: 'int8';
  module: string;
  weight: string;
  scb: string;
  /** `weight_format` key, when present */
  format: string | null;
}

export interface LayerFp8 {
  kind: 'fp8';
  module: string;
  weight: string;
  /** `weight_scale_inv`: the scale per 128x128 tile (or per row, per tensor) */
  scale: string;
  /** `input_scale` of a static activation scheme, dropped with the weight's quantization */
  inputScale: string | null;
}

export type QuantizedLayer = Layer4bit | LayerInt8 | LayerFp8;

export interface CheckpointLayout {
  layers: QuantizedLayer[];
  /** tensors that are not part of a quantized layer (embeddings, norms, biases, ...) */
  passthrough: string[];
}

const BLOB = /^(.*)\.weight\.quant_state\.bitsandbytes__(.*)$/;
const STATE_ITEM = /^(.*)\.weight\.(absmax|quant_map|nested_absmax|nested_quant_map)$/;

/** Sorts a checkpoint's tensor names into quantized layers and pass-through tensors. */
export function findLayers(names: readonly string[]): CheckpointLayout {
  const all = new Set(names);
  const layers: QuantizedLayer[] = [];
  const used = new Set<string>();
  for (const name of names) {
    const m = BLOB.exec(name);
    if (!m) continue;
    const [, module, suffix] = m as unknown as [string, string, string];
    if (suffix !== 'nf4' && suffix !== 'fp4') {
      throw new BnbError(
        'E_CKPT_QUANT_TYPE',
        `${name}: quant_state blob for an unknown quant type ${show(suffix)}: expected bitsandbytes__nf4 or bitsandbytes__fp4`,
      );
    }
    const weight = `${module}.weight`;
    if (!all.has(weight)) throw new BnbError('E_CKPT_MISSING', `${module}: has a quant_state blob but no ${show(weight)} tensor`);
    const stateKeys = names.filter((k) => k.startsWith(`${weight}.`));
    if (stateKeys.filter((k) => BLOB.test(k)).length !== 1) {
      throw new BnbError(
        'E_CKPT_QUANT_STATE',
        `${module}: expected exactly one quant_state blob, found ${show(stateKeys.filter((k) => BLOB.test(k)))}`,
      );
    }
    layers.push({ kind: '4bit', module, weight, quantType: suffix, stateKeys });
    used.add(weight);
    stateKeys.forEach((k) => used.add(k));
  }
  for (const name of names) {
    const m = STATE_ITEM.exec(name);
    if (m && !used.has(name)) {
      throw new BnbError(
        'E_CKPT_QUANT_STATE',
        `${name}: a 4-bit quantization item without its ${m[1]}.weight.quant_state.bitsandbytes__nf4|fp4 blob`,
      );
    }
    if (!name.endsWith('.SCB')) continue;
    const module = name.slice(0, -'.SCB'.length);
    const weight = `${module}.weight`;
    if (!all.has(weight)) throw new BnbError('E_CKPT_MISSING', `${module}: has SCB but no ${show(weight)} tensor`);
    const format = all.has(`${module}.weight_format`) ? `${module}.weight_format` : null;
    layers.push({ kind: 'int8', module, weight, scb: name, format });
    [weight, name].forEach((k) => used.add(k));
    if (format) used.add(format);
  }
  for (const name of names) {
    if (!name.endsWith('.weight_scale_inv')) continue;
    const module = name.slice(0, -'.weight_scale_inv'.length);
    const weight = `${module}.weight`;
    if (!all.has(weight)) throw new BnbError('E_CKPT_MISSING', `${module}: has weight_scale_inv but no ${show(weight)} tensor`);
    if (used.has(weight)) throw new BnbError('E_CKPT_FORMAT', `${module}: both bitsandbytes items and an FP8 weight_scale_inv`);
    const inputScale = all.has(`${module}.input_scale`) ? `${module}.input_scale` : null;
    layers.push({ kind: 'fp8', module, weight, scale: name, inputScale });
    [weight, name, ...(inputScale ? [inputScale] : [])].forEach((k) => used.add(k));
  }
  return { layers, passthrough: names.filter((n) => !used.has(n)) };
}

/** transformers' default: the Linear weights (2-D) that are not embeddings or the output head. */
export function isQuantizableWeight(name: string, shape: readonly number[], skip: RegExp | null): boolean {
  if (!name.endsWith('.weight') || shape.length !== 2) return false;
  const module = name.slice(0, -'.weight'.length);
  if (/(^|\.)lm_head$/.test(module) || /embed|(^|\.)(wte|wpe)$/.test(module)) return false;
  return skip === null || !skip.test(name);
}
