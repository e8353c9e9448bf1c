// bnbjs demo: a checkpoint (default: the bundled tiny Llama) to NF4 with double quant
// and back, with the round-trip error next to bitsandbytes' own bar and the speed.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, toFloat32 } from '../tensor.js';
import { openSource } from '../io/open.js';
import { quantizeCheckpoint } from '../checkpoint/quantize.js';
import { dequantizeCheckpoint } from '../checkpoint/dequantize.js';
import { ConversionReport } from '../checkpoint/common.js';

/** bitsandbytes' test_4bit_quant bar for nf4, blocksize 64: mean relative error on randn data (mean + 7 sigma). */
export const NF4_BS64_RELERR_BAR = 0.205719;

export interface DemoResult {
  input: string;
  wasm: string;
  /** threads ops may use, and jobs that ran on worker threads (ops under 2^20 elements stay on the calling thread) */
  threads: number;
  workerJobs: number;
  quantize: ConversionReport;
  dequantize: ConversionReport;
  quantizedLayers: number;
  error: { layers: number; elements: number; err: number; relerr: number };
}

/** Mean |a - b| and mean |a - b| / (|a| + 1e-8) over the 2-D weights that the round trip changed. */
async function compare(original: string, roundTrip: string): Promise<DemoResult['error']> {
  const a = await openSource(original),
    b = await openSource(roundTrip);
  try {
    let err = 0,
      rel = 0,
      elements = 0,
      layers = 0;
    for (const name of b.names()) {
      const x = await a.read(name),
        y = await b.read(name);
      if (!name.endsWith('.weight') || x.shape.length !== 2 || x.data.byteLength !== y.data.byteLength) continue;
      if (
        Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).equals(
          Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength),
        )
      )
        continue;
      const p = toFloat32(x as Tensor),
        q = toFloat32(y as Tensor);
      for (let i = 0; i < p.length; i++) {
        const d = Math.abs(p[i]! - q[i]!);
        err += d;
        rel += d / (Math.abs(p[i]!) + 1e-8);
      }
      elements += p.length;
      layers++;
    }
    return { layers, elements, err: err / elements, relerr: rel / elements };
  } finally {
    await a.close();
    await b.close();
  }
}

export const BUNDLED_MODEL = fileURLToPath(new URL('../../models/tiny-llama-bf16/', import.meta.url));

/** What the demo reports of the WebAssembly backend: given by the entry (cli.ts), which may import backends. */
export interface DemoRuntime {
  wasmBuild(): string;
  numThreads(): number;
  threadStats(): { workerJobs: number };
}

export async function runDemo(runtime: DemoRuntime, input = BUNDLED_MODEL): Promise<DemoResult> {
  const { wasmBuild, numThreads, threadStats } = runtime;
  const dir = await mkdtemp(join(tmpdir(), 'bnbjs-demo-'));
  try {
    const before = threadStats().workerJobs;
    const q = await quantizeCheckpoint(input, join(dir, 'nf4'), { format: 'nf4', doubleQuant: true });
    const d = await dequantizeCheckpoint(join(dir, 'nf4'), join(dir, 'bf16'));
    const error = await compare(input, join(dir, 'bf16'));
    return {
      input,
      wasm: wasmBuild(),
      threads: numThreads(),
      workerJobs: threadStats().workerJobs - before,
      quantize: q,
      dequantize: d,
      quantizedLayers: q.layers,
      error,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The demo's report for a terminal. */
export function demoText(r: DemoResult, version: string): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const step = (verb: string, c: ConversionReport) =>
    `${verb} ${c.layers} quantized layers (${c.tensors} tensors written): ${mib(c.bytesIn)} -> ${mib(c.bytesOut)} in ${c.seconds.toFixed(2)} s (${(c.bytesIn / 2 ** 20 / c.seconds).toFixed(1)} MiB/s read)`;
  const where =
    r.workerJobs > 0
      ? `${r.threads} threads, ${r.workerJobs} jobs on worker threads`
      : `on the calling thread (${r.threads} available; ops under 2^20 elements do not use workers)`;
  const verdict = r.error.relerr < NF4_BS64_RELERR_BAR ? 'within' : 'above';
  return [
    `bnbjs ${version} demo: ${r.input} -> NF4 with double quant -> bf16`,
    `WebAssembly ${r.wasm} build, ${where}`,
    step('quantize:  ', r.quantize),
    step('dequantize:', r.dequantize),
    `round trip over ${r.error.layers} layers (${r.error.elements} weights): mean |W - W'| = ${r.error.err.toExponential(3)}, ` +
      `mean relative error = ${r.error.relerr.toFixed(4)}`,
    `  ${verdict} bitsandbytes' own bar for nf4 at blocksize 64 (test_4bit_quant: mean relative error < ${NF4_BS64_RELERR_BAR} on normal data)`,
  ].join('\n');
}
