import { basename, join } from 'node:path';
import { BnbError, fail } from '../errors.js';
import { readOptions, readString } from '../args.js';
import { checkBoolean } from '../checks.js';
import { DType } from '../dtypes.js';
import type { SafetensorsDType } from '../io/safetensors/dtypes.js';
import { TensorSource, sourceBytes } from '../io/source.js';
import type { TensorSink } from '../io/sink.js';
import { MAX_BLOB_BYTES } from '../quant-state.js';
import { pyLoads, showJson, toPlain } from '../json/parse.js';
import { DEFAULT_MAX_SHARD_SIZE, INDEX_NAME, parseShardSize } from '../io/safetensors/sharded-sink.js';

/** What a conversion has done so far, reported after each input tensor. */
export interface ProgressEvent {
  /** bytes of input tensors converted, and in all */
  bytesDone: number;
  bytesTotal: number;
  /** output tensors written, and in all */
  tensorsDone: number;
  tensorsTotal: number;
  /** the input tensor just converted */
  name: string;
  /** seconds since the conversion started */
  seconds: number;
}

export type Progress = (p: ProgressEvent) => void;

/** Options every conversion takes. */
export interface ConversionOptions {
  /** replace an existing output */
  force?: boolean;
  /** largest shard (tensor bytes), as transformers' max_shard_size: bytes or "5GB", "500MB", "2GiB"; default "50GB" */
  maxShardSize?: number | string;
  /** called after each input tensor is converted */
  onProgress?: Progress;
  /** read only what a sharded checkpoint's index lists (see OpenCheckpointOptions.trustIndex) */
  trustIndex?: boolean;
}

export interface ConversionReport {
  /** the output path as given */
  output: string;
  /** the main file written: the .safetensors file, or a sharded folder's index */
  file: string;
  /** every .safetensors file written (the shards, in order), at their final paths */
  files: string[];
  tensors: number;
  /** quantized layers read or written */
  layers: number;
  bytesIn: number;
  bytesOut: number;
  seconds: number;
}

/** What a conversion between a TensorSource and a TensorSink reports (ConversionReport without the paths). */
export type SourceConversionReport = Pick<ConversionReport, 'tensors' | 'layers' | 'bytesIn' | 'bytesOut' | 'seconds'>;

export const ST_DTYPE: Record<DType, SafetensorsDType> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  uint8: 'U8',
  int8: 'I8',
  int32: 'I32',
  float8_e4m3fn: 'F8_E4M3',
};

/** A conversion's input and output paths (the file functions' own checks then say what is wrong with them). */
export function checkPaths(input: unknown, output: unknown): void {
  readString('input', input, 'a path to a .safetensors file or a model folder');
  readString('output', output, 'a path');
}

/**
 * A conversion's options, copied (see readOptions): the common ones checked, `known` the
 * conversion's own. Without `files` (a conversion between a TensorSource and a TensorSink)
 * the options about paths (force, maxShardSize, trustIndex) are refused, not ignored.
 */
export function readConversionOptions(op: string, opts: unknown, known: readonly string[], files = true): Record<string, unknown> {
  const o = readOptions(op, opts, files ? ['force', 'maxShardSize', 'onProgress', 'trustIndex', ...known] : ['onProgress', ...known]);
  checkFlag('force', o.force);
  checkFlag('trustIndex', o.trustIndex);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') fail('E_ARGUMENT', 'onProgress', o.onProgress, 'a function');
  return o;
}

/** An optional boolean option (false when absent). */
export function checkFlag(name: string, x: unknown): boolean {
  return x === undefined ? false : checkBoolean(name, x);
}

export function maxShardSizeOf(opts: ConversionOptions): number {
  return opts.maxShardSize === undefined ? DEFAULT_MAX_SHARD_SIZE : parseShardSize(opts.maxShardSize);
}

/** Counts output tensors and input bytes for onProgress, and times the conversion. */
export class Tally {
  readonly started = performance.now();
  tensorsDone = 0;
  bytesDone = 0;
  bytesOut = 0;

  constructor(
    readonly tensorsTotal: number,
    readonly bytesTotal: number,
    readonly onProgress?: Progress,
  ) {}

  get seconds(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** One output tensor written. */
  wrote(bytes: number): void {
    this.tensorsDone++;
    this.bytesOut += bytes;
  }

  /** One input tensor converted. */
  read(name: string, bytes: number): void {
    this.bytesDone += bytes;
    this.onProgress?.({
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      tensorsDone: this.tensorsDone,
      tensorsTotal: this.tensorsTotal,
      name,
      seconds: this.seconds,
    });
  }
}

/** Runs the writes, then finish(); on any error the partial output is removed. */
export async function writeAll(writer: TensorSink, body: () => Promise<void>): Promise<void> {
  try {
    await body();
    await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

/** The report of a finished conversion between a source and a sink. */
export function sourceReport(tally: Tally, layers: number): SourceConversionReport {
  return { tensors: tally.tensorsTotal, layers, bytesIn: tally.bytesTotal, bytesOut: tally.bytesOut, seconds: tally.seconds };
}

/** The report of a finished conversion into `output`, whose sink wrote `written` (in a temporary folder for a folder output). */
export function report(output: string, folder: boolean, written: readonly string[], tally: Tally, layers: number): ConversionReport {
  const files = written.map((f) => (folder ? join(output, basename(f)) : output));
  return {
    output,
    file: folder && files.length > 1 ? join(output, INDEX_NAME) : files[0]!,
    files,
    tensors: tally.tensorsTotal,
    layers,
    bytesIn: tally.bytesTotal,
    bytesOut: tally.bytesOut,
    seconds: tally.seconds,
  };
}

/**
 * A layer's quant_state blob as a JSON object, read as Python's json.loads reads it
 * (NaN and Infinity are numbers; a string is a string, whatever it holds). Its size is
 * checked before it is read: the blob is about 150 bytes, a hostile file may claim gigabytes.
 */
export async function readBlobJson(reader: TensorSource, key: string): Promise<Record<string, unknown>> {
  const info = reader.info(key);
  if (info.end - info.start > MAX_BLOB_BYTES) {
    throw new BnbError(
      'E_CKPT_QUANT_STATE',
      `${key} has ${info.end - info.start} bytes: a quant_state JSON blob has at most ${MAX_BLOB_BYTES}`,
    );
  }
  const bytes = await sourceBytes(reader, key);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw new BnbError('E_CKPT_QUANT_STATE', `${key} does not hold valid UTF-8 JSON: ${(e as Error).message}`);
  }
  const json = pyLoads(text, 'E_CKPT_QUANT_STATE', key, 'a JSON object');
  if (!(json instanceof Map)) throw new BnbError('E_CKPT_QUANT_STATE', `${key} holds ${showJson(json)}: expected a JSON object`);
  return toPlain(json) as Record<string, unknown>;
}
