// Reading what callers pass: every value is read once, through reads that turn
// whatever a getter or a Proxy throws into a BnbError, and what is used afterwards
// is a plain copy (options, shapes) taken before it is checked, so that a value that
// changes between two reads cannot slip past a check.
import { BnbError, BnbErrorCode, fail } from './errors.js';

function messageOf(e: unknown): string {
  try {
    return String((e as Error)?.message ?? e);
  } catch {
    return 'an exception that cannot be shown';
  }
}

/** `read()`, with anything it throws other than a BnbError (a getter's or a Proxy trap's exception) as a BnbError naming `argument`. */
export function guard<T>(argument: string, read: () => T, code: BnbErrorCode = 'E_ARGUMENT'): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof BnbError) throw e;
    const err = new BnbError(
      code,
      `${argument} could not be read (${messageOf(e)}): expected plain data, not a getter or Proxy that throws`,
    );
    err.cause = e;
    throw err;
  }
}

/** True for a non-null object that is not an array (a Proxy's traps included, guarded). */
export function isPlainObject(argument: string, x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !guard(argument, () => Array.isArray(x));
}

/**
 * An options object, copied: its own enumerable keys must all be known (catching
 * typos such as `quant_type`), and each known key is read once. `undefined` is `{}`.
 */
export function readOptions(op: string, opts: unknown, known: readonly string[]): Record<string, unknown> {
  if (opts === undefined) return {};
  if (!isPlainObject(`${op} options`, opts)) fail('E_ARGUMENT', `${op} options`, opts, 'an options object');
  const keys = guard(`${op} options`, () => Object.keys(opts));
  for (const k of keys) {
    if (!known.includes(k)) fail('E_ARGUMENT', `${op} option ${k}`, k, `one of ${known.join(', ')}`);
  }
  return guard(`${op} options`, () => {
    const out: Record<string, unknown> = {};
    for (const k of known) out[k] = opts[k];
    return out;
  });
}

/**
 * A shape copied into a plain array, element by element (an Array subclass's own
 * every() or a Proxy is never asked whether it is valid): each entry a safe
 * non-negative integer. Anything else fails with `code`.
 */
export function readShape(
  argument: string,
  shape: unknown,
  code: BnbErrorCode = 'E_SHAPE',
  accepted = 'an array of non-negative integers',
): number[] {
  const copy = guard(
    argument,
    () => {
      if (!Array.isArray(shape)) return null;
      const n: unknown = shape.length;
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return null;
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const d: unknown = shape[i];
        if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return null;
        out.push(d);
      }
      return out;
    },
    code,
  );
  if (copy === null) fail(code, argument, shape, accepted);
  return copy;
}

/** A string argument (a path, a name), non-empty unless `empty`. */
export function readString(argument: string, x: unknown, accepted: string, empty = false): string {
  if (typeof x !== 'string' || (!empty && x.length === 0)) fail('E_ARGUMENT', argument, x, accepted);
  return x;
}

/** x instanceof C, false where asking throws (a Proxy whose getPrototypeOf trap throws). */
export function isInstance(x: unknown, C: abstract new (...a: never[]) => unknown): boolean {
  if ((typeof x !== 'object' && typeof x !== 'function') || x === null) return false;
  try {
    return x instanceof C;
  } catch {
    return false;
  }
}
