// The ops, listed once: OPS, OpName, the kernel table a backend fills and the typed
// registration functions all follow from these declarations (each in its own file).
import { quantize4bitOp } from './quantize4bit.js';
import { dequantize4bitOp } from './dequantize4bit.js';
import { dequantizeBlockwiseOp, quantizeBlockwiseOp } from './blockwise.js';
import { int8DoubleQuantOp, int8LinearMatmulOp, int8MmDequantOp, int8VectorwiseDequantOp, int8VectorwiseQuantOp } from './int8.js';
import { gemv4bitOp } from './gemv4bit.js';
import { dequantizeFp8Op } from './fp8.js';
import { KernelOf, UserKernelOf, backendFor, registerOpKernel, registerUserKernel } from './registry.js';

const DECLARATIONS = [
  quantize4bitOp,
  dequantize4bitOp,
  quantizeBlockwiseOp,
  dequantizeBlockwiseOp,
  int8VectorwiseQuantOp,
  int8DoubleQuantOp,
  int8VectorwiseDequantOp,
  int8LinearMatmulOp,
  int8MmDequantOp,
  gemv4bitOp,
  dequantizeFp8Op,
] as const;

type Declared = (typeof DECLARATIONS)[number];
export type OpName = Declared['name'];
/** The declaration of each op by name. */
export type OpsByName = { [O in Declared as O['name']]: O };

/** The op names, in the list's order (the tuple type too). */
export const OPS = DECLARATIONS.map((d) => d.name) as unknown as NamesOf<typeof DECLARATIONS>;
type NamesOf<T> = { readonly [I in keyof T]: T[I] extends { name: infer N } ? N : never };
const BY_NAME = Object.fromEntries(DECLARATIONS.map((d) => [d.name, d])) as unknown as OpsByName;

/** The kernels a backend has, each typed by its op: the checked arguments in, the op's result out. */
export type Kernels = { [K in OpName]: KernelOf<OpsByName[K]> };

/** Registers the kernels a backend has (any subset of the ops); the backend is registered first (registerBackend). */
export function registerKernels(backend: string, kernels: Partial<Kernels>): void {
  for (const [name, kernel] of Object.entries(kernels)) {
    if (kernel) registerOpKernel(BY_NAME[name as OpName], backend, kernel as never);
  }
}

/**
 * Registers a kernel for an op on a device type ('cpu', 'cuda', 'hpu', or another),
 * like bitsandbytes' register_kernel(op, device): it runs instead of what ran there,
 * on the op's own arguments, after the op's shared check has accepted them. Returns a
 * function that restores the previous kernel.
 */
export function registerKernel<K extends OpName>(op: K, deviceType: string, kernel: UserKernelOf<OpsByName[K]>): () => void {
  return registerUserKernel(op, deviceType, kernel);
}

/** The backend whose kernel runs `op` for these tensors (null: a kernel a user registered). */
export function kernelBackend(op: OpName, tensors: Record<string, unknown>): string | null {
  return backendFor(BY_NAME[op], tensors);
}
