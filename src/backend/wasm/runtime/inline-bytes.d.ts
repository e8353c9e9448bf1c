// Generated at build time by scripts/inline-wasm.mjs as dist/backend/wasm/runtime/inline-bytes.js:
// build/bnb.{simd,relaxed,scalar,simd-mt}.wasm in base64.
export declare const simd: string;
export declare const relaxed: string;
export declare const scalar: string;
export declare const simdMt: string;
