// The WebAssembly backend: host tensors ('cpu') run on these kernels, each given its
// op's checked arguments by the registry.
import { registerBackend } from '../../ops/registry.js';
import { registerKernels } from '../../ops/index.js';
import { dequantize4bitWasm, quantize4bitWasm } from './quant4bit.js';
import { dequantizeBlockwiseWasm, quantizeBlockwiseWasm } from './blockwise.js';
import {
  int8DoubleQuantWasm,
  int8LinearMatmulWasm,
  int8MmDequantWasm,
  int8VectorwiseDequantWasm,
  int8VectorwiseQuantWasm,
} from './int8.js';
import { gemv4bitWasm } from './gemv.js';
import { dequantizeFp8Wasm } from './fp8.js';

registerBackend('wasm', { device: 'cpu' });
registerKernels('wasm', {
  quantize4bit: quantize4bitWasm,
  dequantize4bit: dequantize4bitWasm,
  quantizeBlockwise: quantizeBlockwiseWasm,
  dequantizeBlockwise: dequantizeBlockwiseWasm,
  int8VectorwiseQuant: int8VectorwiseQuantWasm,
  int8DoubleQuant: int8DoubleQuantWasm,
  int8VectorwiseDequant: int8VectorwiseDequantWasm,
  int8LinearMatmul: int8LinearMatmulWasm,
  int8MmDequant: int8MmDequantWasm,
  gemv4bit: gemv4bitWasm,
  dequantizeFp8: dequantizeFp8Wasm,
});
