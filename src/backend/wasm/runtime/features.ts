// What the WebAssembly engine accepts, asked with the smallest module using each
// feature: a v128 result (SIMD), i8x16.relaxed_swizzle (relaxed SIMD), a shared
// memory (threads).
const SIMD = [0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11];
const RELAXED = [
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 0, 253, 15, 65, 0, 253, 15, 253, 128, 2, 11,
];
const THREADS = [0, 97, 115, 109, 1, 0, 0, 0, 5, 4, 1, 3, 1, 1];

function validates(bytes: number[]): boolean {
  try {
    return WebAssembly.validate(new Uint8Array(bytes));
  } catch {
    return false;
  }
}

export interface WasmFeatures {
  simd: boolean;
  relaxedSimd: boolean;
  threads: boolean;
}

let cached: WasmFeatures | null = null;

export function wasmFeatures(): WasmFeatures {
  cached ??= { simd: validates(SIMD), relaxedSimd: validates(RELAXED), threads: validates(THREADS) };
  return { ...cached };
}

/** Asks the engine again (after a Node 20 flag turned relaxed SIMD on). */
export function forgetWasmFeatures(): void {
  cached = null;
}
