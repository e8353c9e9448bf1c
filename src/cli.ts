#!/usr/bin/env node
// The bnbjs command line: inspect, dequantize and quantize Hugging Face checkpoints; demo.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { BLOCKSIZES_4BIT } from './ops/validate.js';
import { QUANT_STORAGES } from './ops/quantize4bit.js';
import { DType, FloatDType } from './dtypes.js';
import './backend/wasm/index.js';
import './backend/wasm/runtime/file-loader.js';
import './backend/wasm/threads/node-host.js';
import { probe } from './backend/probe.js';
import { wasmBuild } from './backend/wasm/runtime/instances.js';
import { numThreads } from './backend/wasm/threads/config.js';
import { threadStats } from './backend/wasm/threads/pool.js';
import './backend/cuda/index.js';
import { removeTemporariesSync } from './io/temp.js';
import { inspectCheckpoint } from './checkpoint/inspect.js';
import { dequantizeCheckpoint } from './checkpoint/dequantize.js';
import { CheckpointFormat, quantizeCheckpoint } from './checkpoint/quantize.js';
import { ConversionReport } from './checkpoint/common.js';
import { parseShardSize } from './io/safetensors/sharded-sink.js';
import { COMMANDS, HELP, UsageError, nearest, parseArgsError } from './cli/usage.js';
import { bytesText } from './cli/progress.js';
import { demoText, runDemo } from './cli/demo.js';
import { output } from './cli/output.js';
import { FailureContext, failure } from './cli/failure.js';

// Interrupted (Ctrl-C, kill, closed terminal): remove this run's temporary outputs
// before exiting, so that nothing but complete outputs remains. A handler never runs
// between the two renames that replace an output folder (they are synchronous, see
// src/io/swap.ts): after them it removes the old output, before them the new one.
// SIGKILL cannot be caught: its hidden temporary (or old output moved aside) stays, and
// the next run for that output removes it (or puts the old output back).
for (const [signal, number] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
  ['SIGHUP', 1],
] as const) {
  process.on(signal, () => {
    removeTemporariesSync();
    process.exit(128 + number);
  });
}

// A failure outside the command's own promise (a stray rejection, a throw from a callback)
// is reported like any other: one escaped line, no stack unless BNBJS_DEBUG asks.
const context: FailureContext = { command: undefined, paths: [] };
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (e: unknown) => {
    removeTemporariesSync();
    report(e, process.argv.includes('--json'));
    process.exit(1);
  });
}
// Node's own warnings (when not turned off) go through the same escaping as everything else.
if (process.listenerCount('warning') > 0) {
  process.removeAllListeners('warning');
  process.on('warning', (w) => output.error(`bnbjs: warning: ${w.name}: ${w.message}`));
}

// A Map, not an object: an option value such as "constructor" or "toString" must not
// find Object.prototype's members.
const DTYPE_NAMES = new Map<string, FloatDType>([
  ['bf16', 'bfloat16'],
  ['bfloat16', 'bfloat16'],
  ['fp16', 'float16'],
  ['f16', 'float16'],
  ['float16', 'float16'],
  ['fp32', 'float32'],
  ['f32', 'float32'],
  ['float32', 'float32'],
]);

type Values = Record<string, string | boolean | undefined>;

function parse(command: string, args: string[]): { values: Values; pos: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options: COMMANDS.get(command)!.options, allowPositionals: true, strict: true });
    return { values: values as Values, pos: positionals };
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw parseArgsError(e as Error, command);
    throw e;
  }
}

function positionals(command: string, args: string[], count: number, names: string): string[] {
  if (args.length !== count)
    throw new UsageError(`expected ${names}, got ${args.length ? args.map((a) => JSON.stringify(a)).join(' ') : 'nothing'}`, command);
  return args;
}

function floatDType(command: string, option: string, v: string | boolean | undefined): FloatDType | undefined {
  if (v === undefined) return undefined;
  const d = DTYPE_NAMES.get(String(v));
  if (d === undefined)
    throw new UsageError(`${option} ${v}: expected bf16, fp16 or fp32 (or bfloat16, float16, float32, f16, f32)`, command);
  return d;
}

function oneOf<T extends string | number>(
  command: string,
  option: string,
  v: T | undefined,
  accepted: readonly T[],
  given: unknown = v,
): T | undefined {
  if (v !== undefined && !accepted.includes(v)) throw new UsageError(`${option} ${given}: expected one of ${accepted.join(', ')}`, command);
  return v;
}

function shardSize(command: string, v: string | boolean | undefined): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseShardSize(String(v));
  } catch {
    throw new UsageError(`--max-shard-size ${v}: expected bytes or a size such as 5GB, 500MB or 2GiB`, command);
  }
}

function printReport(verb: string, r: ConversionReport): void {
  const files = r.files.length > 1 ? `${r.files.length} shards and ${r.file}` : r.file;
  output.print(
    `${verb} ${r.layers} layers, ${r.tensors} tensors: ${bytesText(r.bytesIn)} -> ${bytesText(r.bytesOut)} in ${r.seconds.toFixed(2)} s ` +
      `(${bytesText(r.bytesIn / r.seconds)}/s read) -> ${files}`,
  );
}

async function inspect(values: Values, pos: string[]): Promise<void> {
  if (values.backends) {
    if (pos.length) throw new UsageError('inspect --backends takes no checkpoint', 'inspect');
    const p = probe();
    if (values.json) return output.json(p);
    output.print(
      `WebAssembly: ${p.wasm.build} build (SIMD ${p.wasm.simd ? 'yes' : 'no'}, relaxed SIMD ${p.wasm.relaxedSimd ? 'yes' : 'no'}, threads ${p.wasm.threads ? 'yes' : 'no'})`,
    );
    output.print(
      p.cuda.available
        ? `CUDA: driver ${p.cuda.driverVersion}, runtime ${p.cuda.runtimeVersion}; ${p.cuda.devices.map((d) => `cuda:${d.index} ${d.name} sm_${d.major}${d.minor} ${(d.totalMemory / 2 ** 30).toFixed(0)} GiB`).join('; ')}`
        : `CUDA: unavailable (${p.cuda.reason})`,
    );
    const h = p.hpu;
    output.print(
      `Gaudi (HPU): ${h.available ? `available (${h.devices.length ? h.devices.join(', ') : 'forced'})` : `unavailable (${h.reason})`}; ` +
        `software ${h.version ? `${h.version.major}.${h.version.minor}.${h.version.patch}` : 'unknown'} (${h.versionSource})` +
        `${h.swapNibbles ? ', nibble swap (< 1.22)' : ''}; kernels emulated on WebAssembly`,
    );
    if (p.forced) output.print(`forced by BNBJS_BACKEND=${p.forced}`);
    return;
  }
  const [path] = positionals('inspect', pos, 1, '<checkpoint>');
  const s = await inspectCheckpoint(path!, { trustIndex: values['trust-index'] === true });
  if (values.json) return output.json(s);
  output.print(`${s.path}: ${s.format}, ${s.tensors} tensors, ${bytesText(s.bytes)} in ${s.files.length} file(s)`);
  if (s.quantizationConfig) output.print(`quantization_config: ${JSON.stringify(s.quantizationConfig)}`);
  output.print(`${s.layers.length} quantized layers (dequantize converts these):`);
  for (const l of s.layers) {
    const detail =
      l.format === 'int8'
        ? 'LLM.int8 row-wise'
        : l.format === 'fp8'
          ? `float8_e4m3fn, ${l.blocksize}x${l.blocksize} scale tiles (weight_scale_inv)`
          : `blocksize ${l.blocksize}${l.nested ? ', nested' : ''}, storage ${l.storage}, -> ${l.dtype}`;
    output.print(`  ${l.name}  ${l.format}  [${l.shape.join(', ')}]  ${detail}  ${bytesText(l.bytes)}`);
  }
  output.print(`${s.other.length} other tensors (passed through):`);
  for (const t of s.other) output.print(`  ${t.name}  ${t.format}  [${t.shape.join(', ')}]  ${bytesText(t.bytes)}`);
}

async function version(): Promise<string> {
  return JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version;
}

async function run(command: string, rest: string[]): Promise<boolean> {
  const { values, pos } = parse(command, rest);
  context.command = command;
  context.paths = pos;
  const json = values.json === true;
  const progress = json ? undefined : output.progress();
  if (command === 'inspect') await inspect(values, pos);
  else if (command === 'demo') {
    if (pos.length > 1) throw new UsageError(`expected at most one checkpoint, got ${pos.length}`, command);
    const r = await runDemo({ wasmBuild, numThreads, threadStats }, pos[0]);
    if (json) output.json(r);
    else output.print(...demoText(r, await version()).split('\n'));
  } else if (command === 'dequantize') {
    const [input, out] = positionals(command, pos, 2, '<in> <out>');
    const r = await dequantizeCheckpoint(input!, out!, {
      dtype: floatDType(command, '--dtype', values.dtype),
      maxShardSize: shardSize(command, values['max-shard-size']),
      allowEmpty: values['allow-empty'] === true,
      trustIndex: values['trust-index'] === true,
      force: values.force === true,
      onProgress: progress,
    });
    if (json) output.json(r);
    else printReport('dequantized', r);
  } else if (command === 'quantize') {
    const [input, out] = positionals(command, pos, 2, '<in> <out>');
    if (values.format === undefined) throw new UsageError('quantize needs --format nf4|fp4|int8', command);
    const format = oneOf(command, '--format', values.format as CheckpointFormat, ['nf4', 'fp4', 'int8'])!;
    if (format === 'int8') {
      const given = ['blocksize', 'double-quant', 'storage'].filter((o) => values[o] !== undefined && values[o] !== false);
      if (given.length)
        throw new UsageError(
          `--format int8 takes no ${given.map((o) => `--${o}`).join(', ')}: LLM.int8 quantizes whole rows, unpacked (they apply to nf4 and fp4)`,
          command,
        );
    }
    const blocksize = oneOf(
      command,
      '--blocksize',
      values.blocksize === undefined ? undefined : Number(values.blocksize),
      BLOCKSIZES_4BIT,
      values.blocksize,
    );
    const storage = oneOf(command, '--storage', values.storage as DType | undefined, QUANT_STORAGES);
    if (typeof values.skip === 'string') {
      try {
        new RegExp(values.skip);
      } catch (e) {
        throw new UsageError(`--skip ${values.skip}: not a regular expression (${(e as Error).message})`, command);
      }
    }
    const r = await quantizeCheckpoint(input!, out!, {
      format,
      doubleQuant: values['double-quant'] === true ? true : undefined,
      blocksize,
      storage,
      skip: values.skip as string | undefined,
      computeDType: floatDType(command, '--compute-dtype', values['compute-dtype']),
      maxShardSize: shardSize(command, values['max-shard-size']),
      trustIndex: values['trust-index'] === true,
      force: values.force === true,
      onProgress: progress,
    });
    if (json) output.json(r);
    else printReport('quantized', r);
  } else return false;
  return true;
}

/** Prints the failure `e` (one escaped line on stderr; with --json also as JSON on stdout) and returns the exit status. */
function report(e: unknown, json: boolean): number {
  const f = failure(e, context);
  if (json) output.json({ error: { code: f.code, message: f.message } });
  output.error(`bnbjs: ${f.message} [${f.code}]`);
  if (f.usage !== undefined) output.error(...(f.usage === null ? HELP : `usage: ${COMMANDS.get(f.usage)!.usage}`).split('\n'));
  if (f.stack !== null) output.error(...f.stack.split('\n'));
  return f.exit;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const json = argv.includes('--json');
  try {
    if (command === '--version' || command === '-v') {
      output.print(await version());
      return 0;
    }
    if (command === 'help' || command === '--help' || command === '-h') {
      output.print(...HELP.split('\n'));
      return 0;
    }
    if (command === undefined) throw new UsageError('no command given', null);
    if (!COMMANDS.has(command) || !(await run(command, rest))) {
      const guess = nearest(command, [...COMMANDS.keys()]);
      throw new UsageError(`unknown command ${JSON.stringify(command)}${guess ? ` (did you mean ${guess}?)` : ''}`, null);
    }
    return 0;
  } catch (e) {
    return report(e, json);
  }
}

process.exitCode = await main(process.argv.slice(2));
