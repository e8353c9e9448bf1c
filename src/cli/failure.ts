// What the CLI reports when a command fails: an E_* code, one line saying what failed
// and why, and the exit status. Bad input is the library's BnbError; a system error
// that reached the top unwrapped is E_IO with the user's paths and the system's reason;
// anything else is a bug, E_INTERNAL, whose stack is shown only when BNBJS_DEBUG asks.
import { BnbError, show } from '../errors.js';
import { systemReason } from '../io/files.js';
import { envVar } from '../runtime/env.js';
import { UsageError } from './usage.js';

export interface Failure {
  code: string;
  /** one line (printed escaped) */
  message: string;
  /** the command whose usage line follows the message (null: the whole help; undefined: none) */
  usage?: string | null;
  /** 1: the input could not be read or converted (or a bug), 2: usage error, 3: the output exists */
  exit: 1 | 2 | 3;
  /** the thrown value's stack, only with BNBJS_DEBUG set */
  stack: string | null;
}

/** What failed: the command and the paths the user gave it. */
export interface FailureContext {
  command: string | undefined;
  paths: readonly string[];
}

/** BNBJS_DEBUG set (and not empty or 0): internal errors print their stack. */
export function debugging(): boolean {
  const v = envVar('BNBJS_DEBUG');
  return v !== undefined && v !== '' && v !== '0';
}

/** A property of a thrown value that may be hostile (a getter or a proxy that throws). */
function property(e: unknown, key: string): unknown {
  try {
    return e !== null && (typeof e === 'object' || typeof e === 'function') ? (e as Record<string, unknown>)[key] : undefined;
  } catch {
    return undefined;
  }
}

function text(v: unknown): string {
  try {
    return typeof v === 'string' ? v : String(v);
  } catch {
    return '(a value that cannot be shown)';
  }
}

function isSystemError(e: unknown): boolean {
  const code = property(e, 'code');
  return typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code) && typeof property(e, 'syscall') === 'string';
}

function classify(e: unknown, context: FailureContext): Omit<Failure, 'stack'> {
  if (e instanceof UsageError) return { code: 'E_USAGE', message: e.message, usage: e.command, exit: 2 };
  if (e instanceof BnbError) return { code: e.code, message: e.message, exit: e.code === 'E_EXISTS' ? 3 : 1 };
  if (isSystemError(e)) {
    const what = context.command === undefined ? 'run' : [context.command, ...context.paths.map(show)].join(' ');
    return { code: 'E_IO', message: `cannot ${what}: ${systemReason(e)}`, exit: 1 };
  }
  const message = e instanceof Error ? text(property(e, 'message')) : text(e);
  const hint = debugging() ? '' : ', with the stack BNBJS_DEBUG=1 prints';
  return { code: 'E_INTERNAL', message: `internal error: ${message} (please report it${hint}: see SECURITY.md)`, exit: 1 };
}

/** The report of a thrown value; never throws, whatever was thrown. */
export function failure(e: unknown, context: FailureContext): Failure {
  let f: Omit<Failure, 'stack'>;
  try {
    f = classify(e, context);
  } catch {
    f = { code: 'E_INTERNAL', message: 'internal error: a value that cannot be shown (please report it: see SECURITY.md)', exit: 1 };
  }
  const stack = debugging() ? property(e, 'stack') : undefined;
  return { ...f, stack: typeof stack === 'string' ? stack : null };
}
