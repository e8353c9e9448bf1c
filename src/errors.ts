/** Stable machine-readable error codes. */
export type BnbErrorCode =
  | 'E_ARGUMENT' // an option or argument has a value outside what is accepted
  | 'E_DTYPE' // a tensor has a dtype the op does not accept
  | 'E_SHAPE' // a shape is malformed or does not match the data
  | 'E_BLOCKSIZE' // blocksize not in the accepted set
  | 'E_QUANT_TYPE' // quant type not 'nf4' / 'fp4'
  | 'E_NON_FINITE' // NaN or Inf in a quantize input (default policy)
  | 'E_STORAGE' // packed 4-bit bytes do not fit the requested storage dtype
  | 'E_STATE' // QuantState (or its dict form) missing or inconsistent fields
  | 'E_STATE_KEY' // unknown key in a QuantState dict
  | 'E_CODE' // code table has the wrong size or is not sorted
  | 'E_OUT_OF_MEMORY' // WebAssembly memory could not grow (or would pass setWasmMemoryLimit)
  | 'E_DETACHED' // a tensor's data is a view of a detached ArrayBuffer
  | 'E_INIT' // the WebAssembly kernels are not loaded, or init() got something it cannot load
  | 'E_DEVICE' // tensors on different devices, an unknown device, or host data of a device tensor
  | 'E_CUDA' // a CUDA call failed (the message carries CUDA's)
  | 'E_KERNEL' // a WebAssembly kernel trapped, on the calling thread or a worker (the engine's message follows)
  | 'E_CKPT_MISSING' // a checkpoint lacks a tensor its layout needs
  | 'E_CKPT_QUANT_STATE' // 4-bit items without their quant_state blob, or several blobs
  | 'E_CKPT_QUANT_TYPE' // a quant_state blob for a quant type other than nf4/fp4
  | 'E_CKPT_FORMAT' // a layer's tensors have the wrong dtype/shape/weight_format
  | 'E_ST_HEADER_TOO_SMALL' // safetensors: the file is shorter than 8 bytes
  | 'E_ST_HEADER_TOO_LARGE' // safetensors: the header length is over 100 MB
  | 'E_ST_HEADER_LENGTH' // safetensors: 8 + header length runs past the end of the file
  | 'E_ST_HEADER_UTF8' // safetensors: the header is not valid UTF-8
  | 'E_ST_HEADER_JSON' // safetensors: the header is not JSON, not an object, or has duplicate keys
  | 'E_ST_METADATA' // safetensors: __metadata__ is not a string-to-string map
  | 'E_ST_DTYPE' // safetensors: unknown dtype
  | 'E_ST_SHAPE' // safetensors: shape not an array of non-negative integers
  | 'E_ST_OFFSETS' // safetensors: data_offsets malformed, overlapping, not contiguous or out of bounds
  | 'E_ST_SIZE' // safetensors: byte length differs from dtype size x product(shape)
  | 'E_ST_INCOMPLETE' // safetensors: tensors do not cover the data section exactly (trailing bytes, truncated file)
  | 'E_ST_TENSOR_COUNT' // safetensors: more than MAX_TENSORS (2^20) tensors in one file
  | 'E_ST_MISSING' // safetensors: no tensor of that name
  | 'E_ST_INDEX' // safetensors: a sharded checkpoint's index.json is malformed or names a tensor its shard lacks
  | 'E_EXISTS' // the output exists and force was not given
  | 'E_IO'; // another file-system error (the OS message follows)

/** The one error class bnbjs throws for bad input. */
export class BnbError extends Error {
  readonly code: BnbErrorCode;
  constructor(code: BnbErrorCode, message: string) {
    super(message);
    this.name = 'BnbError';
    this.code = code;
  }
}

/** Short, readable rendering of a value for error messages (never throws: a Proxy or getter that throws is named as such). */
export function show(value: unknown): string {
  try {
    const s = render(value);
    return s.length > 200 ? `${s.slice(0, 197)}...` : s;
  } catch {
    return 'an object that throws when read';
  }
}

function render(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    const n = value.length;
    const head = Array.from({ length: Math.min(n, 8) }, (_, i) => render(value[i]));
    return `[${head.join(', ')}${n > 8 ? `, ... (${n} entries)` : ''}]`;
  }
  if (value === null || value === undefined) return String(value);
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as Uint8Array).length})`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  return String(value);
}

export function fail(code: BnbErrorCode, argument: string, value: unknown, accepted: string): never {
  throw new BnbError(code, `${argument} = ${show(value)} is not accepted: expected ${accepted}`);
}
