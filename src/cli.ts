#!/usr/bin/env node
// The bnbjs command line. `bnbjs demo` quantizes a generated tensor and reports
// the error and the throughput.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { BnbError, fail } from './errors.js';
import { FLOAT_DTYPES, FloatDType } from './dtypes.js';
import { numberToBf16, numberToF16 } from './float16.js';
import { Tensor, tensor, toFloat32 } from './tensor.js';
import { QuantType, checkQuantType } from './maps.js';
import { quantize4bit } from './ops/quantize4bit.js';
import { dequantize4bit } from './ops/dequantize4bit.js';
import { wasmBuild } from './wasm/runtime.js';

const USAGE = `Usage: bnbjs <command> [options]

Commands:
  demo    quantize a generated normal tensor to 4 bits and back; print error and throughput
          --quant-type nf4|fp4       (default nf4)
          --blocksize N              (default 64)
          --dtype float32|float16|bfloat16  (default bfloat16)
          --shape RxC                (default 4096x4096)
          --compress-statistics      nested (double) quantization of absmax
  help    this text
Options: --version`;

function version(): string {
  return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
}

/** Deterministic standard-normal data (Box-Muller over a 32-bit LCG). */
function generate(n: number, dtype: FloatDType, shape: number[]): Tensor {
  let seed = 0x5eed;
  const u = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u())), t = 2 * Math.PI * u();
    x[i] = r * Math.cos(t);
    if (i + 1 < n) x[i + 1] = r * Math.sin(t);
  }
  if (dtype === 'float32') return tensor(x, shape);
  return tensor(Uint16Array.from(x, dtype === 'float16' ? numberToF16 : numberToBf16), shape, dtype);
}

function best(f: () => void, reps = 3): number {
  let ms = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

function demo(args: string[]): void {
  const { values } = parseArgs({
    args,
    options: {
      'quant-type': { type: 'string', default: 'nf4' },
      blocksize: { type: 'string', default: '64' },
      dtype: { type: 'string', default: 'bfloat16' },
      shape: { type: 'string', default: '4096x4096' },
      'compress-statistics': { type: 'boolean', default: false },
    },
  });
  const quantType: QuantType = checkQuantType('--quant-type', values['quant-type']);
  const blocksize = Number(values.blocksize);
  const dtype = values.dtype as FloatDType;
  if (!FLOAT_DTYPES.includes(dtype)) fail('E_DTYPE', '--dtype', values.dtype, FLOAT_DTYPES.join(', '));
  const shape = values.shape!.split('x').map(Number);
  if (shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    fail('E_SHAPE', '--shape', values.shape, 'RxC with positive integers, e.g. 4096x4096');
  }
  const n = shape[0]! * shape[1]!;
  const A = generate(n, dtype, shape);
  const opts = { quantType, blocksize, compressStatistics: values['compress-statistics'] };
  let packed!: Tensor, state!: ReturnType<typeof quantize4bit>[1];
  const qms = best(() => ([packed, state] = quantize4bit(A, opts)));
  let B!: Tensor;
  const dms = best(() => (B = dequantize4bit(packed, state)));
  const a = toFloat32(A), b = toFloat32(B);
  let err = 0, rel = 0, max = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    err += d;
    rel += d / (Math.abs(a[i]!) + 1e-8);
    if (d > max) max = d;
  }
  const inBytes = A.data.byteLength;
  const qBytes = packed.data.byteLength + state.absmax.data.byteLength + (state.state2?.absmax.data.byteLength ?? 0);
  const line = (label: string, ms: number, bytes: number) =>
    console.log(`${label.padEnd(12)} ${ms.toFixed(1).padStart(8)} ms  ${(n / ms / 1e6).toFixed(2).padStart(6)} Gelem/s  ${(bytes / ms / 1e6).toFixed(1).padStart(6)} GB/s`);
  console.log(`bnbjs ${version()} demo: ${quantType} blocksize ${blocksize}${opts.compressStatistics ? ' nested' : ''} on a ${shape.join('x')} ${dtype} normal tensor (WebAssembly ${wasmBuild()}, 1 thread)`);
  const size = (b: number) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
  console.log(`size         ${size(inBytes)} -> ${size(qBytes)} (${(inBytes / qBytes).toFixed(2)}x smaller)`);
  console.log(`error        mean |A - A'| ${(err / n).toFixed(6)}   mean relative ${(rel / n).toFixed(6)}   max ${max.toFixed(6)}`);
  line('quantize', qms, inBytes + qBytes);
  line('dequantize', dms, qBytes + inBytes);
}

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    if (command === 'demo') demo(rest);
    else if (command === '--version' || command === '-v') console.log(version());
    else if (command === undefined || command === 'help' || command === '--help' || command === '-h') console.log(USAGE);
    else fail('E_ARGUMENT', 'command', command, "'demo' or 'help'");
    return 0;
  } catch (e) {
    if (e instanceof BnbError) {
      console.error(`bnbjs: ${e.message} [${e.code}]`);
      return 2;
    }
    if (e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`bnbjs: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}

process.exitCode = main(process.argv.slice(2));
