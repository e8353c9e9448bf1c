// bnbjs quantize: a float Hugging Face checkpoint -> what transformers + bitsandbytes
// save_pretrained writes for load_in_4bit / load_in_8bit (SPEC §4.5, §4.6).
import { join } from 'node:path';
import { BnbError, fail } from '../errors.js';
import { DType, FLOAT_DTYPES, FloatDType, itemsize } from '../dtypes.js';
import { Tensor, isTensor, numel, tensor } from '../tensor.js';
import { quantize4bit, QUANT_STORAGES } from '../ops/quantize4bit.js';
import { int8VectorwiseQuantCast } from '../ops/int8-cast.js';
import { BLOCKSIZES_4BIT, checkBlocksize } from '../ops/validate.js';
import { PlannedTensor, createSafetensorsWriter, openCheckpoint } from '../io/safetensors-file.js';
import { SafetensorsDType } from '../io/safetensors.js';
import { findLayers, isQuantizableWeight } from './layers.js';
import { copyCompanions, isDirectory, prepareTarget, readConfig, writeConfig } from './files.js';
import { ConversionReport, Progress, ST_DTYPE, writeAll } from './common.js';

export type CheckpointFormat = 'nf4' | 'fp4' | 'int8';

export interface QuantizeCheckpointOptions {
  format: CheckpointFormat;
  /** nested (double) quantization of the 4-bit absmax, bnb_4bit_use_double_quant */
  doubleQuant?: boolean;
  blocksize?: number;
  /** bnb_4bit_quant_storage */
  storage?: DType;
  /** tensor names matching this regular expression are left unquantized */
  skip?: string | RegExp | null;
  /** bnb_4bit_compute_dtype written to config.json (default: the model's dtype for 4-bit, float32 for int8) */
  computeDType?: FloatDType;
  force?: boolean;
  onProgress?: Progress;
}

const FLOAT_ST: readonly string[] = ['F32', 'F16', 'BF16'];

/** Runs f, prefixing a BnbError's message with the tensor's name. */
function named<T>(name: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof BnbError) throw new BnbError(e.code, `${name}: ${e.message}`);
    throw e;
  }
}

/** transformers' BitsAndBytesConfig.to_dict() for these options. */
export function quantizationConfig(format: CheckpointFormat, doubleQuant: boolean, storage: DType, computeDType: FloatDType, skip: string[] | null): Record<string, unknown> {
  const four = format !== 'int8';
  return {
    _load_in_4bit: four,
    _load_in_8bit: !four,
    bnb_4bit_compute_dtype: computeDType,
    bnb_4bit_quant_storage: storage,
    bnb_4bit_quant_type: four ? format : 'fp4',
    bnb_4bit_use_double_quant: four && doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: skip,
    llm_int8_threshold: 6.0,
    load_in_4bit: four,
    load_in_8bit: !four,
    quant_method: 'bitsandbytes',
  };
}

/**
 * Quantizes the Linear weights of a float checkpoint (2-D `.weight` tensors other
 * than embeddings and lm_head, as transformers does; `skip` excludes more) and
 * writes exactly the tensors bitsandbytes' save_pretrained writes for them, one
 * tensor at a time. Other tensors pass through; a folder output gets config.json
 * with the quantization_config and the folder's other files.
 */
export async function quantizeCheckpoint(input: string, output: string, opts: QuantizeCheckpointOptions): Promise<ConversionReport> {
  const started = performance.now();
  const format = opts.format;
  if (format !== 'nf4' && format !== 'fp4' && format !== 'int8') fail('E_ARGUMENT', 'format', format, "'nf4', 'fp4' or 'int8'");
  const doubleQuant = opts.doubleQuant ?? false;
  const blocksize = checkBlocksize('blocksize', opts.blocksize ?? 64, BLOCKSIZES_4BIT);
  const storage = opts.storage ?? 'uint8';
  if (!QUANT_STORAGES.includes(storage)) fail('E_DTYPE', 'storage', storage, QUANT_STORAGES.join(', '));
  let skip: RegExp | null = null;
  if (opts.skip !== undefined && opts.skip !== null && opts.skip !== '') {
    try {
      skip = typeof opts.skip === 'string' ? new RegExp(opts.skip) : opts.skip;
    } catch (e) {
      fail('E_ARGUMENT', 'skip', opts.skip, `a regular expression (${(e as Error).message})`);
    }
  }
  const folder = await isDirectory(input);
  const config = folder ? await readConfig(input) : null;
  if (config && 'quantization_config' in config) {
    throw new BnbError('E_CKPT_FORMAT', `${input} is already quantized (config.json has a quantization_config): dequantize it first`);
  }
  const reader = await openCheckpoint(input);
  const target = await prepareTarget(output, folder, opts.force ?? false);
  try {
    const names = reader.names();
    if (findLayers(names).layers.length) throw new BnbError('E_CKPT_FORMAT', `${input} already holds bitsandbytes layers: dequantize it first`);
    const selected = new Set(names.filter((n) => FLOAT_ST.includes(reader.info(n).dtype) && isQuantizableWeight(n, reader.info(n).shape, skip)));
    if (selected.size === 0) throw new BnbError('E_CKPT_FORMAT', `${input} has no float Linear weights to quantize`);
    const plan: PlannedTensor[] = [];
    for (const name of names) {
      const info = reader.info(name);
      if (!selected.has(name)) {
        plan.push({ name, dtype: info.dtype, shape: info.shape });
        continue;
      }
      const n = numel(info.shape);
      const module = name.slice(0, -'.weight'.length);
      if (format === 'int8') {
        plan.push({ name, dtype: 'I8', shape: info.shape });
        plan.push({ name: `${module}.SCB`, dtype: 'F32', shape: [info.shape[0]!] });
        plan.push({ name: `${module}.weight_format`, dtype: 'U8', shape: [] });
        continue;
      }
      const k = itemsize(storage), nb = Math.ceil(n / blocksize);
      plan.push({ name, dtype: ST_DTYPE[storage] as SafetensorsDType, shape: [Math.floor((n + 1) / (2 * k)), 1] });
      plan.push({ name: `${name}.absmax`, dtype: doubleQuant ? 'U8' : 'F32', shape: [nb] });
      plan.push({ name: `${name}.quant_map`, dtype: 'F32', shape: [16] });
      if (doubleQuant) {
        plan.push({ name: `${name}.nested_absmax`, dtype: 'F32', shape: [Math.ceil(nb / 256)] });
        plan.push({ name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256] });
      }
      plan.push({ name: `${name}.quant_state.bitsandbytes__${format}`, dtype: 'U8', maxElements: 4096 });
    }
    // a file output is committed without replacing what appeared meanwhile (unless force)
    const writer = await createSafetensorsWriter(target.weights, plan, { metadata: reader.metadata ?? { format: 'pt' }, force: target.dir !== null || (opts.force ?? false) });
    let bytesOut = 0, done = 0;
    const put = async (name: string, t: Tensor | Awaited<ReturnType<typeof reader.read>>) => {
      await writer.write(name, t);
      bytesOut += t.data.byteLength;
      opts.onProgress?.(++done, plan.length, name);
    };
    await writeAll(writer, async () => {
      for (const name of names) {
        const t = await reader.read(name);
        if (!selected.has(name)) {
          await put(name, t);
          continue;
        }
        const W = t as Tensor;
        if (format === 'int8') {
          // Int8Params casts the weight to float16 before quantizing it
          const [CB, SCB] = named(name, () => int8VectorwiseQuantCast(W));
          const module = name.slice(0, -'.weight'.length);
          await put(name, CB);
          await put(`${module}.SCB`, SCB);
          await put(`${module}.weight_format`, tensor(new Uint8Array([0]), [], 'uint8'));
          continue;
        }
        const [packed, state] = named(name, () => quantize4bit(W, { quantType: format, blocksize, compressStatistics: doubleQuant, quantStorage: storage }));
        await put(name, packed);
        const d = state.asDict({ packed: true });
        for (const [key, v] of Object.entries(d)) if (isTensor(v)) await put(`${name}.${key}`, v);
      }
    });
    if (target.dir !== null) {
      await copyCompanions(input, target.dir);
      if (config) {
        const modelDType = (config.dtype ?? config.torch_dtype) as FloatDType | undefined;
        const compute = opts.computeDType ?? (format !== 'int8' && modelDType && (FLOAT_DTYPES as readonly string[]).includes(modelDType) ? modelDType : 'float32');
        // the Linear modules left in float, so that transformers does not convert them on load
        const skipped = names.filter((n) => FLOAT_ST.includes(reader.info(n).dtype) && !selected.has(n) && isQuantizableWeight(n, reader.info(n).shape, null))
          .map((n) => n.slice(0, -'.weight'.length));
        await writeConfig(target.dir, { ...config, quantization_config: quantizationConfig(format, doubleQuant, storage, compute, skipped.length ? skipped : null) });
      }
    }
    await target.commit();
    return {
      output, file: target.dir === null ? output : join(output, 'model.safetensors'), tensors: plan.length,
      layers: selected.size, bytesIn: names.reduce((s, n) => s + reader.info(n).end - reader.info(n).start, 0), bytesOut,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (e) {
    await target.abort();
    throw e;
  } finally {
    await reader.close();
  }
}
