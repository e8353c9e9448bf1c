// Reads the golden bitsandbytes outputs in ../shared/golden (safetensors files).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DType, allocate } from '../../src/dtypes.js';
import { Tensor, tensor } from '../../src/tensor.js';

export const SHARED = process.env.BNBJS_SHARED ?? fileURLToPath(new URL('../../../shared/', import.meta.url));
export const GOLDEN = `${SHARED}/golden`;

if (!existsSync(`${GOLDEN}/manifest.json`)) {
  throw new Error(`golden files not found at ${GOLDEN}: the tests need ../shared beside the repository (or BNBJS_SHARED)`);
}

const ST_DTYPES: Record<string, DType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  U8: 'uint8',
  I8: 'int8',
  I32: 'int32',
  F8_E4M3: 'float8_e4m3fn',
};

export interface GoldenCase {
  file: string;
  op: string;
  [key: string]: unknown;
}

export function manifest(): GoldenCase[] {
  return JSON.parse(readFileSync(`${GOLDEN}/manifest.json`, 'utf8')).cases;
}

export function casesOf(op: string): GoldenCase[] {
  return manifest().filter((c) => c.op === op);
}

/** All tensors of a golden file (0-dim tensors get shape []). */
export function loadGolden(file: string): Record<string, Tensor> {
  return loadSafetensors(`${GOLDEN}/${file}`);
}

/** Tensors of a safetensors file in the dtypes bnbjs has (I64 read as int32; others left out). */
export function loadSafetensors(path: string): Record<string, Tensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = 8 + n;
  const out: Record<string, Tensor> = {};
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    const [a, b] = info.data_offsets as [number, number];
    if (info.dtype === 'I64') {
      // small index tensors (outlier columns): read as int32
      const big = new BigInt64Array(buf.buffer.slice(buf.byteOffset + base + a, buf.byteOffset + base + b));
      out[name] = { ...tensor(Int32Array.from(big, Number), [big.length], 'int32'), shape: info.shape };
      continue;
    }
    const dtype = ST_DTYPES[info.dtype];
    if (!dtype) continue;
    const count = info.shape.reduce((x: number, y: number) => x * y, 1);
    const data = allocate(dtype, count);
    new Uint8Array(data.buffer).set(buf.subarray(base + a, base + b));
    out[name] = { ...tensor(data, info.shape.length ? info.shape : [1], dtype), shape: info.shape };
  }
  return out;
}

export function bytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Indices where two byte-identical-length tensors differ (compared as raw bytes per element). */
export function diffElements(a: Tensor, b: Tensor): number[] {
  const ab = bytes(a),
    bb = bytes(b);
  if (ab.length !== bb.length) throw new Error(`length ${ab.length} vs ${bb.length}`);
  const size = a.data.BYTES_PER_ELEMENT;
  const out: number[] = [];
  for (let i = 0; i < a.data.length; i++) {
    for (let k = 0; k < size; k++) {
      if (ab[i * size + k] !== bb[i * size + k]) {
        out.push(i);
        break;
      }
    }
  }
  return out;
}
