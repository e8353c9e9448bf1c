/** The kernel ABI of build/bnb.{simd,scalar}.wasm (assembly/index.ts). Pointers are byte offsets. */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  simd(): number;
  quantize4bit(src: number, n: number, dtype: number, blocksize: number, qtype: number, packed: number, absmax: number, nf4: number): void;
  prepareNf4Table(table: number): void;
  dequantize4bit(packed: number, n: number, blocksize: number, qtype: number, absmax: number, dtype: number, out: number): void;
  quantizeBlockwise(src: number, n: number, dtype: number, blocksize: number, code: number, lut: number, q: number, absmax: number): void;
  dequantizeBlockwise(q: number, n: number, blocksize: number, code: number, absmax: number, dtype: number, out: number): void;
  prepareCodeLut(code: number, lut: number): void;
  firstNonFinite(src: number, n: number, dtype: number): number;
  int8VectorwiseQuant(a: number, rows: number, cols: number, threshold: number, cb: number, stats: number): void;
  int8ColumnQuant(a: number, rows: number, cols: number, threshold: number, cat: number, stats: number): void;
  int8VectorwiseDequant(a: number, rows: number, cols: number, stats: number, out: number): void;
  int8LinearMatmul(a: number, m: number, k: number, b: number, n: number, out: number): void;
  int8MmDequant(a: number, rows: number, cols: number, rowStats: number, colStats: number, bias: number, biasKind: number, dtype: number, out: number): void;
  gemv4bit(a: number, m: number, k: number, adtype: number, packed: number, base: number, j0: number, n: number, absmax: number, blocksize: number, qtype: number, bias: number, dtype: number, out: number, scratch: number): void;
  castFloat(src: number, n: number, from: number, dst: number, to: number): void;
  dequantizeFp8(w: number, rows: number, cols: number, row0: number, scale: number, scaleCols: number, blockRows: number, blockCols: number, dtype: number, out: number): void;
}

/** What a kernel call names: any export but the memory. */
export type KernelName = Exclude<keyof KernelExports, 'memory'>;

/** Bytes of the NF4 bucket table that quantize4bit reads (assembly/quantize4bit.ts). */
export const NF4_TABLE_BYTES = 64 + 65536;
/** Bytes gemv4bit's scratch holds before A and the decoded row (assembly/gemv.ts). */
export const GEMV_SCRATCH_HEAD = 128;

/** dtype ids shared with assembly/convert.ts */
export const WASM_DTYPE = { float32: 0, float16: 1, bfloat16: 2 } as const;
/** quant type ids shared with assembly/tables.ts */
export const WASM_QTYPE = { fp4: 0, nf4: 1 } as const;
