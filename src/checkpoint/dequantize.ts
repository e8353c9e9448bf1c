// bnbjs dequantize: a quantized Hugging Face checkpoint (bitsandbytes 4-bit or LLM.int8,
// or FP8 with block scales) -> plain 16/32-bit weights.
import { BnbError, show } from '../errors.js';
import { FLOAT_DTYPES, FloatDType } from '../dtypes.js';
import { QuantState } from '../quant-state.js';
import { Tensor, isTensor, numel, tensor } from '../tensor.js';
import { dequantize4bit } from '../ops/dequantize4bit.js';
import { int8VectorwiseDequantCast } from '../backend/wasm/int8-cast.js';
import { dequantizeFp8 } from '../ops/fp8.js';
import { openSource } from '../io/open.js';
import type { TensorSource } from '../io/source.js';
import type { PlannedTensor, TensorSink } from '../io/sink.js';
import type { SafetensorsDType } from '../io/safetensors/dtypes.js';
import type { StoredTensor } from '../io/safetensors/tensors.js';
import { PyJson } from '../json/dumps.js';
import { Layer4bit, LayerFp8, LayerInt8, QuantizedLayer, findLayers } from './layers.js';
import { Target, isDirectory } from './files.js';
import { kernelPath } from '../io/files.js';
import { ModelConfig, modelDType, readConfig } from './config.js';
import {
  ConversionOptions,
  ConversionReport,
  SourceConversionReport,
  ST_DTYPE,
  Tally,
  checkFlag,
  checkPaths,
  maxShardSizeOf,
  readBlobJson,
  readConversionOptions,
  report,
  sourceReport,
  writeAll,
} from './common.js';

export interface DequantizeCheckpointOptions extends ConversionOptions {
  /** dtype of the dequantized layers (default: the 4-bit state's dtype; the model's dtype for LLM.int8; bfloat16 for FP8) */
  dtype?: FloatDType;
  /** a checkpoint without quantized layers is copied instead of refused */
  allowEmpty?: boolean;
  /** accept 4-bit quant_states whose absmax, nested_absmax or nested_offset hold NaN or Inf (they dequantize to NaN or Inf) */
  allowNonFinite?: boolean;
}

/** dequantizeSource's options: the tensors' (no paths). */
export type DequantizeSourceOptions = Omit<DequantizeCheckpointOptions, 'force' | 'maxShardSize' | 'trustIndex'>;

function tensorOf(t: StoredTensor, name: string): Tensor {
  if (!isTensor(t) || !(t as Tensor).dtype) throw new BnbError('E_CKPT_FORMAT', `${name} has an unexpected dtype`);
  return t as Tensor;
}

/** The FP8 tile edge from quantization_config.weight_block_size (square tiles; 128 without a config). */
function fp8BlockSize(config: ModelConfig | null): number {
  const q = config?.plain.quantization_config as { weight_block_size?: unknown } | undefined;
  const b = q?.weight_block_size;
  if (b === undefined || b === null) return 128;
  if (!Array.isArray(b) || b.length !== 2 || b[0] !== b[1] || !Number.isSafeInteger(b[0]) || b[0] < 1) {
    throw new BnbError(
      'E_CKPT_FORMAT',
      `quantization_config.weight_block_size = ${show(b)} is not accepted: expected square tiles [n, n] (DeepSeek-V3 and Qwen use [128, 128])`,
    );
  }
  return b[0] as number;
}

/** The options, checked. `files`: dequantizeCheckpoint's (paths), else dequantizeSource's. */
function checkOptions(opts: DequantizeCheckpointOptions, files: boolean) {
  const o = readConversionOptions(
    files ? 'dequantizeCheckpoint' : 'dequantizeSource',
    opts,
    ['dtype', 'allowEmpty', 'allowNonFinite'],
    files,
  ) as DequantizeCheckpointOptions;
  if (o.dtype !== undefined && !(FLOAT_DTYPES as readonly string[]).includes(o.dtype)) {
    throw new BnbError('E_DTYPE', `dtype = ${show(o.dtype)} is not accepted: expected one of ${FLOAT_DTYPES.join(', ')}`);
  }
  const allowEmpty = checkFlag('allowEmpty', o.allowEmpty),
    allowNonFinite = checkFlag('allowNonFinite', o.allowNonFinite);
  return {
    dtype: o.dtype,
    allowEmpty,
    allowNonFinite,
    onProgress: o.onProgress,
    force: o.force ?? false,
    trustIndex: o.trustIndex,
    maxShardSize: maxShardSizeOf(o),
  };
}

type Checked = ReturnType<typeof checkOptions>;

/** What a dequantization writes, decided from the source (and the quant_state blobs) before any output exists. */
interface DequantizePlan {
  names: string[];
  layers: QuantizedLayer[];
  byWeight: Map<string, QuantizedLayer>;
  plan: PlannedTensor[];
  int8DType: FloatDType;
  fp8DType: FloatDType;
  fp8Block: number;
}

/** `what` names the source in errors (the input path); `config` is the folder's config.json, if any. */
async function planDequantize(source: TensorSource, o: Checked, config: ModelConfig | null, what: string): Promise<DequantizePlan> {
  const names = source.names();
  const { layers, passthrough } = findLayers(names);
  if (layers.length === 0 && !o.allowEmpty) {
    throw new BnbError(
      'E_CKPT_FORMAT',
      `${what} has no quantized layers (bitsandbytes 4-bit or LLM.int8, or FP8 with weight_scale_inv): nothing to dequantize (pass allowEmpty, --allow-empty, to copy it anyway)`,
    );
  }
  const state4 = new Map<string, { shape: number[]; dtype: FloatDType }>();
  for (const l of layers) {
    if (l.kind !== '4bit') continue;
    const blob = l.stateKeys.find((k) => k.includes('.quant_state.'))!;
    const json = (await readBlobJson(source, blob)) as { shape?: number[]; dtype?: FloatDType };
    const shapeOk = Array.isArray(json.shape) && json.shape.every((d) => Number.isSafeInteger(d) && d >= 0);
    if (!shapeOk || !(FLOAT_DTYPES as readonly unknown[]).includes(json.dtype)) {
      throw new BnbError(
        'E_CKPT_QUANT_STATE',
        `${blob}: expected "shape" (non-negative integers) and a float "dtype", got ${show(JSON.stringify(json))}`,
      );
    }
    state4.set(l.module, { shape: json.shape!, dtype: json.dtype! });
  }
  const int8DType: FloatDType = o.dtype ?? modelDType(config) ?? 'float32';
  const fp8DType: FloatDType = o.dtype ?? 'bfloat16';
  const fp8Block = layers.some((l) => l.kind === 'fp8') ? fp8BlockSize(config) : 128;
  const plan: PlannedTensor[] = [];
  const byWeight = new Map<string, QuantizedLayer>(layers.map((l) => [l.weight, l]));
  for (const name of names) {
    const layer = byWeight.get(name);
    if (layer?.kind === '4bit') {
      const s = state4.get(layer.module)!;
      plan.push({ name, dtype: ST_DTYPE[o.dtype ?? s.dtype], shape: s.shape });
    } else if (layer?.kind === 'int8') {
      plan.push({ name, dtype: ST_DTYPE[int8DType], shape: source.info(name).shape });
    } else if (layer?.kind === 'fp8') {
      plan.push({ name, dtype: ST_DTYPE[fp8DType], shape: source.info(name).shape });
    } else if (passthrough.includes(name)) {
      const i = source.info(name);
      plan.push({ name, dtype: i.dtype as SafetensorsDType, shape: i.shape });
    }
  }
  return { names, layers, byWeight, plan, int8DType, fp8DType, fp8Block };
}

/** Plans the sink, then dequantizes and writes one tensor at a time; on any error the sink is aborted. */
async function writeDequantized(source: TensorSource, sink: TensorSink, p: DequantizePlan, o: Checked): Promise<Tally> {
  const { names, byWeight, plan, int8DType, fp8DType, fp8Block } = p;
  await sink.plan(plan, source.metadata ?? { format: 'pt' });
  const tally = new Tally(
    plan.length,
    names.reduce((t, n) => t + source.info(n).end - source.info(n).start, 0),
    o.onProgress,
  );
  await writeAll(sink, async () => {
    for (const q of plan) {
      const layer = byWeight.get(q.name);
      let out: StoredTensor;
      if (layer?.kind === '4bit') out = await dequantizeLayer4bit(source, layer, o.dtype, o.allowNonFinite);
      else if (layer?.kind === 'int8') out = await dequantizeLayerInt8(source, layer, int8DType);
      else if (layer?.kind === 'fp8') out = await dequantizeLayerFp8(source, layer, fp8DType, fp8Block);
      else out = await source.read(q.name);
      await sink.write(q.name, out);
      tally.wrote(out.data.byteLength);
      tally.read(q.name, layer ? layerBytes(source, layer) : source.info(q.name).end - source.info(q.name).start);
    }
  });
  return tally;
}

/**
 * Dequantizes every quantized layer of a checkpoint (a .safetensors file or a model
 * folder, sharded or not) and writes the result, one tensor at a time: bitsandbytes
 * 4-bit and LLM.int8 layers, and FP8 weights with their weight_scale_inv. Other
 * tensors pass through unchanged; a folder output gets config.json without its
 * quantization_config (and with `dtype` set to opts.dtype when one is given) and the
 * folder's other files.
 */
export async function dequantizeCheckpoint(
  input: string,
  output: string,
  opts: DequantizeCheckpointOptions = {},
): Promise<ConversionReport> {
  checkPaths(input, output);
  const o = checkOptions(opts, true);
  input = await kernelPath(input); // link/.. as open() resolves it, for every file read below
  const folder = await isDirectory(input);
  const config = folder ? await readConfig(input) : null;
  const source = await openSource(input, { trustIndex: o.trustIndex });
  try {
    const p = await planDequantize(source, o, config, input);
    const target = await Target.prepare(input, output, folder, o.force);
    try {
      const sink = target.sink(o.maxShardSize);
      const tally = await writeDequantized(source, sink, p, o);
      let written: Map<string, PyJson> | null = null;
      if (config) {
        written = new Map<string, PyJson>(config.tree);
        written.delete('quantization_config');
        // an explicit dtype is the model's now: transformers loads with config.json's dtype ("auto")
        if (o.dtype !== undefined) {
          if (written.has('torch_dtype')) written.set('torch_dtype', o.dtype);
          if (written.has('dtype') || !written.has('torch_dtype')) written.set('dtype', o.dtype);
        }
      }
      await target.complete(input, written);
      await target.commit();
      return report(output, folder, sink.files, tally, p.layers.length);
    } catch (e) {
      await target.abort();
      throw e;
    }
  } finally {
    await source.close();
  }
}

/**
 * dequantizeCheckpoint's conversion of tensors, from any TensorSource into any
 * TensorSink (planned here, finished or aborted here; the source stays open). Without
 * a config.json, LLM.int8 layers come out as float32 unless `dtype`, FP8 tiles are 128.
 */
export async function dequantizeSource(
  source: TensorSource,
  sink: TensorSink,
  opts: DequantizeSourceOptions = {},
): Promise<SourceConversionReport> {
  const o = checkOptions(opts, false);
  const p = await planDequantize(source, o, null, 'the source');
  return sourceReport(await writeDequantized(source, sink, p, o), p.layers.length);
}

/** The stored bytes of a layer's tensors (its weight and its quantization items). */
function layerBytes(reader: TensorSource, l: QuantizedLayer): number {
  const keys =
    l.kind === '4bit'
      ? [l.weight, ...l.stateKeys]
      : l.kind === 'int8'
        ? [l.weight, l.scb, ...(l.format ? [l.format] : [])]
        : [l.weight, l.scale, ...(l.inputScale ? [l.inputScale] : [])];
  return keys.reduce((s, k) => s + reader.info(k).end - reader.info(k).start, 0);
}

/** Runs f, prefixing a BnbError's message with the layer's name. */
async function inLayer<T>(module: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof BnbError) throw new BnbError(e.code, `${module}: ${e.message}`);
    throw e;
  }
}

async function dequantizeLayer4bit(
  reader: TensorSource,
  l: Layer4bit,
  dtype: FloatDType | undefined,
  allowNonFinite: boolean,
): Promise<Tensor> {
  const items: Record<string, unknown> = {};
  for (const k of l.stateKeys) items[k] = await reader.read(k);
  let state = await inLayer(l.module, async () => QuantState.fromDict(items, { allowNonFinite }));
  if (dtype !== undefined) state = new QuantState({ ...state, dtype });
  // The quant_state's shape is authoritative: the packed weight is read as the flat
  // [bytes, 1] it is, never by bnb's "leading dimension 1 means transposed" rule for a
  // caller's qB.t() (a tiny layer packs to [1, 1] and would come back transposed).
  const packed = tensorOf(await reader.read(l.weight), l.weight);
  const shape = state.shape;
  if (shape === null) return inLayer(l.module, async () => dequantize4bit(packed, state)); // its E_STATE
  const flat = await inLayer(l.module, async () => dequantize4bit(packed, new QuantState({ ...state, shape: [numel(shape)] })));
  return tensor(flat.data, [...shape], flat.dtype);
}

async function dequantizeLayerInt8(reader: TensorSource, l: LayerInt8, dtype: FloatDType): Promise<Tensor> {
  if (l.format !== null) {
    const f = await reader.read(l.format);
    const v = f.data.length === 1 ? Number(f.data[0]) : NaN;
    if (v !== 0) {
      throw new BnbError(
        'E_CKPT_FORMAT',
        `${l.format} = ${show(Array.from(f.data as Uint8Array))}: only the 'row' weight format (0) is supported`,
      );
    }
  }
  const CB = tensorOf(await reader.read(l.weight), l.weight);
  const SCB = tensorOf(await reader.read(l.scb), l.scb);
  if (CB.dtype !== 'int8' || CB.shape.length !== 2)
    throw new BnbError('E_CKPT_FORMAT', `${l.weight} must be a 2-D int8 tensor (LLM.int8 CB), got ${CB.dtype} ${show(CB.shape)}`);
  // W = CB * SCB / 127, as bitsandbytes' int8_vectorwise_dequant
  return int8VectorwiseDequantCast(CB, SCB, dtype);
}

async function dequantizeLayerFp8(reader: TensorSource, l: LayerFp8, dtype: FloatDType, blockSize: number): Promise<Tensor> {
  const W = await reader.read(l.weight);
  if (!isTensor(W) || (W as Tensor).dtype !== 'float8_e4m3fn') {
    throw new BnbError('E_CKPT_FORMAT', `${l.weight} is ${reader.info(l.weight).dtype}: an FP8 weight (with ${l.scale}) must be F8_E4M3`);
  }
  const S = tensorOf(await reader.read(l.scale), l.scale);
  return inLayer(l.module, async () => dequantizeFp8(W as Tensor, S, { dtype, blockSize }));
}
