// bnbjs/node: the parts that need a file system (Node, Deno, Bun) — streaming
// safetensors files and checkpoint conversion. Kept out of the main entry so that
// browser and Worker bundles never pull node:fs.
export * from './index.js';
export { openSafetensors } from './io/safetensors/file-source.js';
export { openCheckpoint } from './io/open.js';
export { createSafetensorsWriter } from './io/safetensors/file-sink.js';
export type { SafetensorsReader } from './io/safetensors/file-source.js';
export type { CheckpointReader } from './io/source.js';
export type { OpenCheckpointOptions } from './io/open.js';
export type { PlannedTensor } from './io/sink.js';
export type { SafetensorsFileWriter } from './io/safetensors/file-sink.js';
export { quantizeCheckpoint } from './checkpoint/quantize.js';
export { bitsAndBytesConfig, configText } from './checkpoint/config.js';
export type { QuantizeCheckpointOptions, CheckpointFormat } from './checkpoint/quantize.js';
export { dequantizeCheckpoint } from './checkpoint/dequantize.js';
export type { DequantizeCheckpointOptions } from './checkpoint/dequantize.js';
export { inspectCheckpoint } from './checkpoint/inspect.js';
export type { CheckpointSummary, TensorSummary } from './checkpoint/inspect.js';
export type { ConversionReport, ConversionOptions, Progress, ProgressEvent } from './checkpoint/common.js';
