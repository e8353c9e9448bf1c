import { KernelsOf } from '../../abi.js';

/** The ABI of build/bnb.{simd,scalar}.wasm (assembly/index.ts): its functions are the table's wasm entries. Pointers are byte offsets. */
export interface KernelExports extends KernelsOf<'wasm'> {
  memory: WebAssembly.Memory;
}

/** What a kernel call names: any export but the memory. */
export type KernelName = Exclude<keyof KernelExports, 'memory'>;

/** Bytes of the NF4 bucket table that quantize4bit reads (assembly/quantize4bit.ts). */
export const NF4_TABLE_BYTES = 64 + 65536;
/** Bytes gemv4bit's scratch holds before A and the decoded rows (assembly/gemv.ts GEMV_HEAD). */
export const GEMV_SCRATCH_HEAD = 8192;

/** gemv4bit's scratch for m rows of A of k elements: A and two decoded W rows, k rounded up to 32. */
export function gemvScratchBytes(m: number, k: number): number {
  const kp = Math.ceil(k / 32) * 32;
  return GEMV_SCRATCH_HEAD + (m + 2) * kp * 4;
}

/** Bytes gemv4bitInt8's scratch holds before the quantized A rows (assembly/gemv8.ts GEMV8_SCRATCH_HEAD). */
export const GEMV8_SCRATCH_HEAD = 1024;

/**
 * gemv4bitInt8's scratch for m rows of k: the head, q as i16 (k rounded up to 64), d as f32
 * per group of 64, the SIMD kernel's chunk sums (16 i32x4 per 32 elements).
 */
export function gemv8ScratchBytes(m: number, k: number): number {
  const G = Math.ceil(k / 64);
  return GEMV8_SCRATCH_HEAD + m * (G * 64 * 2 + G * 4) + G * 64 * 8;
}
