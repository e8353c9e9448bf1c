// bnbjs dequantize: a bitsandbytes-quantized Hugging Face checkpoint -> plain 16/32-bit weights.
import { join } from 'node:path';
import { BnbError, show } from '../errors.js';
import { FLOAT_DTYPES, FloatDType } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, isTensor } from '../tensor.js';
import { dequantize4bit } from '../ops/dequantize4bit.js';
import { int8VectorwiseDequantCast } from '../ops/int8-cast.js';
import { CheckpointReader, PlannedTensor, createSafetensorsWriter, openCheckpoint } from '../io/safetensors-file.js';
import { SafetensorsDType, StoredTensor } from '../io/safetensors.js';
import { Layer4bit, LayerInt8, findLayers } from './layers.js';
import { copyCompanions, isDirectory, prepareTarget, readConfig, writeConfig } from './files.js';
import { ConversionReport, Progress, ST_DTYPE, readBlobJson, writeAll } from './common.js';

export interface DequantizeCheckpointOptions {
  /** dtype of the dequantized layers (default: the 4-bit state's dtype; for LLM.int8 the model's dtype) */
  dtype?: FloatDType;
  force?: boolean;
  onProgress?: Progress;
}

function tensorOf(t: StoredTensor, name: string): Tensor {
  if (!isTensor(t) || !(t as Tensor).dtype) throw new BnbError('E_CKPT_FORMAT', `${name} has an unexpected dtype`);
  return t as Tensor;
}

/**
 * Dequantizes every bitsandbytes layer of a checkpoint (a .safetensors file or a
 * model folder, sharded or not) and writes the result, one tensor at a time.
 * Other tensors pass through unchanged; a folder output gets config.json without
 * its quantization_config and the folder's other files.
 */
export async function dequantizeCheckpoint(input: string, output: string, opts: DequantizeCheckpointOptions = {}): Promise<ConversionReport> {
  const started = performance.now();
  if (opts.dtype !== undefined && !(FLOAT_DTYPES as readonly string[]).includes(opts.dtype)) {
    throw new BnbError('E_DTYPE', `dtype = ${show(opts.dtype)} is not accepted: expected one of ${FLOAT_DTYPES.join(', ')}`);
  }
  const folder = await isDirectory(input);
  const config = folder ? await readConfig(input) : null;
  const modelDType = (config?.dtype ?? config?.torch_dtype) as FloatDType | undefined;
  const reader = await openCheckpoint(input);
  const target = await prepareTarget(output, folder, opts.force ?? false);
  try {
    const names = reader.names();
    const { layers, passthrough } = findLayers(names);
    const state4 = new Map<string, { shape: number[]; dtype: FloatDType }>();
    for (const l of layers) {
      if (l.kind !== '4bit') continue;
      const blob = l.stateKeys.find((k) => k.includes('.quant_state.'))!;
      const json = (await readBlobJson(reader, blob)) as { shape?: number[]; dtype?: FloatDType };
      if (!Array.isArray(json.shape) || !(FLOAT_DTYPES as readonly unknown[]).includes(json.dtype)) {
        throw new BnbError('E_CKPT_QUANT_STATE', `${blob}: expected "shape" and a float "dtype", got ${show(JSON.stringify(json))}`);
      }
      state4.set(l.module, { shape: json.shape, dtype: json.dtype! });
    }
    const int8DType: FloatDType = opts.dtype ?? (modelDType && (FLOAT_DTYPES as readonly string[]).includes(modelDType) ? modelDType : 'float32');
    const plan: PlannedTensor[] = [];
    const byWeight = new Map(layers.map((l) => [l.weight, l]));
    for (const name of names) {
      const layer = byWeight.get(name);
      if (layer?.kind === '4bit') {
        const s = state4.get(layer.module)!;
        plan.push({ name, dtype: ST_DTYPE[opts.dtype ?? s.dtype], shape: s.shape });
      } else if (layer?.kind === 'int8') {
        plan.push({ name, dtype: ST_DTYPE[int8DType], shape: reader.info(name).shape });
      } else if (passthrough.includes(name)) {
        const i = reader.info(name);
        plan.push({ name, dtype: i.dtype as SafetensorsDType, shape: i.shape });
      }
    }
    // a file output is committed without replacing what appeared meanwhile (unless force)
    const writer = await createSafetensorsWriter(target.weights, plan, { metadata: reader.metadata ?? { format: 'pt' }, force: target.dir !== null || (opts.force ?? false) });
    let bytesOut = 0;
    await writeAll(writer, async () => {
      for (const [i, p] of plan.entries()) {
        const layer = byWeight.get(p.name);
        let out: StoredTensor;
        if (layer?.kind === '4bit') out = await dequantizeLayer4bit(reader, layer, opts.dtype);
        else if (layer?.kind === 'int8') out = await dequantizeLayerInt8(reader, layer, int8DType);
        else out = await reader.read(p.name);
        await writer.write(p.name, out);
        bytesOut += out.data.byteLength;
        opts.onProgress?.(i + 1, plan.length, p.name);
      }
    });
    if (target.dir !== null) {
      await copyCompanions(input, target.dir);
      if (config) {
        const { quantization_config: _q, ...rest } = config;
        await writeConfig(target.dir, rest);
      }
    }
    await target.commit();
    return {
      output, tensors: plan.length, layers: layers.length, bytesIn: names.reduce((t, n) => t + reader.info(n).end - reader.info(n).start, 0), bytesOut,
      seconds: (performance.now() - started) / 1000,
      file: target.dir === null ? output : join(output, 'model.safetensors'),
    };
  } catch (e) {
    await target.abort();
    throw e;
  } finally {
    await reader.close();
  }
}

async function dequantizeLayer4bit(reader: CheckpointReader, l: Layer4bit, dtype?: FloatDType): Promise<Tensor> {
  const items: Record<string, unknown> = {};
  for (const k of l.stateKeys) items[k] = await reader.read(k);
  let state: QuantState;
  try {
    state = QuantState.fromDict(items);
  } catch (e) {
    if (e instanceof BnbError) throw new BnbError(e.code, `${l.module}: ${e.message}`);
    throw e;
  }
  if (dtype !== undefined) state = new QuantState({ ...state, dtype });
  return dequantize4bit(tensorOf(await reader.read(l.weight), l.weight), state);
}

async function dequantizeLayerInt8(reader: CheckpointReader, l: LayerInt8, dtype: FloatDType): Promise<Tensor> {
  if (l.format !== null) {
    const f = await reader.read(l.format);
    const v = f.data.length === 1 ? Number(f.data[0]) : NaN;
    if (v !== 0) {
      throw new BnbError('E_CKPT_FORMAT', `${l.format} = ${show(Array.from(f.data as Uint8Array))}: only the 'row' weight format (0) is supported`);
    }
  }
  const CB = tensorOf(await reader.read(l.weight), l.weight);
  const SCB = tensorOf(await reader.read(l.scb), l.scb);
  if (CB.dtype !== 'int8' || CB.shape.length !== 2) throw new BnbError('E_CKPT_FORMAT', `${l.weight} must be a 2-D int8 tensor (LLM.int8 CB), got ${CB.dtype} ${show(CB.shape)}`);
  // W = CB * SCB / 127, as bitsandbytes' int8_vectorwise_dequant
  return int8VectorwiseDequantCast(CB, SCB, dtype);
}
