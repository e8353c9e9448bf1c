import { BnbError } from '../errors.js';
import { KernelExports } from './exports.js';

const PAGE = 65536;
const ALIGN = 64;

/** Size of the persistent code-lookup region: 256 midpoints + 65536 bucket starts, plus the code itself. */
export const LUT_BYTES = 1024 + 65536 + 64;
export const CODE_BYTES = 1024;

/**
 * Host-side management of one kernel instance's linear memory. Above the
 * module's static data sits a persistent region (the 8-bit code and its lookup
 * table), then scratch space that each op lays out afresh.
 */
export class WasmMemory {
  readonly codePtr: number;
  readonly lutPtr: number;
  private readonly scratchBase: number;
  private lutCode: Float32Array | null = null;

  constructor(readonly k: KernelExports) {
    const base = Math.ceil(k.heapBase() / ALIGN) * ALIGN;
    this.codePtr = base;
    this.lutPtr = base + CODE_BYTES;
    this.scratchBase = this.lutPtr + LUT_BYTES;
    this.ensure(this.scratchBase);
  }

  private ensure(end: number): void {
    const have = this.k.memory.buffer.byteLength;
    if (end <= have) return;
    try {
      this.k.memory.grow(Math.ceil((end - have) / PAGE));
    } catch (e) {
      throw new BnbError('E_OUT_OF_MEMORY', `WebAssembly memory could not grow to ${end} bytes: ${(e as Error).message}`);
    }
  }

  /** Lays out scratch regions of the given byte sizes; returns their pointers. */
  scratch(...sizes: number[]): number[] {
    let top = this.scratchBase;
    const ptrs = sizes.map((s) => {
      const p = top;
      top += Math.ceil(s / ALIGN) * ALIGN;
      return p;
    });
    this.ensure(top);
    return ptrs;
  }

  bytes(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.k.memory.buffer, ptr, length);
  }

  write(ptr: number, src: Uint8Array): void {
    this.bytes(ptr, src.byteLength).set(src);
  }

  /** Copies `length` bytes at ptr into dst at byte offset `at`. */
  read(ptr: number, dst: Uint8Array, at: number, length: number): void {
    dst.set(this.bytes(ptr, length), at);
  }

  /** Makes `code` the current 8-bit code and builds its lookup table once. */
  useCode(code: Float32Array): void {
    const c = this.lutCode;
    if (c !== null && c.every((v, i) => Object.is(v, code[i]))) return;
    this.write(this.codePtr, new Uint8Array(code.buffer, code.byteOffset, 1024));
    this.k.prepareCodeLut(this.codePtr, this.lutPtr);
    this.lutCode = code.slice();
  }
}
