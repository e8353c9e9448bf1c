// The WebAssembly backend: host tensors ('cpu') run on these kernels.
import { registerKernel } from '../../ops/registry.js';
import { quantize4bitWasm, dequantize4bitWasm } from './quant4bit.js';
import { dequantizeBlockwiseWasm, quantizeBlockwiseWasm } from './blockwise.js';
import {
  int8DoubleQuantWasm, int8LinearMatmulWasm, int8MmDequantWasm, int8VectorwiseDequantWasm, int8VectorwiseQuantWasm,
} from './int8.js';
import { gemv4bitWasm } from './gemv.js';
import { dequantizeFp8Wasm } from './fp8.js';

registerKernel('quantize4bit', 'cpu', quantize4bitWasm);
registerKernel('dequantize4bit', 'cpu', dequantize4bitWasm);
registerKernel('quantizeBlockwise', 'cpu', quantizeBlockwiseWasm);
registerKernel('dequantizeBlockwise', 'cpu', dequantizeBlockwiseWasm);
registerKernel('int8VectorwiseQuant', 'cpu', int8VectorwiseQuantWasm);
registerKernel('int8DoubleQuant', 'cpu', int8DoubleQuantWasm);
registerKernel('int8VectorwiseDequant', 'cpu', int8VectorwiseDequantWasm);
registerKernel('int8LinearMatmul', 'cpu', int8LinearMatmulWasm);
registerKernel('int8MmDequant', 'cpu', int8MmDequantWasm);
registerKernel('gemv4bit', 'cpu', gemv4bitWasm);
registerKernel('dequantizeFp8', 'cpu', dequantizeFp8Wasm);
