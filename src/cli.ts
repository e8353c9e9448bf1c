#!/usr/bin/env node
// The bnbjs command line: inspect, dequantize and quantize Hugging Face checkpoints; demo.
import { parseArgs } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BnbError } from './errors.js';
import { BLOCKSIZES_4BIT } from './ops/validate.js';
import { QUANT_STORAGES } from './ops/quantize4bit.js';
import { DType, FloatDType } from './dtypes.js';
import { toFloat32 } from './tensor.js';
import { wasmBuild } from './wasm/runtime.js';
import './wasm/file-loader.js';
import { probe } from './backend/probe.js';
import './backend/cuda/register.js';
import { openCheckpoint } from './io/safetensors-file.js';
import { removeTemporariesSync } from './io/temp.js';
import { inspectCheckpoint } from './checkpoint/inspect.js';
import { dequantizeCheckpoint } from './checkpoint/dequantize.js';
import { CheckpointFormat, quantizeCheckpoint } from './checkpoint/quantize.js';
import { ConversionReport, Progress } from './checkpoint/common.js';

const USAGE = `Usage: bnbjs <command> [options]

Commands:
  inspect <checkpoint>                  layers, formats, sizes and quant types
  inspect --backends                    WebAssembly features, the CUDA addon and its GPUs
  dequantize <in> <out> [--dtype bf16|fp16|fp32]
                                        bitsandbytes layers -> 16/32-bit weights
  quantize <in> <out> --format nf4|fp4|int8 [--double-quant] [--blocksize N]
           [--storage uint8|float16|bfloat16|float32] [--skip REGEX] [--compute-dtype bf16|fp16|fp32]
                                        what transformers + bitsandbytes save_pretrained writes
  demo [<checkpoint>]                   quantize a model (default: the bundled tiny Llama) to NF4
                                        with double quant and back; print the error and the speed
  help                                  this text

A checkpoint is a .safetensors file or a Hugging Face model folder (sharded or not).
Options: --json (machine-readable output), --force (replace an existing output), --version.
Exit codes: 0 done, 1 the input could not be read or converted, 2 usage error, 3 output exists.`;

class UsageError extends Error {}

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

function floatDType(option: string, v: string | undefined): FloatDType | undefined {
  if (v === undefined) return undefined;
  const d = DTYPE_NAMES[v];
  if (!d) throw new UsageError(`${option} ${v}: expected bf16, fp16 or fp32`);
  return d;
}

function oneOf<T extends string | number>(option: string, v: T | undefined, accepted: readonly T[]): T | undefined {
  if (v !== undefined && !accepted.includes(v)) throw new UsageError(`${option} ${v}: expected one of ${accepted.join(', ')}`);
  return v;
}

function positionals(args: string[], count: number, names: string): string[] {
  if (args.length !== count) throw new UsageError(`expected ${names}, got ${args.length ? args.join(' ') : 'nothing'}`);
  return args;
}

function progressBar(enabled: boolean): Progress | undefined {
  if (!enabled) return undefined;
  return (done, total, name) => {
    const width = 30, filled = Math.round((done / total) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${name.slice(-40).padEnd(40)}`);
    if (done === total) process.stderr.write('\n');
  };
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/**
 * Text from a file (tensor names, paths, messages quoting them) as the terminal should
 * show it: control characters, C1 codes and bidirectional overrides escaped, so that a
 * hostile checkpoint cannot rewrite the screen or disguise a name.
 */
const printable = (text: string) =>
  text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function printReport(verb: string, r: ConversionReport, showFile = true): void {
  console.log(`${verb} ${r.layers} layers, ${r.tensors} tensors: ${mb(r.bytesIn)} -> ${mb(r.bytesOut)} in ${r.seconds.toFixed(2)} s ` +
    `(${(r.bytesIn / 2 ** 20 / r.seconds).toFixed(1)} MB/s read)${showFile ? ` -> ${printable(r.file)}` : ''}`);
}

async function inspect(args: string[], json: boolean): Promise<void> {
  const [path] = positionals(args, 1, '<checkpoint>');
  const s = await inspectCheckpoint(path!);
  if (json) return void console.log(JSON.stringify(s, null, 2));
  console.log(`${printable(s.path)}: ${s.tensors} tensors, ${mb(s.bytes)} in ${s.files.length} file(s)`);
  if (s.quantizationConfig) console.log(`quantization_config: ${printable(JSON.stringify(s.quantizationConfig))}`);
  console.log(`${s.layers.length} bitsandbytes layers (dequantize converts these):`);
  for (const l of s.layers) {
    const detail = l.format === 'int8' ? 'LLM.int8 row-wise' : `blocksize ${l.blocksize}${l.nested ? ', nested' : ''}, storage ${l.storage}, -> ${l.dtype}`;
    console.log(`  ${printable(l.name)}  ${l.format}  [${l.shape.join(', ')}]  ${detail}  ${mb(l.bytes)}`);
  }
  console.log(`${s.other.length} other tensors (passed through):`);
  for (const t of s.other) console.log(`  ${printable(t.name)}  ${t.format}  [${t.shape.join(', ')}]  ${mb(t.bytes)}`);
}

/** Mean |a - b| and mean |a - b| / (|a| + 1e-8) over the quantized layers of two checkpoints. */
async function compare(original: string, roundTrip: string): Promise<{ layers: number; err: number; relerr: number }> {
  const a = await openCheckpoint(original), b = await openCheckpoint(roundTrip);
  try {
    let err = 0, rel = 0, count = 0, layers = 0;
    for (const name of b.names()) {
      const x = await a.read(name), y = await b.read(name);
      if (name.endsWith('.weight') && x.shape.length === 2 && x.data.byteLength === y.data.byteLength && !Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).equals(Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength))) {
        const p = toFloat32(x as never), q = toFloat32(y as never);
        for (let i = 0; i < p.length; i++) {
          const d = Math.abs(p[i]! - q[i]!);
          err += d;
          rel += d / (Math.abs(p[i]!) + 1e-8);
        }
        count += p.length;
        layers++;
      }
    }
    return { layers, err: err / count, relerr: rel / count };
  } finally {
    await a.close();
    await b.close();
  }
}

async function demo(args: string[], json: boolean): Promise<void> {
  const bundled = fileURLToPath(new URL('../models/tiny-llama-bf16/', import.meta.url));
  const input = args[0] ?? bundled;
  if (args.length > 1) throw new UsageError(`expected at most one checkpoint, got ${args.join(' ')}`);
  const dir = await mkdtemp(join(tmpdir(), 'bnbjs-demo-'));
  try {
    const q = await quantizeCheckpoint(input, join(dir, 'nf4'), { format: 'nf4', doubleQuant: true });
    const d = await dequantizeCheckpoint(join(dir, 'nf4'), join(dir, 'bf16'));
    const cmp = await compare(input, join(dir, 'bf16'));
    const result = { input, wasm: wasmBuild(), quantize: q, dequantize: d, quantizedLayers: q.layers, error: cmp };
    if (json) return void console.log(JSON.stringify(result, null, 2));
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    console.log(`bnbjs ${pkg.version} demo: ${input} -> NF4 with double quant -> bf16 (WebAssembly ${wasmBuild()}, 1 thread)`);
    printReport('quantize  ', q, false);
    printReport('dequantize', d, false);
    console.log(`round trip over ${cmp.layers} layers: mean |W - W'| ${cmp.err.toExponential(3)}, mean relative error ${cmp.relerr.toFixed(4)} ` +
      `(bitsandbytes' nf4 blocksize-64 bar: 0.2057)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  let json = false;
  try {
    if (command === '--version' || command === '-v') {
      console.log(JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version);
      return 0;
    }
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      console.log(USAGE);
      return 0;
    }
    const common = { json: { type: 'boolean' as const, default: false }, force: { type: 'boolean' as const, default: false } };
    if (command === 'inspect' || command === 'demo') {
      const { values, positionals: pos } = parseArgs({
        args: rest, options: { ...common, backends: { type: 'boolean', default: false } }, allowPositionals: true,
      });
      json = values.json!;
      if (command === 'inspect' && values.backends) {
        if (pos.length) throw new UsageError('inspect --backends takes no checkpoint');
        const p = probe();
        if (json) console.log(JSON.stringify(p, null, 2));
        else {
          console.log(`WebAssembly: ${p.wasm.build} build (SIMD ${p.wasm.simd ? 'yes' : 'no'}, relaxed SIMD ${p.wasm.relaxedSimd ? 'yes' : 'no'}, threads ${p.wasm.threads ? 'yes' : 'no'})`);
          console.log(p.cuda.available
            ? `CUDA: driver ${p.cuda.driverVersion}, runtime ${p.cuda.runtimeVersion}; ${p.cuda.devices.map((d) => `cuda:${d.index} ${d.name} sm_${d.major}${d.minor} ${(d.totalMemory / 2 ** 30).toFixed(0)} GiB`).join('; ')}`
            : `CUDA: unavailable (${p.cuda.reason})`);
          const h = p.hpu;
          console.log(`Gaudi (HPU): ${h.available ? `available (${h.devices.length ? h.devices.join(', ') : 'forced'})` : `unavailable (${h.reason})`}; ` +
            `software ${h.version ? `${h.version.major}.${h.version.minor}.${h.version.patch}` : 'unknown'} (${h.versionSource})` +
            `${h.swapNibbles ? ', nibble swap (< 1.22)' : ''}; kernels emulated on WebAssembly`);
          if (p.forced) console.log(`forced by BNBJS_BACKEND=${p.forced}`);
        }
        return 0;
      }
      await (command === 'inspect' ? inspect(pos, json) : demo(pos, json));
      return 0;
    }
    if (command === 'dequantize') {
      const { values, positionals: pos } = parseArgs({ args: rest, options: { ...common, dtype: { type: 'string' } }, allowPositionals: true });
      json = values.json!;
      const [input, output] = positionals(pos, 2, '<in> <out>');
      const r = await dequantizeCheckpoint(input!, output!, {
        dtype: floatDType('--dtype', values.dtype), force: values.force, onProgress: progressBar(!json && process.stderr.isTTY === true),
      });
      if (json) console.log(JSON.stringify(r, null, 2));
      else printReport('dequantized', r);
      return 0;
    }
    if (command === 'quantize') {
      const { values, positionals: pos } = parseArgs({
        args: rest, allowPositionals: true,
        options: {
          ...common, format: { type: 'string' }, 'double-quant': { type: 'boolean', default: false },
          blocksize: { type: 'string' }, storage: { type: 'string' }, skip: { type: 'string' }, 'compute-dtype': { type: 'string' },
        },
      });
      json = values.json!;
      const [input, output] = positionals(pos, 2, '<in> <out>');
      if (values.format === undefined) throw new UsageError('quantize needs --format nf4|fp4|int8');
      const format = oneOf('--format', values.format as CheckpointFormat, ['nf4', 'fp4', 'int8'])!;
      const blocksize = oneOf('--blocksize', values.blocksize === undefined ? undefined : Number(values.blocksize), BLOCKSIZES_4BIT);
      const storage = oneOf('--storage', values.storage as DType | undefined, QUANT_STORAGES);
      if (values.skip !== undefined) {
        try {
          new RegExp(values.skip);
        } catch (e) {
          throw new UsageError(`--skip ${values.skip}: not a regular expression (${(e as Error).message})`);
        }
      }
      const r = await quantizeCheckpoint(input!, output!, {
        format, doubleQuant: values['double-quant'], blocksize,
        storage, skip: values.skip, computeDType: floatDType('--compute-dtype', values['compute-dtype']),
        force: values.force, onProgress: progressBar(!json && process.stderr.isTTY === true),
      });
      if (json) console.log(JSON.stringify(r, null, 2));
      else printReport('quantized', r);
      return 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (e) {
    const usage = e instanceof UsageError || (e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'));
    if (!usage && !(e instanceof BnbError)) {
      // a bug, not bad input: say so (with the stack) in the same shape as other errors
      console.error((e as Error)?.stack ?? e);
      const message = `internal error: ${(e as Error)?.message ?? String(e)} (please report it: see SECURITY.md)`;
      if (json) console.log(JSON.stringify({ error: { code: 'E_INTERNAL', message } }));
      console.error(`bnbjs: ${printable(message)} [E_INTERNAL]`);
      return 1;
    }
    const code = e instanceof BnbError ? e.code : 'E_USAGE';
    const status = usage ? 2 : code === 'E_EXISTS' ? 3 : 1;
    if (json) console.log(JSON.stringify({ error: { code, message: (e as Error).message } }));
    console.error(`bnbjs: ${printable((e as Error).message)} [${code}]${usage ? `\n\n${USAGE}` : ''}`);
    return status;
  }
}

process.exitCode = await main(process.argv.slice(2));
