// The kernel ABI, stated once: every function of the WebAssembly kernel module
// (assembly/index.ts) and every function of the CUDA addon that forwards to a launcher
// (native/cuda). The TypeScript interfaces below are derived from it; the C++ launcher
// declarations and the addon's argument unpacking (native/cuda/*.gen.h) and the mock
// addon's checks (test/helpers/abi.gen.json) are generated from it by
// scripts/gen-abi.mjs; test/abi.test.ts checks all of them, and the wasm module's
// exports, against it. This module imports nothing: the generator loads it alone.
//
// A parameter is [name, kind] or [name, kind, target] (only that target takes it).
// Kinds, by target (all are JS numbers):
//
//   kind     wasm   CUDA launcher  addon unpacking (native/cuda/addon.cpp)
//   cptr     usize  const void*    ptr(): a non-negative integer; the kernel reads there
//   ptr      usize  void*          ptr(); the kernel writes there
//   count    i32    long long      count(): a non-negative integer
//   integer  i32    long long      integer(): any integer (the launcher checks its range)
//   small    i32    int            small(): an integer
//   dtype    i32    int            small(): an id of DTYPE_ID
//   qtype    i32    int            small(): an id of QTYPE_ID
//   f32      f32    float          number(), rounded to float
//   f64      -      double         number()
//   u32      u32    -              -
//
// Returns: void; index (-1 or an element index: wasm i32, CUDA long long); ptr; small.

/** dtype ids of every kernel, WebAssembly and CUDA (assembly/convert.ts DT_*, the DT_* of native/cuda/kernels.gen.h). */
export const DTYPE_ID = { float32: 0, float16: 1, bfloat16: 2 } as const;
/** 4-bit quant type ids (assembly/tables.ts QT_*, the QT_* of native/cuda/kernels.gen.h). */
export const QTYPE_ID = { fp4: 0, nf4: 1 } as const;

export type Target = 'wasm' | 'cuda';
export type ParamKind = 'cptr' | 'ptr' | 'count' | 'integer' | 'small' | 'dtype' | 'qtype' | 'f32' | 'f64' | 'u32';
export type ReturnKind = 'void' | 'index' | 'ptr' | 'small';
export type Param = readonly [name: string, kind: ParamKind, only?: Target];
export interface KernelSpec {
  readonly targets: readonly Target[];
  readonly params: readonly Param[];
  readonly returns: ReturnKind;
}

const BOTH = ['wasm', 'cuda'] as const;
const WASM = ['wasm'] as const;
const CUDA = ['cuda'] as const;

/** gemv4bit's parameters, both modes. */
const GEMV_PARAMS = [
  ['a', 'cptr'],
  ['m', 'count'],
  ['k', 'count'],
  ['adtype', 'dtype'],
  ['packed', 'cptr'],
  ['base', 'u32', 'wasm'],
  ['j0', 'small', 'wasm'],
  ['n', 'count'],
  ['absmax', 'cptr'],
  ['blocksize', 'integer'],
  ['qtype', 'qtype'],
  ['bias', 'cptr'],
  ['dtype', 'dtype'],
  ['out', 'ptr'],
  ['scratch', 'ptr', 'wasm'],
] as const;

/** Every kernel entry point; the order is the addon's export order and the generated files'. */
export const KERNEL_ABI = {
  /** The first byte above the module's static data: the host's heap starts here. */
  heapBase: { targets: WASM, params: [], returns: 'ptr' },
  /** 2 when the build uses relaxed SIMD, 1 SIMD, 0 scalar (the oracle). */
  simd: { targets: WASM, params: [], returns: 'small' },
  /** The WebAssembly kernel reads an NF4 bucket table (prepareNf4Table, NF4_TABLE_BYTES). */
  quantize4bit: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['src', 'cptr'],
      ['n', 'count'],
      ['dtype', 'dtype'],
      ['blocksize', 'integer'],
      ['qtype', 'qtype'],
      ['packed', 'ptr'],
      ['absmax', 'ptr'],
      ['nf4', 'cptr', 'wasm'],
    ],
  },
  prepareNf4Table: { targets: WASM, returns: 'void', params: [['table', 'ptr']] },
  dequantize4bit: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['packed', 'cptr'],
      ['n', 'count'],
      ['blocksize', 'integer'],
      ['qtype', 'qtype'],
      ['absmax', 'cptr'],
      ['dtype', 'dtype'],
      ['out', 'ptr'],
    ],
  },
  /**
   * dequantize4bit with a nested absmax (qabsmax uint8 per block, code2 f32[256], absmax2 f32 per blocksize2 blocks, offset):
   * one kernel, the bytes of dequantizeBlockwise(f32) + addScalarF32(offset) + dequantize4bit.
   */
  dequantize4bitNested: {
    targets: CUDA,
    returns: 'void',
    params: [
      ['packed', 'cptr'],
      ['n', 'count'],
      ['blocksize', 'integer'],
      ['qtype', 'qtype'],
      ['qabsmax', 'cptr'],
      ['code2', 'cptr'],
      ['absmax2', 'cptr'],
      ['blocksize2', 'integer'],
      ['offset', 'f64'],
      ['dtype', 'dtype'],
      ['out', 'ptr'],
    ],
  },
  /** The WebAssembly kernel reads the code's lookup table too (prepareCodeLut). */
  quantizeBlockwise: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['src', 'cptr'],
      ['n', 'count'],
      ['dtype', 'dtype'],
      ['blocksize', 'integer'],
      ['code', 'cptr'],
      ['lut', 'cptr', 'wasm'],
      ['q', 'ptr'],
      ['absmax', 'ptr'],
    ],
  },
  dequantizeBlockwise: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['q', 'cptr'],
      ['n', 'count'],
      ['blocksize', 'integer'],
      ['code', 'cptr'],
      ['absmax', 'cptr'],
      ['dtype', 'dtype'],
      ['out', 'ptr'],
    ],
  },
  prepareCodeLut: {
    targets: WASM,
    returns: 'void',
    params: [
      ['code', 'cptr'],
      ['lut', 'ptr'],
    ],
  },
  /** f32(f64(x) + value) in place. */
  addScalarF32: {
    targets: CUDA,
    returns: 'void',
    params: [
      ['ptr', 'ptr'],
      ['n', 'count'],
      ['value', 'f64'],
    ],
  },
  /** dst = f32(f64(src) - value). */
  subtractScalarF32: {
    targets: CUDA,
    returns: 'void',
    params: [
      ['src', 'cptr'],
      ['n', 'count'],
      ['value', 'f64'],
      ['dst', 'ptr'],
    ],
  },
  /** The index of the first NaN or ±Inf, -1 if none. */
  firstNonFinite: {
    targets: BOTH,
    returns: 'index',
    params: [
      ['src', 'cptr'],
      ['n', 'count'],
      ['dtype', 'dtype'],
    ],
  },
  int8VectorwiseQuant: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['a', 'cptr'],
      ['rows', 'count'],
      ['cols', 'count'],
      ['threshold', 'f32'],
      ['cb', 'ptr'],
      ['stats', 'ptr'],
    ],
  },
  int8ColumnQuant: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['a', 'cptr'],
      ['rows', 'count'],
      ['cols', 'count'],
      ['threshold', 'f32'],
      ['cat', 'ptr'],
      ['stats', 'ptr'],
    ],
  },
  int8VectorwiseDequant: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['a', 'cptr'],
      ['rows', 'count'],
      ['cols', 'count'],
      ['stats', 'cptr'],
      ['out', 'ptr'],
    ],
  },
  int8LinearMatmul: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['a', 'cptr'],
      ['m', 'count'],
      ['k', 'count'],
      ['b', 'cptr'],
      ['n', 'count'],
      ['out', 'ptr'],
    ],
  },
  /** biasKind: 0 none, 1 f16, 2 f32, 3 bf16. */
  int8MmDequant: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['a', 'cptr'],
      ['rows', 'count'],
      ['cols', 'count'],
      ['rowStats', 'cptr'],
      ['colStats', 'cptr'],
      ['bias', 'cptr'],
      ['biasKind', 'small'],
      ['dtype', 'dtype'],
      ['out', 'ptr'],
    ],
  },
  /**
   * The WebAssembly kernel takes a nibble base and a first row of the weight (a slice of rows for a thread) and
   * gemvScratchBytes(m, k) bytes of scratch (runtime/exports.ts).
   */
  gemv4bit: {
    targets: BOTH,
    returns: 'void',
    params: GEMV_PARAMS,
  },
  /**
   * gemv4bit's int8-activation mode ({ accuracy: 'int8' }, assembly/gemv8.ts), the parameters of gemv4bit; the
   * WebAssembly kernel takes gemv8ScratchBytes(m, k) bytes of scratch (runtime/exports.ts: kp = k rounded up
   * to 64, G = ceil(k / 64)).
   */
  gemv4bitInt8: {
    targets: BOTH,
    returns: 'void',
    params: GEMV_PARAMS,
  },
  /**
   * out[m, n] = sum_k a[m, k] w[n, k] through cuBLASLt, f32 compute (no TF32), a and w of dtype, out of outDtype (dtype
   * or float32): the GEMM of gemv4bit's M >= 64 path on its own (benchmarks). Throws when cuBLASLt is missing or has no
   * algorithm for the case.
   */
  gemmLt: {
    targets: CUDA,
    returns: 'void',
    params: [
      ['a', 'cptr'],
      ['w', 'cptr'],
      ['dtype', 'dtype'],
      ['m', 'count'],
      ['k', 'count'],
      ['n', 'count'],
      ['out', 'ptr'],
      ['outDtype', 'dtype'],
    ],
  },
  castFloat: {
    targets: WASM,
    returns: 'void',
    params: [
      ['src', 'cptr'],
      ['n', 'count'],
      ['from', 'dtype'],
      ['dst', 'ptr'],
      ['to', 'dtype'],
    ],
  },
  dequantizeFp8: {
    targets: BOTH,
    returns: 'void',
    params: [
      ['w', 'cptr'],
      ['rows', 'count'],
      ['cols', 'count'],
      ['row0', 'count'],
      ['scale', 'cptr'],
      ['scaleCols', 'count'],
      ['blockRows', 'integer'],
      ['blockCols', 'integer'],
      ['dtype', 'dtype'],
      ['out', 'ptr'],
    ],
  },
  /** Queues a kernel that waits this long on the GPU (benchmarks: hides the launch gap). */
  spin: { targets: CUDA, returns: 'void', params: [['microseconds', 'f64']] },
} as const satisfies Record<string, KernelSpec>;

type Abi = typeof KERNEL_ABI;

/** The parameters one target takes, as numbers (the kinds are all JS numbers). */
type ArgsOf<P extends readonly Param[], T extends Target> = P extends readonly [infer H, ...infer R extends readonly Param[]]
  ? H extends readonly [string, ParamKind, infer Only]
    ? T extends Only
      ? [number, ...ArgsOf<R, T>]
      : ArgsOf<R, T>
    : [number, ...ArgsOf<R, T>]
  : [];

/** The kernel functions of one target: a mapped type over the table, so that no interface can drift from it. */
export type KernelsOf<T extends Target> = {
  readonly [K in keyof Abi as T extends Abi[K]['targets'][number] ? K : never]: (
    ...args: ArgsOf<Abi[K]['params'], T>
  ) => Abi[K]['returns'] extends 'void' ? void : number;
};

/** The table's entries of one target, in table order, with that target's parameters. */
export function kernelsOf(target: Target): { name: string; params: readonly (readonly [string, ParamKind])[]; returns: ReturnKind }[] {
  return Object.entries(KERNEL_ABI as Record<string, KernelSpec>)
    .filter(([, spec]) => spec.targets.includes(target))
    .map(([name, spec]) => ({
      name,
      params: spec.params.filter((p) => p[2] === undefined || p[2] === target).map((p) => [p[0], p[1]] as const),
      returns: spec.returns,
    }));
}
