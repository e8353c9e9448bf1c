// The tiny real checkpoints written by transformers + bitsandbytes (../shared/models).
import { describe, expect, it } from 'vitest';
import { QuantState, dequantize4bit, quantize4bit, Tensor } from '../src/index.js';
import { compressAbsmax } from '../src/backend/wasm/blockwise.js';
import { SHARED, bytes, diffElements, loadSafetensors } from './helpers/golden.js';

const dir = `${SHARED}/models`;
const nf4 = loadSafetensors(`${dir}/tiny-llama-nf4-dq/model.safetensors`);
const reference = loadSafetensors(`${dir}/tiny-llama-nf4-dq/reference.safetensors`);
const original = loadSafetensors(`${dir}/tiny-llama-bf16/model.safetensors`);
const modules = Object.keys(reference)
  .filter((k) => k.endsWith('.dequantized'))
  .map((k) => k.slice(0, -'.dequantized'.length));

function layerState(module: string): QuantState {
  const prefix = `${module}.weight.`;
  const items: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(nf4)) if (k.startsWith(prefix)) items[k] = v;
  return QuantState.fromDict(items);
}

describe('tiny-llama-nf4-dq (nf4, double quant, bf16)', () => {
  it('has the 14 quantized linear layers', () => {
    expect(modules.length).toBe(14);
  });

  it('dequantizes every layer exactly as bitsandbytes does', () => {
    for (const m of modules) {
      const state = layerState(m);
      expect(state.quantType).toBe('nf4');
      expect(state.nested).toBe(true);
      const out = dequantize4bit(nf4[`${m}.weight`]!, state);
      expect(out.dtype).toBe('bfloat16');
      expect(out.shape, m).toEqual(reference[`${m}.dequantized`]!.shape);
      expect(diffElements(out, reference[`${m}.dequantized`]!), m).toEqual([]);
    }
  });

  it('re-quantizing the bf16 original reproduces the checkpoint bytes', () => {
    for (const m of modules) {
      const W = original[`${m}.weight`]!;
      const stored = layerState(m);
      const [packed, state] = quantize4bit(W, { quantType: 'nf4', compressStatistics: true, blocksize: 64 });
      expect(Buffer.from(bytes(packed)).equals(Buffer.from(bytes(nf4[`${m}.weight`]!))), m).toBe(true);
      // The offset is torch's CUDA mean; replay it to compare the nested bytes.
      const plain = quantize4bit(W, { quantType: 'nf4', blocksize: 64 })[1].absmax.data as Float32Array;
      const replay = compressAbsmax(plain, 256, stored.offset!);
      expect(bytes(replay.absmax), m).toEqual(bytes(stored.absmax));
      expect(bytes(replay.state2.absmax), m).toEqual(bytes(stored.state2!.absmax));
      const blob = new QuantState({ ...state, ...replay }).asDict({ packed: true })['quant_state.bitsandbytes__nf4'] as Tensor;
      expect(bytes(blob), m).toEqual(bytes(nf4[`${m}.weight.quant_state.bitsandbytes__nf4`]!));
    }
  });
});
