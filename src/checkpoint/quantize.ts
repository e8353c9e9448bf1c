// bnbjs quantize: a float Hugging Face checkpoint -> what transformers + bitsandbytes
// save_pretrained writes for load_in_4bit / load_in_8bit.
import { BnbError, fail, show } from '../errors.js';
import { DType, FLOAT_DTYPES, FloatDType, itemsize } from '../dtypes.js';
import { isInstance, isPlainObject } from '../args.js';
import { Tensor, isTensor, numel, tensor } from '../tensor.js';
import { quantize4bit, QUANT_STORAGES } from '../ops/quantize4bit.js';
import { int8VectorwiseQuantCast } from '../backend/wasm/int8-cast.js';
import { BLOCKSIZES_4BIT, checkBlocksize } from '../ops/validate.js';
import { openSource } from '../io/open.js';
import type { TensorSource } from '../io/source.js';
import type { PlannedTensor, TensorSink } from '../io/sink.js';
import type { SafetensorsDType } from '../io/safetensors/dtypes.js';
import type { StoredTensor } from '../io/safetensors/tensors.js';
import { PyJson } from '../json/dumps.js';
import { findLayers, isQuantizableWeight } from './layers.js';
import { Target, isDirectory } from './files.js';
import { kernelPath } from '../io/files.js';
import { bitsAndBytesConfig, modelDType, readConfig } from './config.js';
import {
  ConversionOptions,
  ConversionReport,
  SourceConversionReport,
  ST_DTYPE,
  Tally,
  checkFlag,
  checkPaths,
  maxShardSizeOf,
  readConversionOptions,
  report,
  sourceReport,
  writeAll,
} from './common.js';

export type CheckpointFormat = 'nf4' | 'fp4' | 'int8';

export interface QuantizeCheckpointOptions extends ConversionOptions {
  format: CheckpointFormat;
  /** nested (double) quantization of the 4-bit absmax, bnb_4bit_use_double_quant (4-bit only) */
  doubleQuant?: boolean;
  /** 4-bit only; default 64 */
  blocksize?: number;
  /** bnb_4bit_quant_storage (4-bit only); default uint8 */
  storage?: DType;
  /** tensor names matching this regular expression are left unquantized */
  skip?: string | RegExp | null;
  /** bnb_4bit_compute_dtype written to config.json (default: the model's dtype for 4-bit, float32 for int8) */
  computeDType?: FloatDType;
}

/** quantizeSource's options: the tensors' (no paths, no config.json). */
export type QuantizeSourceOptions = Omit<QuantizeCheckpointOptions, 'force' | 'maxShardSize' | 'trustIndex' | 'computeDType'>;

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

/**
 * The options, checked; LLM.int8 has no blocksize, nested statistics or storage, so giving them is an error.
 * `files`: quantizeCheckpoint's (paths and config.json), else quantizeSource's.
 */
function checkOptions(given: QuantizeCheckpointOptions, files: boolean) {
  if (!isPlainObject('opts', given)) fail('E_ARGUMENT', 'opts', given, '{ format, ... }');
  const known = ['format', 'doubleQuant', 'blocksize', 'storage', 'skip', ...(files ? ['computeDType'] : [])];
  const opts = readConversionOptions(
    files ? 'quantizeCheckpoint' : 'quantizeSource',
    given,
    known,
    files,
  ) as unknown as QuantizeCheckpointOptions;
  const format = opts.format;
  if (format !== 'nf4' && format !== 'fp4' && format !== 'int8') fail('E_ARGUMENT', 'format', format, "'nf4', 'fp4' or 'int8'");
  if (format === 'int8') {
    for (const [key, given] of [
      ['blocksize', opts.blocksize !== undefined],
      ['doubleQuant', opts.doubleQuant === true],
      ['storage', opts.storage !== undefined],
    ] as const) {
      if (given)
        throw new BnbError(
          'E_ARGUMENT',
          `${key} = ${show(opts[key])} is not accepted with format 'int8': LLM.int8 quantizes whole rows, unpacked (${key} applies to nf4 and fp4)`,
        );
    }
  }
  const blocksize = checkBlocksize('blocksize', opts.blocksize ?? 64, BLOCKSIZES_4BIT);
  const storage = opts.storage ?? 'uint8';
  if (!QUANT_STORAGES.includes(storage)) fail('E_DTYPE', 'storage', storage, QUANT_STORAGES.join(', '));
  const doubleQuant = checkFlag('doubleQuant', opts.doubleQuant);
  if (opts.computeDType !== undefined && !(FLOAT_DTYPES as readonly unknown[]).includes(opts.computeDType)) {
    fail(
      'E_DTYPE',
      'computeDType',
      opts.computeDType,
      `one of ${FLOAT_DTYPES.join(', ')} (bnb_4bit_compute_dtype, the dtype bitsandbytes' 4-bit layers compute in)`,
    );
  }
  let skip: RegExp | null = null;
  if (opts.skip !== undefined && opts.skip !== null && opts.skip !== '') {
    if (typeof opts.skip !== 'string' && !isInstance(opts.skip, RegExp))
      fail('E_ARGUMENT', 'skip', opts.skip, 'a regular expression or its source text');
    try {
      // a copy without g and y: their test() starts at lastIndex, so one RegExp would skip only every other match
      skip =
        typeof opts.skip === 'string'
          ? new RegExp(opts.skip)
          : new RegExp((opts.skip as RegExp).source, (opts.skip as RegExp).flags.replace(/[gy]/g, ''));
    } catch (e) {
      fail('E_ARGUMENT', 'skip', opts.skip, `a regular expression (${(e as Error).message})`);
    }
  }
  return {
    format,
    doubleQuant,
    blocksize,
    storage,
    skip,
    maxShardSize: maxShardSizeOf(opts),
    force: opts.force ?? false,
    onProgress: opts.onProgress,
    trustIndex: opts.trustIndex,
    computeDType: opts.computeDType,
  };
}

type Checked = ReturnType<typeof checkOptions>;

/** What a quantization writes, decided from the source's names and infos before any output exists. */
interface QuantizePlan {
  names: string[];
  /** the weights quantized */
  selected: Set<string>;
  plan: PlannedTensor[];
}

/** `what` names the source in errors (the input path). */
function planQuantize(source: TensorSource, o: Checked, what: string): QuantizePlan {
  const { format, doubleQuant, blocksize, storage, skip } = o;
  const names = source.names();
  if (findLayers(names).layers.length)
    throw new BnbError('E_CKPT_FORMAT', `${what} already holds bitsandbytes layers: dequantize it first`);
  const selected = new Set(
    names.filter((n) => FLOAT_ST.includes(source.info(n).dtype) && isQuantizableWeight(n, source.info(n).shape, skip)),
  );
  if (selected.size === 0) throw new BnbError('E_CKPT_FORMAT', `${what} has no float Linear weights to quantize`);
  const plan: PlannedTensor[] = [];
  for (const name of names) {
    const info = source.info(name);
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
    const k = itemsize(storage),
      nb = Math.ceil(n / blocksize);
    plan.push({ name, dtype: ST_DTYPE[storage] as SafetensorsDType, shape: [Math.floor((n + 1) / (2 * k)), 1] });
    plan.push({ name: `${name}.absmax`, dtype: doubleQuant ? 'U8' : 'F32', shape: [nb] });
    plan.push({ name: `${name}.quant_map`, dtype: 'F32', shape: [16] });
    if (doubleQuant) {
      plan.push({ name: `${name}.nested_absmax`, dtype: 'F32', shape: [Math.ceil(nb / 256)] });
      plan.push({ name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256] });
    }
    plan.push({ name: `${name}.quant_state.bitsandbytes__${format}`, dtype: 'U8', maxElements: 4096 });
  }
  return { names, selected, plan };
}

/** Plans the sink, then reads, quantizes and writes one tensor at a time; on any error the sink is aborted. */
async function writeQuantized(source: TensorSource, sink: TensorSink, p: QuantizePlan, o: Checked): Promise<Tally> {
  const { format, doubleQuant, blocksize, storage, onProgress } = o;
  const { names, selected, plan } = p;
  await sink.plan(plan, source.metadata ?? { format: 'pt' });
  const tally = new Tally(
    plan.length,
    names.reduce((s, n) => s + source.info(n).end - source.info(n).start, 0),
    onProgress,
  );
  const put = async (name: string, t: StoredTensor) => {
    await sink.write(name, t);
    tally.wrote(t.data.byteLength);
  };
  await writeAll(sink, async () => {
    for (const name of names) {
      const t = await source.read(name);
      if (!selected.has(name)) await put(name, t);
      else if (format === 'int8') {
        // Int8Params casts the weight to float16 before quantizing it
        const [CB, SCB] = named(name, () => int8VectorwiseQuantCast(t as Tensor));
        const module = name.slice(0, -'.weight'.length);
        await put(name, CB);
        await put(`${module}.SCB`, SCB);
        await put(`${module}.weight_format`, tensor(new Uint8Array([0]), [], 'uint8'));
      } else {
        const [packed, state] = named(name, () =>
          quantize4bit(t as Tensor, { quantType: format, blocksize, compressStatistics: doubleQuant, quantStorage: storage }),
        );
        await put(name, packed);
        for (const [key, v] of Object.entries(state.asDict({ packed: true }))) if (isTensor(v)) await put(`${name}.${key}`, v);
      }
      tally.read(name, t.data.byteLength);
    }
  });
  return tally;
}

/**
 * Quantizes the Linear weights of a float checkpoint (2-D `.weight` tensors other
 * than embeddings and lm_head, as transformers does; `skip` excludes more) and
 * writes exactly the tensors bitsandbytes' save_pretrained writes for them, one
 * tensor at a time. Other tensors pass through; a folder output gets config.json
 * with the quantization_config and the folder's other files.
 */
export async function quantizeCheckpoint(input: string, output: string, opts: QuantizeCheckpointOptions): Promise<ConversionReport> {
  checkPaths(input, output);
  const o = checkOptions(opts, true);
  input = await kernelPath(input); // link/.. as open() resolves it, for every file read below
  const folder = await isDirectory(input);
  const config = folder ? await readConfig(input) : null;
  if (config?.tree.has('quantization_config')) {
    throw new BnbError('E_CKPT_FORMAT', `${input} is already quantized (config.json has a quantization_config): dequantize it first`);
  }
  const source = await openSource(input, { trustIndex: o.trustIndex });
  try {
    const p = planQuantize(source, o, input);
    const target = await Target.prepare(input, output, folder, o.force);
    try {
      const sink = target.sink(o.maxShardSize);
      const tally = await writeQuantized(source, sink, p, o);
      let written: Map<string, PyJson> | null = null;
      if (config) {
        const dtype = modelDType(config);
        const compute = o.computeDType ?? (o.format !== 'int8' && dtype ? dtype : 'float32');
        // the Linear modules left in float, so that transformers does not convert them on load
        const skipped = p.names
          .filter(
            (n) => FLOAT_ST.includes(source.info(n).dtype) && !p.selected.has(n) && isQuantizableWeight(n, source.info(n).shape, null),
          )
          .map((n) => n.slice(0, -'.weight'.length));
        written = new Map<string, PyJson>(config.tree);
        written.set(
          'quantization_config',
          bitsAndBytesConfig({
            format: o.format,
            doubleQuant: o.doubleQuant,
            storage: o.storage,
            computeDType: compute,
            skip: skipped.length ? skipped : null,
          }),
        );
      }
      await target.complete(input, written);
      await target.commit();
      return report(output, folder, sink.files, tally, p.selected.size);
    } catch (e) {
      await target.abort();
      throw e;
    }
  } finally {
    await source.close();
  }
}

/**
 * quantizeCheckpoint's conversion of tensors, from any TensorSource into any TensorSink
 * (planned here, finished or aborted here; the source stays open). What the paths
 * bring (config.json, companion files, force, sharding) is the caller's.
 */
export async function quantizeSource(source: TensorSource, sink: TensorSink, opts: QuantizeSourceOptions): Promise<SourceConversionReport> {
  const o = checkOptions(opts as QuantizeCheckpointOptions, false);
  const p = planQuantize(source, o, 'the source');
  return sourceReport(await writeQuantized(source, sink, p, o), p.selected.size);
}
