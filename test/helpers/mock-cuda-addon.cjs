// A stand-in for build/bnbjs_cuda.node: the CudaAddon interface of
// src/backend/cuda/addon.ts on the WebAssembly SIMD kernels, so that the CUDA
// backend's TypeScript (device tensors, uploads, temporaries, the kernels' argument
// plumbing) runs without a GPU:
//
//   BNBJS_BACKEND=cuda BNBJS_CUDA_ADDON=$PWD/test/helpers/mock-cuda-addon.cjs npx vitest run
//
// Device memory is the kernels' own linear memory (a separate instance from the
// one the WebAssembly backend uses). Arguments are checked as the addon's bindings
// and launchers check them (native/cuda/addon.cpp, *.cu): the kernels' parameters,
// names and kinds come from the ABI table (src/backend/abi.ts, copied to
// abi.gen.json by scripts/gen-abi.mjs). Every pointer is checked against the live
// allocations: a bad one throws an Error, as a failed CUDA call does.
'use strict';

const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { DeviceHeap, cudaError } = require('./mock-cuda-heap.cjs');
const { DTYPE_ID, KERNEL_ABI } = require('./abi.gen.json');

const k = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(join(__dirname, '..', '..', 'build', 'bnb.simd.wasm'))), {
  env: {
    abort: () => {
      throw new Error('bnbjs kernel aborted');
    },
  },
}).exports;

// The 8-bit code and its lookup table, which quantizeBlockwise needs, and the NF4
// bucket table quantize4bit reads (laid out as src/backend/wasm/runtime/memory.ts does: CODE_BYTES,
// LUT_BYTES, then NF4_TABLE_BYTES), below the heap; the 8-bit table is built again
// only when the code changes, the NF4 table once.
const CODE_BYTES = 1024,
  LUT_BYTES = 1024 + 65536 + 64,
  NF4_TABLE_BYTES = 64 + 65536;
const codePtr = Math.ceil(k.heapBase() / 64) * 64,
  lutPtr = codePtr + CODE_BYTES,
  nf4Ptr = lutPtr + LUT_BYTES;
let lutCode = null;
const heap = new DeviceHeap(k.memory, nf4Ptr + NF4_TABLE_BYTES);
k.memory.grow(Math.max(0, Math.ceil((nf4Ptr + NF4_TABLE_BYTES - k.memory.buffer.byteLength) / 65536)));
k.prepareNf4Table(nf4Ptr);

const SIZE = { [DTYPE_ID.float32]: 4, [DTYPE_ID.float16]: 2, [DTYPE_ID.bfloat16]: 2 }; // bytes by dtype id
const ceilDiv = (a, b) => Math.ceil(a / b);

/** The Error of a launcher's argument check (bnb::throw_arg). */
function bad(message) {
  throw new Error(message);
}

/** The addon's kernel functions and their parameters, [name, kind] each: the table's cuda entries. */
const KERNEL_PARAMS = new Map(
  Object.entries(KERNEL_ABI)
    .filter(([, spec]) => spec.targets.includes('cuda'))
    .map(([fn, spec]) => [fn, spec.params.filter((p) => p.length < 3 || p[2] === 'cuda')]),
);

// The bindings' unpacking by kind (native/cuda/addon.cpp): f32/f64 any number, the others integers,
// count and pointers non-negative; 'bytes' (the runtime calls' byte counts) is a count that is not
// bound to the 32-bit WebAssembly kernels of the mock.
function args(fn, values, params = KERNEL_PARAMS.get(fn)) {
  params.forEach(([name, kind], i) => {
    const v = values[i];
    if (typeof v !== 'number') throw new TypeError(`argument ${i} (${name}) must be a number`);
    if (kind === 'f32' || kind === 'f64') return;
    if (!Number.isFinite(v) || Math.floor(v) !== v || Math.abs(v) > 2 ** 53) throw new TypeError(`${name} must be an integer, got ${v}`);
    if ((kind === 'count' || kind === 'bytes') && v < 0) throw new RangeError(`${name} must be non-negative, got ${v}`);
    if ((kind === 'ptr' || kind === 'cptr') && v < 0) throw new RangeError(`${name} must be a device pointer (a non-negative integer)`);
    if (kind === 'count' && v >= 2 ** 31) bad(`${fn}: ${name} = ${v} is beyond the 32-bit WebAssembly kernels of the mock`);
  });
}

function dtypeOk(dtype) {
  if (dtype < 0 || dtype > 2) bad(`dtype must be 0 (float32), 1 (float16) or 2 (bfloat16), got ${dtype}`);
  return SIZE[dtype];
}

function qtypeOk(fn, qtype) {
  if (qtype !== 0 && qtype !== 1) bad(`${fn}: qtype must be 0 (fp4) or 1 (nf4), got ${qtype}`);
}

/** Checks the buffers a kernel touches: [ptr, bytes, alignment, name] each (bnb need_align, then the address range). */
function touches(fn, ...buffers) {
  for (const [ptr, , align, name] of buffers) {
    if (align > 1 && ptr % align !== 0) bad(`${fn}: ${name} must be aligned to ${align} bytes`);
  }
  for (const [ptr, bytes] of buffers) heap.check(ptr, bytes, `${fn} kernel`);
}

/** Runs f with temporary device memory of these sizes, freed afterwards. */
function withScratch(sizes, f) {
  const ptrs = sizes.map((s) => heap.malloc(s));
  try {
    return f(...ptrs);
  } finally {
    for (const p of ptrs) heap.free(p);
  }
}

const f32 = () => new Float32Array(k.memory.buffer);

/** gemv4bit and gemv4bitInt8: the addon's checks, then the WebAssembly kernel of the same name. */
function gemv(fn, argv) {
  const [a, m, kk, adtype, packed, n, absmax, bs, qtype, bias, dtype, out] = argv;
  args(fn, argv);
  if (bs <= 0) bad(`${fn}: blocksize must be positive, got ${bs}`);
  if (qtype !== 0 && qtype !== 1) bad(`${fn}: qtype must be 0 (fp4) or 1 (nf4)`);
  if (adtype < 0 || adtype > 2 || dtype < 0 || dtype > 2) bad(`${fn}: dtype ids must be 0, 1 or 2`);
  touches(
    fn,
    [a, m * kk * SIZE[adtype], SIZE[adtype], 'a'],
    [packed, ceilDiv(n * kk, 2), 1, 'packed'],
    [absmax, ceilDiv(n * kk, bs) * 4, 4, 'absmax'],
    [bias, bias ? n * 4 : 0, 4, 'bias'],
    [out, m * n * SIZE[dtype], SIZE[dtype], 'out'],
  );
  if (m === 0 || n === 0) return;
  if (m > 65535) bad(`${fn}: m must be at most 65535`);
  if (typeof k[fn] !== 'function') bad(`${fn}: the WebAssembly build has no ${fn} kernel yet`);
  // the WebAssembly kernels take a nibble base and a first row (0 for a whole weight) and scratch:
  // gemv4bit gemvScratchBytes(m, k) of src/backend/wasm/runtime/exports.ts (8192 bytes + (m + 2)
  // rows of k rounded up to 32 f32), gemv4bitInt8 gemv8ScratchBytes(m, k) there
  const G = ceilDiv(kk, 64);
  const scratch = fn === 'gemv4bitInt8' ? 1024 + m * (G * 128 + G * 4) + G * 512 : 8192 + (m + 2) * ceilDiv(kk, 32) * 128;
  withScratch([scratch], (s) => k[fn](a, m, kk, adtype, packed, 0, 0, n, absmax, bs, qtype, bias, dtype, out, s));
}

let clock = 0; // microseconds of queued spin() kernels, seen by the events
const events = new Map();
let nextEvent = 1;

module.exports = {
  probe: () => ({
    driverVersion: 0,
    runtimeVersion: 0,
    devices: [
      { index: 0, name: 'mock CUDA device (WebAssembly SIMD kernels)', major: 0, minor: 0, totalMemory: 2 ** 32, multiProcessorCount: 1 },
    ],
  }),
  setDevice(index) {
    args('setDevice', arguments, [['index', 'small']]);
    if (index !== 0) throw cudaError('cudaErrorInvalidDevice', 'invalid device ordinal', 'cudaSetDevice(small(info, 0, "index"))');
  },
  malloc(bytes) {
    args('malloc', arguments, [['bytes', 'bytes']]);
    return heap.malloc(bytes);
  },
  free(ptr) {
    args('free', arguments, [['ptr', 'ptr']]);
    heap.free(ptr);
  },
  memset(ptr, byte, bytes) {
    args('memset', arguments, [
      ['ptr', 'ptr'],
      ['byte', 'small'],
      ['bytes', 'bytes'],
    ]);
    heap.check(ptr, bytes, 'cudaMemset(p, byte, (size_t)bytes)');
    heap.u8().fill(byte & 0xff, ptr, ptr + bytes);
  },
  copyHtoD(dst, src) {
    args('copyHtoD', [dst], [['dst', 'ptr']]);
    if (!ArrayBuffer.isView(src)) throw new TypeError('argument 1 (src) must be an ArrayBufferView');
    heap.check(dst, src.byteLength, 'cudaMemcpy(dst, v.data, v.bytes, cudaMemcpyHostToDevice)');
    heap.u8().set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), dst);
  },
  copyDtoH(dst, src) {
    if (!ArrayBuffer.isView(dst)) throw new TypeError('argument 0 (dst) must be an ArrayBufferView');
    args('copyDtoH', [src], [['src', 'ptr']]);
    heap.check(src, dst.byteLength, 'cudaMemcpy(v.data, src, v.bytes, cudaMemcpyDeviceToHost)');
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(heap.u8().subarray(src, src + dst.byteLength));
  },
  copyDtoD(dst, src, bytes) {
    args('copyDtoD', arguments, [
      ['dst', 'ptr'],
      ['src', 'ptr'],
      ['bytes', 'bytes'],
    ]);
    heap.check(src, bytes, 'cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice)');
    heap.check(dst, bytes, 'cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice)');
    heap.u8().copyWithin(dst, src, src + bytes);
  },
  synchronize() {},
  spin(microseconds) {
    args('spin', arguments);
    clock += Math.max(microseconds, 0);
  },
  eventRecord() {
    events.set(nextEvent, performance.now() + clock / 1000);
    return nextEvent++;
  },
  eventElapsed(start, end) {
    args('eventElapsed', arguments, [
      ['start', 'ptr'],
      ['end', 'ptr'],
    ]);
    if (!events.has(start) || !events.has(end))
      throw cudaError('cudaErrorInvalidResourceHandle', 'invalid resource handle', 'cudaEventElapsedTime(&ms, s, e)');
    return events.get(end) - events.get(start);
  },
  eventDestroy(e) {
    args('eventDestroy', arguments, [['event', 'ptr']]);
    if (!events.delete(e))
      throw cudaError('cudaErrorInvalidResourceHandle', 'invalid resource handle', 'cudaEventDestroy((cudaEvent_t)ptr(info, 0, "event"))');
  },

  quantize4bit(src, n, dtype, bs, qtype, packed, absmax) {
    args('quantize4bit', arguments);
    if (bs <= 0 || bs % 2) bad(`quantize4bit: blocksize must be a positive even number, got ${bs}`);
    qtypeOk('quantize4bit', qtype);
    const size = dtypeOk(dtype);
    touches('quantize4bit', [src, n * size, size, 'src'], [packed, ceilDiv(n, 2), 1, 'packed'], [absmax, ceilDiv(n, bs) * 4, 4, 'absmax']);
    if (n > 0) k.quantize4bit(src, n, dtype, bs, qtype, packed, absmax, nf4Ptr);
  },
  dequantize4bit(packed, n, bs, qtype, absmax, dtype, out) {
    args('dequantize4bit', arguments);
    if (bs <= 0) bad(`dequantize4bit: blocksize must be positive, got ${bs}`);
    qtypeOk('dequantize4bit', qtype);
    const size = dtypeOk(dtype);
    touches(
      'dequantize4bit',
      [packed, ceilDiv(n, 2), 1, 'packed'],
      [absmax, ceilDiv(n, bs) * 4, 4, 'absmax'],
      [out, n * size, size, 'out'],
    );
    if (n > 0) k.dequantize4bit(packed, n, bs, qtype, absmax, dtype, out);
  },
  quantizeBlockwise(src, n, dtype, bs, code, q, absmax) {
    args('quantizeBlockwise', arguments);
    if (bs <= 0) bad(`quantizeBlockwise: blocksize must be positive, got ${bs}`);
    const size = dtypeOk(dtype);
    touches(
      'quantizeBlockwise',
      [src, n * size, size, 'src'],
      [code, CODE_BYTES, 4, 'code'],
      [q, n, 1, 'q'],
      [absmax, ceilDiv(n, bs) * 4, 4, 'absmax'],
    );
    if (n === 0) return;
    const codeBytes = heap.u8().slice(code, code + CODE_BYTES);
    if (!lutCode || !lutCode.every((b, i) => b === codeBytes[i])) {
      lutCode = null; // a failure below must not leave a stale table marked current
      heap.u8().set(codeBytes, codePtr);
      k.prepareCodeLut(codePtr, lutPtr);
      lutCode = codeBytes;
    }
    k.quantizeBlockwise(src, n, dtype, bs, codePtr, lutPtr, q, absmax);
  },
  dequantizeBlockwise(q, n, bs, code, absmax, dtype, out) {
    args('dequantizeBlockwise', arguments);
    if (bs <= 0) bad(`dequantizeBlockwise: blocksize must be positive, got ${bs}`);
    const size = dtypeOk(dtype);
    touches(
      'dequantizeBlockwise',
      [q, n, 1, 'q'],
      [code, CODE_BYTES, 4, 'code'],
      [absmax, ceilDiv(n, bs) * 4, 4, 'absmax'],
      [out, n * size, size, 'out'],
    );
    if (n > 0) k.dequantizeBlockwise(q, n, bs, code, absmax, dtype, out);
  },
  // f32(f64(x) + value), as the addon's kernels (__double2float_rn(__dadd_rn(x, v)))
  addScalarF32(ptr, n, value) {
    args('addScalarF32', arguments);
    touches('addScalarF32', [ptr, n * 4, 4, 'ptr']);
    const x = f32();
    for (let i = ptr / 4; i < ptr / 4 + n; i++) x[i] = x[i] + value;
  },
  subtractScalarF32(src, n, value, dst) {
    args('subtractScalarF32', arguments);
    touches('subtractScalarF32', [src, n * 4, 4, 'src'], [dst, n * 4, 4, 'dst']);
    const x = f32();
    for (let i = 0; i < n; i++) x[dst / 4 + i] = x[src / 4 + i] - value;
  },
  firstNonFinite(src, n, dtype) {
    args('firstNonFinite', arguments);
    const size = dtypeOk(dtype);
    touches('firstNonFinite', [src, n * size, size, 'src']);
    return n > 0 ? k.firstNonFinite(src, n, dtype) : -1;
  },
  int8VectorwiseQuant(a, rows, cols, threshold, cb, stats) {
    args('int8VectorwiseQuant', arguments);
    touches('int8VectorwiseQuant', [a, rows * cols * 2, 2, 'a'], [cb, rows * cols, 1, 'cb'], [stats, rows * 4, 4, 'stats']);
    if (rows === 0) return;
    if (cols === 0) f32().fill(0, stats / 4, stats / 4 + rows);
    else k.int8VectorwiseQuant(a, rows, cols, Math.fround(threshold), cb, stats);
  },
  int8ColumnQuant(a, rows, cols, threshold, cat, stats) {
    args('int8ColumnQuant', arguments);
    touches('int8ColumnQuant', [a, rows * cols * 2, 2, 'a'], [cat, rows * cols, 1, 'cat'], [stats, cols * 4, 4, 'stats']);
    if (cols === 0) return;
    if (rows === 0) f32().fill(0, stats / 4, stats / 4 + cols);
    else k.int8ColumnQuant(a, rows, cols, Math.fround(threshold), cat, stats);
  },
  int8VectorwiseDequant(a, rows, cols, stats, out) {
    args('int8VectorwiseDequant', arguments);
    touches('int8VectorwiseDequant', [a, rows * cols, 1, 'a'], [stats, rows * 4, 4, 'stats'], [out, rows * cols * 4, 4, 'out']);
    if (rows > 0 && cols > 0) k.int8VectorwiseDequant(a, rows, cols, stats, out);
  },
  int8LinearMatmul(a, m, kk, b, n, out) {
    args('int8LinearMatmul', arguments);
    touches('int8LinearMatmul', [a, m * kk, 1, 'a'], [b, n * kk, 1, 'b'], [out, m * n * 4, 4, 'out']);
    if (m === 0 || n === 0) return;
    if (kk === 0) heap.u8().fill(0, out, out + m * n * 4);
    else k.int8LinearMatmul(a, m, kk, b, n, out);
  },
  int8MmDequant(a, rows, cols, rowStats, colStats, bias, biasKind, dtype, out) {
    args('int8MmDequant', arguments);
    if (biasKind < 0 || biasKind > 3) bad('int8MmDequant: biasKind must be 0 (none), 1 (f16), 2 (f32) or 3 (bf16)');
    if (biasKind !== 0 && bias === 0) bad(`int8MmDequant: bias is 0 but biasKind is ${biasKind}`);
    if (dtype < 0 || dtype > 2) bad('int8MmDequant: dtype must be 0, 1 or 2');
    const biasSize = biasKind === 2 ? 4 : 2;
    touches(
      'int8MmDequant',
      [a, rows * cols * 4, 4, 'a'],
      [rowStats, rows * 4, 4, 'rowStats'],
      [colStats, cols * 4, 4, 'colStats'],
      [bias, biasKind ? cols * biasSize : 0, biasKind ? biasSize : 1, 'bias'],
      [out, rows * cols * SIZE[dtype], SIZE[dtype], 'out'],
    );
    if (rows > 0 && cols > 0) k.int8MmDequant(a, rows, cols, rowStats, colStats, bias, biasKind, dtype, out);
  },
  // the addon takes cuBLASLt for m >= 64 (float64 bars, not these bytes); the mock keeps the exact order
  gemv4bit(a, m, kk, adtype, packed, n, absmax, bs, qtype, bias, dtype, out) {
    gemv('gemv4bit', arguments);
  },
  gemv4bitInt8(a, m, kk, adtype, packed, n, absmax, bs, qtype, bias, dtype, out) {
    gemv('gemv4bitInt8', arguments);
  },
  // cuBLASLt's order is its own: the mock sums in float64 and rounds once (f32 or the 16-bit dtype)
  gemmLt(a, w, dtype, m, kk, n, out, outDtype) {
    args('gemmLt', arguments);
    const size = dtypeOk(dtype);
    if (outDtype !== dtype && outDtype !== 0) bad('gemmLt: outDtype must be dtype or 0 (float32)');
    if (m === 0 || n === 0 || kk === 0) bad('gemmLt: m, k and n must be positive');
    touches('gemmLt', [a, m * kk * size, size, 'a'], [w, n * kk * size, size, 'w'], [out, m * n * SIZE[outDtype], SIZE[outDtype], 'out']);
    withScratch([(m * kk + n * kk + m * n) * 4], (s) => {
      k.castFloat(a, m * kk, dtype, s, 0);
      k.castFloat(w, n * kk, dtype, s + m * kk * 4, 0);
      const x = f32(),
        A = s / 4,
        W = A + m * kk,
        O = W + n * kk;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let t = 0; t < kk; t++) acc += x[A + i * kk + t] * x[W + j * kk + t];
          x[O + i * n + j] = acc;
        }
      k.castFloat(s + (m * kk + n * kk) * 4, m * n, 0, out, outDtype);
    });
  },
  dequantizeFp8(w, rows, cols, row0, scale, scaleCols, blockRows, blockCols, dtype, out) {
    args('dequantizeFp8', arguments);
    if (blockRows <= 0 || blockCols <= 0) bad('dequantizeFp8: blockRows and blockCols must be positive');
    if (dtype < 0 || dtype > 2) bad('dequantizeFp8: dtype must be 0, 1 or 2');
    // scale[((row0 + i) / blockRows) * scaleCols + j / blockCols] for the last row and column
    const scales = rows && cols ? Math.floor((row0 + rows - 1) / blockRows) * scaleCols + Math.floor((cols - 1) / blockCols) + 1 : 0;
    touches(
      'dequantizeFp8',
      [w, rows * cols, 1, 'w'],
      [scale, scales * 4, 4, 'scale'],
      [out, rows * cols * SIZE[dtype], SIZE[dtype], 'out'],
    );
    if (rows > 0 && cols > 0) k.dequantizeFp8(w, rows, cols, row0, scale, scaleCols, blockRows, blockCols, dtype, out);
  },
  // one launch in the addon; here the same three steps (dequantizeBlockwise f32, + offset, dequantize4bit)
  dequantize4bitNested(packed, n, bs, qtype, qabsmax, code2, absmax2, bs2, offset, dtype, out) {
    args('dequantize4bitNested', arguments);
    if (bs <= 0) bad(`dequantize4bitNested: blocksize must be positive, got ${bs}`);
    if (bs2 <= 0) bad(`dequantize4bitNested: blocksize2 must be positive, got ${bs2}`);
    qtypeOk('dequantize4bitNested', qtype);
    const size = dtypeOk(dtype);
    const nb = ceilDiv(n, bs);
    touches(
      'dequantize4bitNested',
      [packed, ceilDiv(n, 2), 1, 'packed'],
      [qabsmax, nb, 1, 'qabsmax'],
      [code2, CODE_BYTES, 4, 'code2'],
      [absmax2, ceilDiv(nb, bs2) * 4, 4, 'absmax2'],
      [out, n * size, size, 'out'],
    );
    if (n === 0) return;
    withScratch([nb * 4], (absmax) => {
      k.dequantizeBlockwise(qabsmax, nb, bs2, code2, absmax2, 0, absmax);
      module.exports.addScalarF32(absmax, nb, offset);
      k.dequantize4bit(packed, n, bs, qtype, absmax, dtype, out);
    });
  },

  /** Not in the addon: the mock's allocations (leak checks in tests). */
  mockStats: () => heap.stats(),
};
