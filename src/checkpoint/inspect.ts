// bnbjs inspect: what a checkpoint holds, layer by layer.
import { BnbError, show } from '../errors.js';
import { OpenCheckpointOptions, checkOpenOptions, openSource } from '../io/open.js';
import type { TensorSource } from '../io/source.js';
import { findLayers } from './layers.js';
import { isDirectory } from './files.js';
import { kernelPath } from '../io/files.js';
import { readString } from '../args.js';
import { ModelConfig, readConfig } from './config.js';
import { readBlobJson } from './common.js';

export interface TensorSummary {
  name: string;
  /** nf4 / fp4 / int8 for a bitsandbytes layer, fp8 for an FP8 one, else the stored safetensors dtype */
  format: string;
  /** the logical shape (of the dequantized weight for a quantized layer) */
  shape: number[];
  /** bytes stored for this tensor and its quantization items */
  bytes: number;
  /** dtype the layer dequantizes to (quantized layers) */
  dtype?: string;
  /** 4-bit blocksize, or the FP8 scale tile's edge */
  blocksize?: number;
  nested?: boolean;
  /** quant_storage: the stored dtype of the packed 4-bit weight */
  storage?: string;
}

export interface CheckpointSummary {
  path: string;
  files: string[];
  tensors: number;
  bytes: number;
  /** what the checkpoint is: 'bitsandbytes nf4', 'bitsandbytes LLM.int8', 'fp8', 'float' (several joined by ' + ') */
  format: string;
  quantizationConfig: unknown;
  /** quantized layers (what `dequantize` converts) and the other tensors */
  layers: TensorSummary[];
  other: TensorSummary[];
}

export async function inspectCheckpoint(path: string, opts?: OpenCheckpointOptions): Promise<CheckpointSummary> {
  readString('input', path, 'a path to a .safetensors file or a model folder');
  const o = checkOpenOptions(opts);
  path = await kernelPath(path); // link/.. as open() resolves it, for every file read below
  const folder = await isDirectory(path);
  const config = folder ? await readConfig(path) : null;
  const source = await openSource(path, o);
  try {
    return await summarize(source, config, path);
  } finally {
    await source.close();
  }
}

/** What a source holds, layer by layer; `config` is its folder's config.json, if any, and `path` what the summary names. */
export async function summarize(source: TensorSource, config: ModelConfig | null, path: string): Promise<CheckpointSummary> {
  const names = source.names();
  const size = (n: string) => source.info(n).end - source.info(n).start;
  const { layers, passthrough } = findLayers(names);
  const out: TensorSummary[] = [];
  for (const l of layers) {
    if (l.kind === '4bit') {
      const blob = l.stateKeys.find((k) => k.includes('.quant_state.'))!;
      const json = await readBlobJson(source, blob);
      // the shape is what the table shows as the layer's; dtype and blocksize are shown as the blob says
      const shape = json.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new BnbError(
          'E_CKPT_QUANT_STATE',
          `${blob}: "shape" = ${show(shape)} is not accepted: expected an array of non-negative integers`,
        );
      }
      out.push({
        name: l.weight,
        format: l.quantType,
        shape: shape as number[],
        dtype: json.dtype as string,
        blocksize: json.blocksize as number,
        nested: Object.hasOwn(json, 'nested_blocksize'),
        storage: source.info(l.weight).dtype,
        bytes: [l.weight, ...l.stateKeys].reduce((s, k) => s + size(k), 0),
      });
    } else if (l.kind === 'int8') {
      out.push({
        name: l.weight,
        format: 'int8',
        shape: source.info(l.weight).shape,
        bytes: [l.weight, l.scb, ...(l.format ? [l.format] : [])].reduce((s, k) => s + size(k), 0),
      });
    } else {
      const q = (config?.plain.quantization_config ?? null) as { weight_block_size?: unknown } | null;
      const b = Array.isArray(q?.weight_block_size) ? (q!.weight_block_size as number[])[0] : 128;
      out.push({
        name: l.weight,
        format: 'fp8',
        shape: source.info(l.weight).shape,
        storage: source.info(l.weight).dtype,
        blocksize: b,
        bytes: [l.weight, l.scale, ...(l.inputScale ? [l.inputScale] : [])].reduce((s, k) => s + size(k), 0),
      });
    }
  }
  const kinds = [...new Set(out.map((l) => (l.format === 'fp8' ? 'fp8' : `bitsandbytes ${l.format === 'int8' ? 'LLM.int8' : l.format}`)))];
  return {
    path,
    files: [...(source.files ?? [])],
    tensors: names.length,
    bytes: names.reduce((s, n) => s + size(n), 0),
    format: kinds.length ? kinds.join(' + ') : 'float',
    quantizationConfig: config?.plain.quantization_config ?? null,
    layers: out,
    other: passthrough.map((n) => ({ name: n, format: source.info(n).dtype, shape: source.info(n).shape, bytes: size(n) })),
  };
}
