import { BnbError, fail } from '../../../errors.js';
import { registerKernelMemory } from '../../../tensor.js';
import { KernelExports, NF4_TABLE_BYTES } from './exports.js';

const PAGE = 65536;
const ALIGN = 64;
/** A wasm32 memory holds at most 65536 pages. */
export const MAX_WASM_BYTES = 2 ** 32;

/** Size of the persistent code-lookup region that prepareCodeLut fills (opaque here: its layout lives in assembly/blockwise.ts). */
export const LUT_BYTES = 1024 + 65536 + 64;
export const CODE_BYTES = 1024;

let limit = MAX_WASM_BYTES;

/**
 * Caps the linear memory of every kernel instance (default and maximum 4 GiB), from
 * the next op on: no memory grows past it (whole pages: the limit rounded down to
 * 64 KiB), and a new instance whose memory would start above it is refused. Memory
 * that grew before the limit was lowered is kept and stays usable (WebAssembly memory
 * cannot shrink). An op that would need more fails with E_OUT_OF_MEMORY and the
 * runtime stays usable.
 */
export function setWasmMemoryLimit(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < PAGE || bytes > MAX_WASM_BYTES) {
    fail('E_ARGUMENT', 'wasmMemoryLimit', bytes, `an integer number of bytes from ${PAGE} to ${MAX_WASM_BYTES} (4 GiB)`);
  }
  limit = bytes;
}

export function wasmMemoryLimit(): number {
  return limit;
}

/** What a kernel instance's memory holds: its size now, and the most scratch one op has laid out. */
export interface WasmMemoryStats {
  /** bytes of linear memory (never shrinks) */
  bytes: number;
  /** end of the largest scratch layout so far (bytes from 0) */
  highWater: number;
  /** end of the last op's scratch layout */
  lastTop: number;
  /** successful grow() calls */
  grows: number;
}

/** The memory whose views a buffer holds (views made by WasmMemory.view). */
const owners = new WeakMap<ArrayBufferLike, WasmMemory>();

export function memoryOf(v: ArrayBufferView): WasmMemory | null {
  return owners.get(v.buffer) ?? null;
}

/** The memory whose buffer this is (a buffer that views made by WasmMemory.view lie on). */
export function memoryOfBuffer(b: ArrayBufferLike): WasmMemory | null {
  return owners.get(b) ?? null;
}

/** What worker threads need to run kernels on the same memory: the module that imports it, and the memory. */
export interface SharedKernels {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
}

/**
 * Host-side management of one kernel instance's linear memory. Above the
 * module's static data (constants only: a threaded build's every instantiation
 * writes it again) sits a persistent region (the 8-bit code and its lookup table,
 * the NF4 bucket table), then the resident tensors (wasmTensor(): allocated and
 * freed by the caller, never by an op), then scratch space that each op lays out
 * afresh: nothing is allocated per call, so no op can leak wasm memory; it grows to
 * the largest layout asked for. `shared` is set where the memory is a shared one
 * that worker threads can instantiate the kernels on.
 */
export class WasmMemory {
  readonly codePtr: number;
  readonly lutPtr: number;
  readonly nf4Ptr: number;
  private readonly residentBase: number;
  /** end of the resident region, where scratch starts */
  private scratchBase: number;
  /** resident allocations: sorted start addresses, and each one's size and generation */
  private readonly live: number[] = [];
  private readonly sizes = new Map<number, number>();
  private readonly generations = new Map<number, number>();
  private generation = 0;
  /** views of resident allocations made by residentView(): the allocation (address and generation) each belongs to */
  private readonly viewsOf = new WeakMap<object, { ptr: number; generation: number }>();
  private lutCode: Float32Array | null = null;
  /** set when a dead worker made the pool give this memory up: no more ops run on it */
  abandoned = false;
  private highWater = 0;
  private lastTop = 0;
  private grows = 0;

  constructor(
    readonly k: KernelExports,
    readonly shared: SharedKernels | null = null,
  ) {
    const start = k.memory.buffer.byteLength,
      cap = Math.floor(Math.min(limit, MAX_WASM_BYTES) / PAGE) * PAGE;
    if (start > cap) {
      throw new BnbError(
        'E_OUT_OF_MEMORY',
        `a new WebAssembly kernel instance starts with ${start} bytes of memory: the limit is ${cap} bytes (setWasmMemoryLimit); the runtime stays usable`,
      );
    }
    const base = Math.ceil(k.heapBase() / ALIGN) * ALIGN;
    this.codePtr = base;
    this.lutPtr = base + CODE_BYTES;
    this.nf4Ptr = this.lutPtr + LUT_BYTES;
    this.residentBase = this.scratchBase = this.nf4Ptr + NF4_TABLE_BYTES;
    this.ensure(this.scratchBase);
    k.prepareNf4Table?.(this.nf4Ptr); // optional: bench --wasm runs older builds
  }

  private ensure(end: number, why = 'this op needs that much scratch at once (a very long row or column)'): void {
    const have = this.k.memory.buffer.byteLength;
    if (end <= have) return; // memory that grew before the limit was lowered stays usable (it cannot shrink)
    // whole pages: a grow never passes the limit
    const cap = Math.floor(Math.min(limit, MAX_WASM_BYTES) / PAGE) * PAGE;
    if (!(end <= cap)) {
      throw new BnbError(
        'E_OUT_OF_MEMORY',
        `WebAssembly memory could not grow to ${end} bytes: the limit is ${cap} bytes` +
          `${cap < MAX_WASM_BYTES ? ' (setWasmMemoryLimit)' : ' (4 GiB, the most a wasm32 memory holds)'}; ` +
          `${why}; the runtime stays usable`,
      );
    }
    try {
      this.k.memory.grow(Math.ceil((end - have) / PAGE));
    } catch (e) {
      throw new BnbError(
        'E_OUT_OF_MEMORY',
        `WebAssembly memory could not grow from ${have} to ${end} bytes: ${(e as Error).message}; the runtime stays usable`,
      );
    }
    this.grows++;
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
    this.lastTop = top;
    this.highWater = Math.max(this.highWater, top);
    return ptrs;
  }

  /**
   * Reserves `size` bytes for a resident tensor (first fit among the gaps, else
   * at the end, moving scratch up); between ops only, as scratch moves.
   */
  alloc(size: number): number {
    const bytes = Math.max(ALIGN, Math.ceil(size / ALIGN) * ALIGN);
    let at = this.residentBase,
      i = 0;
    for (; i < this.live.length; i++) {
      const p = this.live[i]!;
      if (p - at >= bytes) break;
      at = p + this.sizes.get(p)!;
    }
    if (i === this.live.length) {
      this.ensure(at + bytes, `resident tensors would hold ${this.residentBytes() + bytes} bytes (dispose() frees one)`);
      this.scratchBase = at + bytes;
    }
    this.live.splice(i, 0, at);
    this.sizes.set(at, bytes);
    this.generations.set(at, ++this.generation);
    return at;
  }

  /** Frees a resident allocation (nothing if it is not one). */
  release(ptr: number): void {
    const i = this.live.indexOf(ptr);
    if (i < 0) return;
    this.live.splice(i, 1);
    this.sizes.delete(ptr);
    this.generations.delete(ptr);
    if (i === this.live.length) {
      const last = this.live[i - 1];
      this.scratchBase = last === undefined ? this.residentBase : last + this.sizes.get(last)!;
    }
  }

  /** Bytes held by resident tensors. */
  residentBytes(): number {
    let n = 0;
    for (const s of this.sizes.values()) n += s;
    return n;
  }

  /** A view of `length` elements of type T at ptr, on the current buffer (recorded as this memory's: addressOf knows it). */
  view<T extends ArrayBufferView>(T: new (b: ArrayBufferLike, at: number, n: number) => T, ptr: number, length: number): T {
    const b = this.k.memory.buffer;
    owners.set(b, this); // a shared memory's buffer object changes as it grows
    return new T(b, ptr, length);
  }

  /**
   * The data view of the resident allocation at ptr (from alloc), tied to it: once
   * that allocation is released, the view is stale (addressOf says null) even where
   * a later allocation reuses its bytes.
   */
  residentView<T extends ArrayBufferView>(T: new (b: ArrayBufferLike, at: number, n: number) => T, ptr: number, length: number): T {
    const v = this.view(T, ptr, length);
    this.viewsOf.set(v, { ptr, generation: this.generations.get(ptr)! });
    return v;
  }

  /** True for a view residentView() made whose allocation has been released (its bytes may now be another tensor's). */
  stale(v: unknown): boolean {
    const r = typeof v === 'object' && v !== null ? this.viewsOf.get(v) : undefined;
    return r !== undefined && this.generations.get(r.ptr) !== r.generation;
  }

  /**
   * The address of `length` bytes `at` bytes into v where they lie inside one
   * live resident allocation of this memory (kernels can use them in place); else null.
   */
  addressOf(v: ArrayBufferView, at: number, length: number): number | null {
    if (owners.get(v.buffer) !== this || this.live.length === 0 || this.stale(v)) return null;
    const a = v.byteOffset + at;
    let lo = 0,
      hi = this.live.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.live[mid]! <= a) lo = mid;
      else hi = mid - 1;
    }
    const p = this.live[lo]!;
    return p <= a && a + length <= p + this.sizes.get(p)! ? a : null;
  }

  /** Input bytes for a kernel: where src already lies in this memory, else copied to ptr. */
  place(ptr: number, src: Uint8Array): number {
    const a = this.addressOf(src, 0, src.byteLength);
    if (a !== null) return a;
    this.write(ptr, src);
    return ptr;
  }

  /** Where a kernel writes `length` bytes meant for dst at byte `at`: in place where dst lies in this memory, else ptr. */
  target(ptr: number, dst: ArrayBufferView, at: number, length: number): number {
    return this.addressOf(dst, at, length) ?? ptr;
  }

  stats(): WasmMemoryStats {
    return { bytes: this.k.memory.buffer.byteLength, highWater: this.highWater, lastTop: this.lastTop, grows: this.grows };
  }

  bytes(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.k.memory.buffer, ptr, length);
  }

  write(ptr: number, src: Uint8Array): void {
    this.bytes(ptr, src.byteLength).set(src);
  }

  /** Copies `length` bytes at ptr into dst at byte offset `at` (dst: any view, addressed in bytes); nothing where they are there already. */
  read(ptr: number, dst: ArrayBufferView, at: number, length: number): void {
    if (this.addressOf(dst, at, length) === ptr) return;
    new Uint8Array(dst.buffer, dst.byteOffset + at, length).set(this.bytes(ptr, length));
  }

  /** Makes `code` the current 8-bit code and builds its lookup table once. */
  useCode(code: Float32Array): void {
    const c = this.lutCode;
    if (c !== null && c.every((v, i) => Object.is(v, code[i]))) return;
    this.lutCode = null; // a failure below must not leave a stale table marked current
    this.write(this.codePtr, new Uint8Array(code.buffer, code.byteOffset, 1024));
    this.k.prepareCodeLut(this.codePtr, this.lutPtr);
    this.lutCode = code.slice();
  }
}

// Host tensors may view resident allocations: tensor.ts checks such views with this.
registerKernelMemory({
  ownerOf: memoryOfBuffer,
  isLive: (data, bytes) => {
    const m = memoryOfBuffer(bytes.buffer)!;
    return !m.stale(data) && m.addressOf(bytes, 0, bytes.byteLength) !== null;
  },
});
