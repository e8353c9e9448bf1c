import { DType } from '../dtypes.js';
import type { SafetensorsDType } from '../io/safetensors.js';

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
