import { BnbError } from '../errors.js';
import { DType } from '../dtypes.js';
import type { SafetensorsDType } from '../io/safetensors.js';
import type { CheckpointReader } from '../io/safetensors-file.js';
import { MAX_BLOB_BYTES } from '../quant-state.js';

/** Called after each output tensor: (done, total, name). */
export type Progress = (done: number, total: number, name: string) => void;

export interface ConversionReport {
  /** the output path as given */
  output: string;
  /** the .safetensors file written */
  file: string;
  tensors: number;
  /** quantized layers read or written */
  layers: number;
  bytesIn: number;
  bytesOut: number;
  seconds: number;
}

export const ST_DTYPE: Record<DType, SafetensorsDType> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', uint8: 'U8', int8: 'I8', int32: 'I32', float8_e4m3fn: 'F8_E4M3',
};

/** Runs the writes, then finish(); on any error the partial output is removed. */
export async function writeAll(writer: { finish(): Promise<void>; abort(): Promise<void> }, body: () => Promise<void>): Promise<void> {
  try {
    await body();
    await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

/**
 * A layer's quant_state blob as a JSON object (Python's NaN/Infinity read as 0:
 * only shape, dtype and types are taken from it here). Its size is checked before
 * it is read: the blob is about 150 bytes, a hostile file may claim gigabytes.
 */
export async function readBlobJson(reader: CheckpointReader, key: string): Promise<Record<string, unknown>> {
  const info = reader.info(key);
  if (info.end - info.start > MAX_BLOB_BYTES) {
    throw new BnbError('E_CKPT_QUANT_STATE', `${key} has ${info.end - info.start} bytes: a quant_state JSON blob has at most ${MAX_BLOB_BYTES}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await reader.readBytes(key)).replace(/\bNaN\b|-?\bInfinity\b/g, '0'));
  } catch (e) {
    if (e instanceof BnbError) throw e;
    throw new BnbError('E_CKPT_QUANT_STATE', `${key} does not hold valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new BnbError('E_CKPT_QUANT_STATE', `${key} holds ${JSON.stringify(json)?.slice(0, 80)}: expected a JSON object`);
  }
  return json as Record<string, unknown>;
}
