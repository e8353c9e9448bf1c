// The API every entry point shares: ops, tensors, QuantState, code maps, safetensors
// in memory, init(). Nothing here imports node: modules, reads import.meta or loads
// the native backends, so it runs (and bundles) anywhere; each entry point adds how
// it finds the kernels (src/backend/wasm/runtime/instances.ts, WasmLoader).
// The WebAssembly backend: host tensors run on it in every entry point.
import './backend/wasm/index.js';
export { BnbError } from './errors.js';
export type { BnbErrorCode } from './errors.js';
export type { DType, FloatDType, TypedArray } from './dtypes.js';
export { DTYPES } from './dtypes.js';
export { itemsize, numel, f16ToNumber, bf16ToNumber, numberToF16, numberToBf16 } from './scalars.js';
export type { Tensor } from './tensor.js';
export { tensor, toFloat32 } from './tensor.js';
export { QuantState } from './quant-state.js';
export type { QuantStateFields, QuantStateDict, PackedQuantStateDict, UnpackedQuantStateDict } from './quant-state.js';
export { get4bitType, createDynamicMap, createNormalMap, createLinearMap, createFp8Map } from './maps.js';
export type { QuantType, DynamicMapOptions, NormalMapOptions, LinearMapOptions, Fp8MapOptions } from './maps.js';
export { quantize4bit, quantizeNf4, quantizeFp4 } from './ops/quantize4bit.js';
export type { Quantize4bitOptions } from './ops/quantize4bit.js';
export { dequantize4bit, dequantizeNf4, dequantizeFp4 } from './ops/dequantize4bit.js';
export type { Dequantize4bitOptions } from './ops/dequantize4bit.js';
export { quantizeBlockwise, dequantizeBlockwise } from './ops/blockwise.js';
export type { QuantizeBlockwiseOptions, DequantizeBlockwiseOptions } from './ops/blockwise.js';
export { int8VectorwiseQuant, int8DoubleQuant, int8VectorwiseDequant, int8LinearMatmul, int8MmDequant, int8ScaledMm } from './ops/int8.js';
export type { Int8QuantOptions, Int8MmDequantOptions } from './ops/int8.js';
export { gemv4bit, matmul4bit } from './ops/gemv4bit.js';
export type { Accuracy } from './ops/gemv4bit.js';
export { dequantizeFp8 } from './ops/fp8.js';
export type { DequantizeFp8Options } from './ops/fp8.js';
export { init, setWasmBuild, wasmBuild } from './backend/wasm/runtime/instances.js';
export type { WasmBuild, WasmSource } from './backend/wasm/runtime/instances.js';
export { wasmFeatures } from './backend/wasm/runtime/features.js';
export { setWasmMemoryLimit, wasmMemoryLimit } from './backend/wasm/runtime/memory.js';
export { setNumThreads, numThreads } from './backend/wasm/threads/config.js';
export { wasmTensor, isResident } from './backend/wasm/resident.js';
export { threadStats } from './backend/wasm/threads/pool.js';
export type { WasmFeatures } from './backend/wasm/runtime/features.js';
export { dequantize, dequantizeWeight } from './axolotl.js';
export type { AxolotlQuantState, LegacyQuantStateList, LegacyNestedStateList, TorchaoNF4Tensor } from './axolotl.js';
export { MAX_HEADER_BYTES, headerLength, parseHeader } from './io/safetensors/header.js';
export { toStoredTensor, safetensorsDTypeOf } from './io/safetensors/tensors.js';
export { serializeSafetensors } from './io/safetensors/encode.js';
export { parseSafetensors, readSafetensors, writeSafetensors } from './io/safetensors/whole.js';
export type { SafetensorsDType, RawDType } from './io/safetensors/dtypes.js';
export type { RawTensor, StoredTensor } from './io/safetensors/tensors.js';
export type { TensorInfo, SafetensorsHeader } from './io/safetensors/header.js';
export { toDevice, readTensor, toDeviceAsync } from './tensor.js';
export { registerKernel, OPS } from './ops/index.js';
export type { OpName } from './ops/index.js';
export { commonDevice, setForcedBackend } from './devices.js';
