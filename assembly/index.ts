// Kernel exports. The host owns linear memory above heapBase(): it copies inputs
// in, calls a kernel with pointers, and copies outputs out.
export { quantize4bit, prepareNf4Table } from "./quantize4bit";
export { dequantize4bit } from "./dequantize4bit";
export { quantizeBlockwise, dequantizeBlockwise, prepareCodeLut } from "./blockwise";
export { firstNonFinite } from "./absmax";
export { dequantizeFp8 } from "./fp8";

export function heapBase(): usize {
  return __heap_base;
}

// 1 when this build uses SIMD instructions, 2 when relaxed SIMD as well.
export function simd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 2 : ASC_FEATURE_SIMD ? 1 : 0;
}
export { int8VectorwiseQuant, int8ColumnQuant, int8VectorwiseDequant, int8LinearMatmul, int8MmDequant } from "./int8";
export { gemv4bit } from "./gemv";
export { castFloat } from "./cast";
export { gemv4bitInt8 } from "./gemv8";
