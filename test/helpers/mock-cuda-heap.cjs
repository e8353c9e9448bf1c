// "Device memory" for the mock CUDA addon: a first-fit allocator over a
// WebAssembly.Memory, with coalescing free blocks and any free order. Every
// pointer handed out is checked on use, so that a TypeScript bug which the real
// GPU would turn into an illegal address (or silent garbage) fails loudly here.
'use strict';

const PAGE = 65536;
const ALIGN = 256; // cudaMalloc's alignment
const POISON = 0xa5; // cudaMalloc gives uninitialised memory: make unwritten bytes visible

const roundUp = (x, a) => Math.ceil(x / a) * a;

/** An Error with the text the addon throws for a failed CUDA call. */
function cudaError(name, text, call) {
  return new Error(`CUDA error ${name}: ${text} in ${call}`);
}

class DeviceHeap {
  /** memory: the kernels' WebAssembly.Memory; base: first byte the heap may use. */
  constructor(memory, base) {
    this.memory = memory;
    this.base = roundUp(base, ALIGN);
    this.top = this.base; // end of the used arena; above it everything is free
    this.holes = []; // free blocks below top, [start, size], sorted by start, never adjacent
    this.live = new Map(); // ptr -> requested bytes
    this.starts = []; // live pointers, sorted (for the range checks)
  }

  u8() {
    return new Uint8Array(this.memory.buffer);
  }

  malloc(bytes) {
    const size = roundUp(Math.max(bytes, 1), ALIGN);
    let ptr = this.fromHole(size);
    if (ptr < 0) ptr = this.fromTop(size);
    this.live.set(ptr, Math.max(bytes, 1));
    this.starts.splice(this.insertAt(ptr), 0, ptr);
    this.u8().fill(POISON, ptr, ptr + size);
    return ptr;
  }

  fromHole(size) {
    const i = this.holes.findIndex(([, s]) => s >= size);
    if (i < 0) return -1;
    const [start, s] = this.holes[i];
    if (s === size) this.holes.splice(i, 1);
    else this.holes[i] = [start + size, s - size];
    return start;
  }

  fromTop(size) {
    const end = this.top + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      try {
        this.memory.grow(Math.ceil((end - have) / PAGE));
      } catch {
        throw cudaError('cudaErrorMemoryAllocation', 'out of memory', 'cudaMalloc(&p, size)');
      }
    }
    const ptr = this.top;
    this.top = end;
    return ptr;
  }

  free(ptr) {
    if (ptr === 0) return; // cudaFree(nullptr) is a no-op
    const bytes = this.live.get(ptr);
    if (bytes === undefined) throw cudaError('cudaErrorInvalidValue', 'invalid argument', 'cudaFree(ptr(info, 0, "ptr"))');
    this.live.delete(ptr);
    this.starts.splice(this.insertAt(ptr), 1);
    this.release(ptr, roundUp(bytes, ALIGN));
  }

  /** Returns [ptr, ptr + size) to the free space, merging it with its neighbours. */
  release(ptr, size) {
    const i = this.holes.findIndex(([s]) => s > ptr);
    const at = i < 0 ? this.holes.length : i;
    let start = ptr,
      end = ptr + size;
    const prev = this.holes[at - 1],
      next = this.holes[at];
    let from = at,
      count = 0;
    if (prev && prev[0] + prev[1] === start) {
      start = prev[0];
      from = at - 1;
      count++;
    }
    if (next && next[0] === end) {
      end = next[0] + next[1];
      count++;
    }
    if (end === this.top) {
      this.holes.splice(from, count);
      this.top = start;
    } else {
      this.holes.splice(from, count, [start, end - start]);
    }
  }

  /** Index of the first live pointer >= ptr. */
  insertAt(ptr) {
    let lo = 0,
      hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] < ptr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Throws unless [ptr, ptr + bytes) lies inside one live allocation (what `call` would touch). */
  check(ptr, bytes, call) {
    if (bytes <= 0) return;
    const i = this.insertAt(ptr + 1) - 1;
    const start = this.starts[i];
    if (start === undefined || ptr + bytes > start + this.live.get(start)) {
      throw cudaError(
        'cudaErrorIllegalAddress',
        `an illegal memory access was encountered (${bytes} bytes at ${ptr}, ` +
          `${start === undefined ? 'below every allocation' : `allocation ${start} holds ${this.live.get(start)}`})`,
        call,
      );
    }
  }

  stats() {
    let bytes = 0;
    for (const b of this.live.values()) bytes += b;
    return { allocations: this.live.size, bytes, arena: this.top - this.base, holes: this.holes.length };
  }
}

module.exports = { DeviceHeap, cudaError };
