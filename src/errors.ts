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
  | 'E_OUT_OF_MEMORY'; // WebAssembly memory could not grow

/** The one error class bnbjs throws for bad input. */
export class BnbError extends Error {
  readonly code: BnbErrorCode;
  constructor(code: BnbErrorCode, message: string) {
    super(message);
    this.name = 'BnbError';
    this.code = code;
  }
}

/** Short, readable rendering of a value for error messages. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  if (value === null || value === undefined) return String(value);
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as Uint8Array).length})`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return String(value);
}

export function fail(code: BnbErrorCode, argument: string, value: unknown, accepted: string): never {
  throw new BnbError(code, `${argument} = ${show(value)} is not accepted: expected ${accepted}`);
}
