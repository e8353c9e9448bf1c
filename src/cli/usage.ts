// The commands, their options and their one-line usages; usage errors and the nearest
// option to a mistyped one.

export class UsageError extends Error {
  /** the command whose usage line follows the message (null: the whole help) */
  constructor(
    message: string,
    readonly command: string | null,
  ) {
    super(message);
  }
}

type Option = { type: 'boolean' | 'string'; default?: boolean };
const FLAGS: Record<string, Option> = { json: { type: 'boolean', default: false } };
const WRITE: Record<string, Option> = { force: { type: 'boolean', default: false }, 'max-shard-size': { type: 'string' } };
const READ: Record<string, Option> = { 'trust-index': { type: 'boolean', default: false } };

type Command = { usage: string; summary: string; options: Record<string, Option> };

// A Map: the command name is what the user typed, and "constructor" or "__proto__" must
// not find Object.prototype's members.
export const COMMANDS = new Map<string, Command>(
  Object.entries({
    inspect: {
      usage: 'bnbjs inspect <checkpoint> [--trust-index] [--json]   |   bnbjs inspect --backends [--json]',
      summary: 'layers, formats, sizes and quant types; --backends: WebAssembly features, the CUDA addon and its GPUs',
      options: { ...FLAGS, ...READ, backends: { type: 'boolean', default: false } },
    },
    dequantize: {
      usage:
        'bnbjs dequantize <in> <out> [--dtype bf16|fp16|fp32] [--max-shard-size SIZE] [--allow-empty] [--trust-index] [--force] [--json]',
      summary: 'bitsandbytes (4-bit, LLM.int8) and FP8 layers -> 16/32-bit weights',
      options: { ...FLAGS, ...READ, ...WRITE, dtype: { type: 'string' }, 'allow-empty': { type: 'boolean', default: false } },
    },
    quantize: {
      usage:
        'bnbjs quantize <in> <out> --format nf4|fp4|int8 [--double-quant] [--blocksize N] [--storage uint8|float16|bfloat16|float32] ' +
        '[--skip REGEX] [--compute-dtype bf16|fp16|fp32] [--max-shard-size SIZE] [--trust-index] [--force] [--json]',
      summary: 'what transformers + bitsandbytes save_pretrained writes (load_in_4bit, load_in_8bit)',
      options: {
        ...FLAGS,
        ...READ,
        ...WRITE,
        format: { type: 'string' },
        'double-quant': { type: 'boolean', default: false },
        blocksize: { type: 'string' },
        storage: { type: 'string' },
        skip: { type: 'string' },
        'compute-dtype': { type: 'string' },
      },
    },
    demo: {
      usage: 'bnbjs demo [<checkpoint>] [--json]',
      summary: 'quantize a model (default: the bundled tiny Llama) to NF4 with double quant and back; the error and the speed',
      options: { ...FLAGS },
    },
    help: { usage: 'bnbjs help', summary: 'this text', options: {} },
  } satisfies Record<string, Command>),
);

export const HELP = `Usage: bnbjs <command> [options]

${[...COMMANDS.values()].map((c) => `  ${c.usage}\n      ${c.summary}`).join('\n')}

A checkpoint is a .safetensors file, a model.safetensors.index.json, or a Hugging Face model folder
holding them (sharded or not). SIZE is bytes or e.g. 5GB, 500MB, 2GiB (transformers' max_shard_size;
default 50GB). --force replaces an existing output; --trust-index reads only the tensors a sharded
checkpoint's index lists (by default a shard tensor it omits is an error); --json prints machine-readable
results; --version.
Exit codes: 0 done, 1 the input could not be read or converted, 2 usage error, 3 output exists.`;

/** Levenshtein distance (small strings: option names). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

/** The candidate closest to `word` (ties: the first). */
export function nearest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null,
    d = Infinity;
  for (const c of candidates) {
    const e = distance(word, c);
    if (e < d) [best, d] = [c, e];
  }
  return best;
}

/** A node:util parseArgs error as a UsageError of `command`, suggesting the nearest option to an unknown one. */
export function parseArgsError(e: Error & { code?: string }, command: string): UsageError {
  const unknown = /Unknown option '(-{1,2}[^']*)'/.exec(e.message)?.[1];
  if (unknown !== undefined) {
    const names = Object.keys(COMMANDS.get(command)!.options).map((o) => `--${o}`);
    const guess = nearest(unknown.startsWith('--') ? unknown : `-${unknown}`, names);
    return new UsageError(`unknown option ${unknown}${guess ? ` (did you mean ${guess}?)` : ''}`, command);
  }
  return new UsageError(e.message.replace(/\. To specify a positional argument.*$/s, ''), command);
}
