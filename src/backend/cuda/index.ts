// The CUDA backend: its kernels run the ops for 'cuda' tensors and, where
// BNBJS_BACKEND=cuda forces it, for host tensors through its host adapter.
import { registerBackend } from '../../ops/registry.js';
import { registerKernels } from '../../ops/index.js';
import { dequantize4bit, quantize4bit } from './quant4bit.js';
import { dequantizeBlockwise, quantizeBlockwise } from './blockwise.js';
import { int8DoubleQuant, int8LinearMatmul, int8MmDequant, int8VectorwiseDequant, int8VectorwiseQuant } from './int8.js';
import { gemv4bit } from './gemv.js';
import { dequantizeFp8 } from './fp8.js';
import { hostAdapter } from './host.js';

registerBackend('cuda', {
  device: 'cuda',
  hostAdapter,
  hint: ' (is the CUDA addon loaded? probe().cuda.reason says why not)',
});
registerKernels('cuda', {
  quantize4bit,
  dequantize4bit,
  quantizeBlockwise,
  dequantizeBlockwise,
  int8VectorwiseQuant,
  int8DoubleQuant,
  int8VectorwiseDequant,
  int8LinearMatmul,
  int8MmDequant,
  gemv4bit,
  dequantizeFp8,
});
