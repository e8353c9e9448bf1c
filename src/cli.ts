#!/usr/bin/env node
// The bnbjs command line: inspect, dequantize and quantize Hugging Face checkpoints; demo.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { BnbError } from './errors.js';
import { BLOCKSIZES_4BIT } from './ops/validate.js';
import { QUANT_STORAGES } from './ops/quantize4bit.js';
import { DType, FloatDType } from './dtypes.js';
import './wasm/file-loader.js';
import './threads/node-host.js';
import { probe } from './backend/probe.js';
import './backend/cuda/register.js';
import { removeTemporariesSync } from './io/temp.js';
import { inspectCheckpoint } from './checkpoint/inspect.js';
import { dequantizeCheckpoint } from './checkpoint/dequantize.js';
import { CheckpointFormat, quantizeCheckpoint } from './checkpoint/quantize.js';
import { ConversionReport } from './checkpoint/common.js';
import { parseShardSize } from './checkpoint/shards.js';
import { COMMANDS, HELP, UsageError, nearest, parseArgsError } from './cli/usage.js';
import { bytesText, progressBar } from './cli/progress.js';
import { demoText, runDemo } from './cli/demo.js';

// Interrupted (Ctrl-C, kill, closed terminal): remove this run's temporary outputs
// before exiting, so that nothing but complete outputs remains. SIGKILL cannot be
// caught: its hidden temporary stays, and the next run for that output removes it.
for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
  process.on(signal, () => {
    removeTemporariesSync();
    process.exit(128 + number);
  });
}

const DTYPE_NAMES: Record<string, FloatDType> = {
  bf16: 'bfloat16', bfloat16: 'bfloat16', fp16: 'float16', f16: 'float16', float16: 'float16', fp32: 'float32', f32: 'float32', float32: 'float32',
};

/**
 * Text from a file (tensor names, paths, messages quoting them) as the terminal should
 * show it: control characters, C1 codes and bidirectional overrides escaped, so that a
 * hostile checkpoint cannot rewrite the screen or disguise a name.
 */
const printable = (text: string) =>
  text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

type Values = Record<string, string | boolean | undefined>;

function parse(command: string, args: string[]): { values: Values; pos: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options: COMMANDS[command]!.options, allowPositionals: true, strict: true });
    return { values: values as Values, pos: positionals };
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw parseArgsError(e as Error, command);
    throw e;
  }
}

function positionals(command: string, args: string[], count: number, names: string): string[] {
  if (args.length !== count) throw new UsageError(`expected ${names}, got ${args.length ? args.map((a) => JSON.stringify(a)).join(' ') : 'nothing'}`, command);
  return args;
}

function floatDType(command: string, option: string, v: string | boolean | undefined): FloatDType | undefined {
  if (v === undefined) return undefined;
  const d = DTYPE_NAMES[String(v)];
  if (!d) throw new UsageError(`${option} ${v}: expected bf16, fp16 or fp32`, command);
  return d;
}

function oneOf<T extends string | number>(command: string, option: string, v: T | undefined, accepted: readonly T[]): T | undefined {
  if (v !== undefined && !accepted.includes(v)) throw new UsageError(`${option} ${v}: expected one of ${accepted.join(', ')}`, command);
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
  const files = r.files.length > 1 ? `${r.files.length} shards and ${printable(r.file)}` : printable(r.file);
  console.log(`${verb} ${r.layers} layers, ${r.tensors} tensors: ${bytesText(r.bytesIn)} -> ${bytesText(r.bytesOut)} in ${r.seconds.toFixed(2)} s ` +
    `(${bytesText(r.bytesIn / r.seconds)}/s read) -> ${files}`);
}

async function inspect(values: Values, pos: string[]): Promise<void> {
  if (values.backends) {
    if (pos.length) throw new UsageError('inspect --backends takes no checkpoint', 'inspect');
    const p = probe();
    if (values.json) return void console.log(JSON.stringify(p, null, 2));
    console.log(`WebAssembly: ${p.wasm.build} build (SIMD ${p.wasm.simd ? 'yes' : 'no'}, relaxed SIMD ${p.wasm.relaxedSimd ? 'yes' : 'no'}, threads ${p.wasm.threads ? 'yes' : 'no'})`);
    console.log(p.cuda.available
      ? `CUDA: driver ${p.cuda.driverVersion}, runtime ${p.cuda.runtimeVersion}; ${p.cuda.devices.map((d) => `cuda:${d.index} ${d.name} sm_${d.major}${d.minor} ${(d.totalMemory / 2 ** 30).toFixed(0)} GiB`).join('; ')}`
      : `CUDA: unavailable (${p.cuda.reason})`);
    const h = p.hpu;
    console.log(`Gaudi (HPU): ${h.available ? `available (${h.devices.length ? h.devices.join(', ') : 'forced'})` : `unavailable (${h.reason})`}; ` +
      `software ${h.version ? `${h.version.major}.${h.version.minor}.${h.version.patch}` : 'unknown'} (${h.versionSource})` +
      `${h.swapNibbles ? ', nibble swap (< 1.22)' : ''}; kernels emulated on WebAssembly`);
    if (p.forced) console.log(`forced by BNBJS_BACKEND=${p.forced}`);
    return;
  }
  const [path] = positionals('inspect', pos, 1, '<checkpoint>');
  const s = await inspectCheckpoint(path!, { trustIndex: values['trust-index'] === true });
  if (values.json) return void console.log(JSON.stringify(s, null, 2));
  console.log(`${printable(s.path)}: ${s.format}, ${s.tensors} tensors, ${bytesText(s.bytes)} in ${s.files.length} file(s)`);
  if (s.quantizationConfig) console.log(`quantization_config: ${printable(JSON.stringify(s.quantizationConfig))}`);
  console.log(`${s.layers.length} quantized layers (dequantize converts these):`);
  for (const l of s.layers) {
    const detail = l.format === 'int8' ? 'LLM.int8 row-wise'
      : l.format === 'fp8' ? `float8_e4m3fn, ${l.blocksize}x${l.blocksize} scale tiles (weight_scale_inv)`
        : `blocksize ${l.blocksize}${l.nested ? ', nested' : ''}, storage ${l.storage}, -> ${l.dtype}`;
    console.log(`  ${printable(l.name)}  ${l.format}  [${l.shape.join(', ')}]  ${detail}  ${bytesText(l.bytes)}`);
  }
  console.log(`${s.other.length} other tensors (passed through):`);
  for (const t of s.other) console.log(`  ${printable(t.name)}  ${t.format}  [${t.shape.join(', ')}]  ${bytesText(t.bytes)}`);
}

async function version(): Promise<string> {
  return JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version;
}

async function run(command: string, rest: string[]): Promise<boolean> {
  const { values, pos } = parse(command, rest);
  const json = values.json === true;
  const progress = json ? undefined : progressBar(process.stderr, printable);
  if (command === 'inspect') await inspect(values, pos);
  else if (command === 'demo') {
    if (pos.length > 1) throw new UsageError(`expected at most one checkpoint, got ${pos.length}`, command);
    const r = await runDemo(pos[0]);
    console.log(json ? JSON.stringify(r, null, 2) : demoText(r, await version()));
  } else if (command === 'dequantize') {
    const [input, output] = positionals(command, pos, 2, '<in> <out>');
    const r = await dequantizeCheckpoint(input!, output!, {
      dtype: floatDType(command, '--dtype', values.dtype), maxShardSize: shardSize(command, values['max-shard-size']),
      allowEmpty: values['allow-empty'] === true, trustIndex: values['trust-index'] === true, force: values.force === true, onProgress: progress,
    });
    if (json) console.log(JSON.stringify(r, null, 2));
    else printReport('dequantized', r);
  } else if (command === 'quantize') {
    const [input, output] = positionals(command, pos, 2, '<in> <out>');
    if (values.format === undefined) throw new UsageError('quantize needs --format nf4|fp4|int8', command);
    const format = oneOf(command, '--format', values.format as CheckpointFormat, ['nf4', 'fp4', 'int8'])!;
    if (format === 'int8') {
      const given = ['blocksize', 'double-quant', 'storage'].filter((o) => values[o] !== undefined && values[o] !== false);
      if (given.length) throw new UsageError(`--format int8 takes no ${given.map((o) => `--${o}`).join(', ')}: LLM.int8 quantizes whole rows, unpacked (they apply to nf4 and fp4)`, command);
    }
    const blocksize = oneOf(command, '--blocksize', values.blocksize === undefined ? undefined : Number(values.blocksize), BLOCKSIZES_4BIT);
    const storage = oneOf(command, '--storage', values.storage as DType | undefined, QUANT_STORAGES);
    if (typeof values.skip === 'string') {
      try {
        new RegExp(values.skip);
      } catch (e) {
        throw new UsageError(`--skip ${values.skip}: not a regular expression (${(e as Error).message})`, command);
      }
    }
    const r = await quantizeCheckpoint(input!, output!, {
      format, doubleQuant: values['double-quant'] === true ? true : undefined, blocksize, storage, skip: values.skip as string | undefined,
      computeDType: floatDType(command, '--compute-dtype', values['compute-dtype']), maxShardSize: shardSize(command, values['max-shard-size']),
      trustIndex: values['trust-index'] === true, force: values.force === true, onProgress: progress,
    });
    if (json) console.log(JSON.stringify(r, null, 2));
    else printReport('quantized', r);
  } else return false;
  return true;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const json = argv.includes('--json');
  try {
    if (command === '--version' || command === '-v') {
      console.log(await version());
      return 0;
    }
    if (command === 'help' || command === '--help' || command === '-h') {
      console.log(HELP);
      return 0;
    }
    if (command === undefined) throw new UsageError('no command given', null);
    if (!(command in COMMANDS) || !(await run(command, rest))) {
      const guess = nearest(command, Object.keys(COMMANDS));
      throw new UsageError(`unknown command ${JSON.stringify(command)}${guess ? ` (did you mean ${guess}?)` : ''}`, null);
    }
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError) && !(e instanceof BnbError)) {
      // a bug, not bad input: say so (with the stack) in the same shape as other errors
      console.error((e as Error)?.stack ?? e);
      const message = `internal error: ${(e as Error)?.message ?? String(e)} (please report it: see SECURITY.md)`;
      if (json) console.log(JSON.stringify({ error: { code: 'E_INTERNAL', message } }));
      console.error(`bnbjs: ${printable(message)} [E_INTERNAL]`);
      return 1;
    }
    const usage = e instanceof UsageError;
    const code = usage ? 'E_USAGE' : (e as BnbError).code;
    if (json) console.log(JSON.stringify({ error: { code, message: e.message } }));
    const help = usage ? (e.command === null ? HELP : `usage: ${COMMANDS[e.command]!.usage}`) : '';
    console.error(`bnbjs: ${printable(e.message)} [${code}]${help ? `\n${help}` : ''}`);
    return usage ? 2 : code === 'E_EXISTS' ? 3 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
