// A strict JSON parser (RFC 8259) that keeps what JSON.parse loses: key order, duplicate
// keys (an error, or the last kept as Python's json.loads does), and the exact text of
// numbers, so that 1.0, 1e-05 or 2^53 + 1 survive a read and write untouched. Lone
// surrogate escapes are rejected, as serde_json does. Used for safetensors headers,
// config.json and index files.
import { BnbError, BnbErrorCode } from '../errors.js';
import { JsonNumber } from './number.js';

export { JsonNumber };
export type JsonValue = null | boolean | string | number | JsonNumber | JsonValue[] | Map<string, JsonValue>;

export interface ParseJsonOptions {
  /** error code of a syntax error */
  code: BnbErrorCode;
  /** the message's subject, e.g. 'the header' or a path */
  what: string;
  /** what a valid document is, ending the message */
  expected: string;
  /** duplicate keys: an error (serde_json, safetensors) or the last one kept (Python) */
  duplicates?: 'error' | 'last';
  /** NaN, Infinity and -Infinity as numbers, as Python's json module writes them */
  python?: boolean;
  /**
   * Non-negative integers of at most 15 digits (exact as numbers) as plain numbers, not
   * JsonNumber: a header's millions of shape entries then cost no allocation each
   */
  integers?: boolean;
  /** called when the root object reaches more keys than this (a hostile size, stopped early) */
  maxRootKeys?: number;
  onTooManyKeys?: () => never;
  /**
   * Limits below the root, checked as the text is read (a hostile document is refused
   * before it costs its whole parse): the longest array, the most keys of one object,
   * the most values in all. onLimit throws; `path` holds the object keys down to the
   * value (the root's key first).
   */
  limits?: { arrayLength?: number; objectKeys?: number; values?: number };
  onLimit?: (what: 'arrayLength' | 'objectKeys' | 'values', path: readonly string[]) => never;
  /**
   * Called with each member of the root object as soon as it is parsed; returning true
   * consumes it (it is not kept in the root Map, so a large document is never held
   * whole). Duplicate keys are still detected.
   */
  rootMember?: (key: string, value: JsonValue) => boolean;
}

const MAX_DEPTH = 128; // serde_json's recursion limit
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const PY_SPECIAL = /NaN|Infinity|-Infinity/y;

export function parseJson(text: string, opts: ParseJsonOptions): JsonValue {
  let i = 0;
  const n = text.length;
  const maxRootKeys = opts.maxRootKeys ?? Infinity;
  const maxArray = opts.limits?.arrayLength ?? Infinity,
    maxKeys = opts.limits?.objectKeys ?? Infinity,
    maxValues = opts.limits?.values ?? Infinity;
  const limit = (what: 'arrayLength' | 'objectKeys' | 'values'): never => {
    if (opts.onLimit) opts.onLimit(what, path);
    return bad(
      `more than ${what === 'arrayLength' ? maxArray : what === 'objectKeys' ? maxKeys : maxValues} ${what === 'values' ? 'values' : what === 'objectKeys' ? 'keys in an object' : 'items in an array'}`,
    );
  };
  /** object keys from the root down to the value being read */
  const path: string[] = [];
  let values = 0;
  const consumed = new Set<string>(); // root keys handed to rootMember
  const bad = (what: string): never => {
    throw new BnbError(opts.code, `${opts.what} is not valid JSON: ${what} at character ${i} (expected ${opts.expected})`);
  };
  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const hex4 = (): number => {
    if (i + 4 > n) bad('truncated \\u escape');
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) bad(`bad \\u escape ${JSON.stringify(h)}`);
    i += 4;
    return parseInt(h, 16);
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    let from = i;
    for (;;) {
      if (i >= n) bad('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(from, i);
        i++;
        return out;
      }
      if (c < 0x20) bad('control character in a string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(from, i);
      i++;
      const e = text[i++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const u = hex4();
          if (u >= 0xd800 && u <= 0xdbff) {
            if (text[i] !== '\\' || text[i + 1] !== 'u') bad('lone surrogate in a \\u escape');
            i += 2;
            const v = hex4();
            if (v < 0xdc00 || v > 0xdfff) bad('lone surrogate in a \\u escape');
            out += String.fromCharCode(u, v);
          } else if (u >= 0xdc00 && u <= 0xdfff) {
            bad('lone surrogate in a \\u escape');
          } else {
            out += String.fromCharCode(u);
          }
          break;
        }
        default:
          i--;
          bad(`bad escape \\${e ?? ''}`);
      }
      from = i;
    }
  };
  const value = (depth: number): JsonValue => {
    ws();
    if (i >= n) bad('unexpected end');
    if (++values > maxValues) limit('values');
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      if (depth >= MAX_DEPTH) bad('nesting too deep');
      i++;
      ws();
      if (c === 0x7b) {
        const m = new Map<string, JsonValue>();
        if (text.charCodeAt(i) === 0x7d) {
          i++;
          return m;
        }
        for (;;) {
          ws();
          if (text.charCodeAt(i) !== 0x22) bad('expected a string key');
          const at = i;
          const k = string();
          ws();
          if (text.charCodeAt(i) !== 0x3a) bad("expected ':'");
          i++;
          path.push(k);
          const v = value(depth + 1);
          path.pop();
          if (m.has(k) || (depth === 0 && consumed.has(k))) {
            if (opts.duplicates !== 'last') {
              i = at;
              bad(`duplicate key ${JSON.stringify(k)}`);
            }
            // Python keeps the last value (at the first one's position)
          }
          if (depth === 0 && opts.rootMember?.(k, v)) {
            consumed.add(k);
            m.delete(k);
          } else m.set(k, v);
          // stop early: a hostile document must not cost the parse of all its entries
          if (depth === 0 && m.size + consumed.size > maxRootKeys) opts.onTooManyKeys?.();
          if (depth > 0 && m.size > maxKeys) limit('objectKeys');
          ws();
          const d = text.charCodeAt(i);
          i++;
          if (d === 0x7d) return m;
          if (d !== 0x2c) {
            i--;
            bad("expected ',' or '}'");
          }
        }
      }
      const a: JsonValue[] = [];
      if (text.charCodeAt(i) === 0x5d) {
        i++;
        return a;
      }
      for (;;) {
        if (a.length >= maxArray) limit('arrayLength');
        a.push(value(depth + 1));
        ws();
        const d = text.charCodeAt(i);
        i++;
        if (d === 0x5d) return a;
        if (d !== 0x2c) {
          i--;
          bad("expected ',' or ']'");
        }
      }
    }
    if (c === 0x22) return string();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    const re = opts.python && (c === 0x4e || c === 0x49 || text.startsWith('-I', i)) ? PY_SPECIAL : NUMBER;
    re.lastIndex = i;
    const m = re.exec(text);
    if (m === null) bad(`unexpected ${JSON.stringify(text[i])}`);
    const lexeme = m![0];
    i += lexeme.length;
    if (opts.integers && lexeme.length <= 15 && isDigits(lexeme)) return +lexeme;
    return new JsonNumber(lexeme);
  };
  const v = value(0);
  ws();
  if (i < n) bad('trailing characters after the JSON value');
  return v;
}

/**
 * `text` as Python's json.loads reads it: NaN, Infinity and -Infinity are numbers, the
 * last of duplicate keys wins. Numbers come back as JsonNumber instances, so that no
 * string of the document, whatever it holds, can turn into a number.
 */
export function pyLoads(text: string, code: BnbErrorCode, what: string, expected: string): JsonValue {
  return parseJson(text, { code, what, expected, duplicates: 'last', python: true });
}

/** A lexeme of decimal digits without a leading zero (or "0"). */
function isDigits(t: string): boolean {
  if (t.length > 1 && t.charCodeAt(0) === 0x30) return false;
  for (let k = 0; k < t.length; k++) {
    const c = t.charCodeAt(k);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** A parsed JSON value as plain JavaScript (numbers as Number; NaN and Infinity as such). */
export function toPlain(v: JsonValue): unknown {
  if (v instanceof JsonNumber) return Number(v.text === 'NaN' ? NaN : v.text);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, toPlain(x)]));
  if (Array.isArray(v)) return v.map(toPlain);
  return v;
}

/** A JSON value rendered for a message (short). */
export function showJson(v: JsonValue | undefined): string {
  if (v === undefined) return 'missing';
  if (typeof v === 'number') return String(v);
  if (v instanceof JsonNumber) return v.text;
  if (v instanceof Map) return 'an object';
  if (Array.isArray(v)) {
    const s = `[${v.map(showJson).join(', ')}]`;
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  }
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}..."` : s;
}
