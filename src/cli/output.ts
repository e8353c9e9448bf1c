// The one way the CLI writes: every line it prints (tables, reports, progress, errors,
// warnings, JSON) passes through here, so that text from a file or an error (tensor
// names, quant_state fields, config.json values, file names, messages quoting them)
// cannot move the cursor, retitle the window, clear the screen or reorder a name.
import type { Progress } from '../checkpoint/common.js';
import { progressBar } from './progress.js';

/**
 * What is never written raw: C0 and C1 controls and DEL (Cc), format characters (Cf:
 * bidirectional embeddings, overrides, isolates and marks, zero-width spaces and
 * joiners, U+FEFF, invisible operators, tag characters), the line and paragraph
 * separators U+2028 and U+2029 (Zl, Zp), and unpaired surrogates (Cs).
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

const hex4 = (unit: number) => `\\u${unit.toString(16).padStart(4, '0')}`;

/** `text` as one terminal line: each unsafe character as \uXXXX (\u{XXXXX} above U+FFFF), newlines and tabs included. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const p = c.codePointAt(0)!;
    return p > 0xffff ? `\\u{${p.toString(16)}}` : hex4(p);
  });
}

/**
 * JSON.stringify(value, null, 2) with the characters it leaves raw (DEL, C1 controls,
 * format characters, U+2028/U+2029) \u-escaped as well: still valid JSON that parses
 * to the same strings, but inert on a terminal. Outside strings such text holds only
 * its own line breaks and spaces, which are kept.
 */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  return text.replace(UNSAFE, (c) => (c === '\n' ? c : Array.from({ length: c.length }, (_, i) => hex4(c.charCodeAt(i))).join('')));
}

export interface Stream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class Output {
  constructor(
    private readonly stdout: Stream,
    private readonly stderr: Stream,
  ) {}

  /** Lines on stdout, each escaped (the line breaks between them are the only ones written). */
  print(...lines: string[]): void {
    for (const l of lines) this.stdout.write(`${printable(l)}\n`);
  }

  /** Lines on stderr, each escaped. */
  error(...lines: string[]): void {
    for (const l of lines) this.stderr.write(`${printable(l)}\n`);
  }

  /** A value as JSON on stdout (see jsonText). */
  json(value: unknown): void {
    this.stdout.write(`${jsonText(value)}\n`);
  }

  /** The progress line on stderr where it is a terminal, escaped; undefined elsewhere. */
  progress(): Progress | undefined {
    return progressBar(this.stderr, printable);
  }
}

export const output = new Output(process.stdout, process.stderr);
