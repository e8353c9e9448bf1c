// Byte-exact emulation of Python's json.dumps (ensure_ascii, float repr; the default
// separators, or indent=N with sort_keys as transformers writes config.json) for the
// values bitsandbytes and transformers serialise.
import { JsonNumber } from './number.js';

/** Marks a number that Python holds as a float (printed with repr, e.g. `64.0`, `1e-05`). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export { JsonNumber };

export type PyJson = string | number | boolean | null | PyFloat | JsonNumber | PyJson[] | { [key: string]: PyJson } | Map<string, PyJson>;

export interface DumpsOptions {
  /** json.dumps(indent=N): one item per line, N more spaces per level, separators ',' and ': ' */
  indent?: number;
  /** json.dumps(sort_keys=True): keys in code point order */
  sortKeys?: boolean;
}

/** Python's repr(float): shortest round-trip digits, exponent form when exp < -4 or >= 16. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // toExponential() without an argument gives the shortest round-trip digits.
  const [mant, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || '0'}`;
}

/** Python's ordering of str keys: by code point (not UTF-16 unit, which differs above U+FFFF). */
function byCodePoint(a: string, b: string): number {
  const x = [...a],
    y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

export function pyString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || c > 0x7e) {
      // ensure_ascii: \uXXXX, astral characters as a surrogate pair
      for (let i = 0; i < ch.length; i++) out += '\\u' + ch.charCodeAt(i).toString(16).padStart(4, '0');
    } else out += ch;
  }
  return out + '"';
}

export function pyJsonDumps(v: PyJson, opts: DumpsOptions = {}): string {
  const { indent, sortKeys = false } = opts;
  const write = (x: PyJson, level: number): string => {
    if (x === null) return 'null';
    if (x === true) return 'true';
    if (x === false) return 'false';
    if (x instanceof PyFloat) return pyFloatRepr(x.value);
    if (x instanceof JsonNumber) return x.text;
    if (typeof x === 'number') {
      if (!Number.isSafeInteger(x)) throw new TypeError(`pyJsonDumps: ${x} is not an integer; wrap floats in PyFloat`);
      return String(x);
    }
    if (typeof x === 'string') return pyString(x);
    const items: [string | null, PyJson][] = Array.isArray(x) ? x.map((e) => [null, e]) : [...(x instanceof Map ? x : Object.entries(x))];
    if (sortKeys && !Array.isArray(x)) items.sort((a, b) => byCodePoint(a[0]!, b[0]!));
    const [open, close] = Array.isArray(x) ? ['[', ']'] : ['{', '}'];
    if (items.length === 0) return open + close;
    const parts = items.map(([k, e]) => (k === null ? '' : `${pyString(k)}: `) + write(e, level + 1));
    if (indent === undefined) return `${open}${parts.join(', ')}${close}`;
    const pad = '\n' + ' '.repeat(indent * (level + 1));
    return `${open}${pad}${parts.join(`,${pad}`)}\n${' '.repeat(indent * level)}${close}`;
  };
  return write(v, 0);
}
