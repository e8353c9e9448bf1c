// LLM.int8 weights to and from a float checkpoint (issue 14): the SIMD row kernels, the
// fused paths (int8VectorwiseQuantCast, int8VectorwiseDequantCast) and the int8
// checkpoint conversions give the bytes of the path of before: the per-element
// castFloatReference and the scalar oracle's kernels.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { registerKernel } from '../src/ops/index.js';
import { checkInt8Quant } from '../src/ops/int8.js';
import { FloatDType } from '../src/dtypes.js';
import { numberToBf16 } from '../src/float16.js';
import { Tensor, int8VectorwiseDequant, int8VectorwiseQuant, setNumThreads, setWasmBuild, tensor } from '../src/index.js';
import { castFloat, castFloatReference } from '../src/backend/wasm/cast.js';
import { int8VectorwiseDequantCast, int8VectorwiseQuantCast } from '../src/backend/wasm/int8-cast.js';
import { int8VectorwiseQuantWasm } from '../src/backend/wasm/int8.js';
import { dequantizeCheckpoint } from '../src/checkpoint/dequantize.js';
import { quantizeCheckpoint } from '../src/checkpoint/quantize.js';
import { writeSafetensors } from '../src/io/safetensors/whole.js';
import '../src/io/safetensors/file-support.js';
import { setParallelThreshold } from '../src/backend/wasm/threads/config.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { wasm } from '../src/backend/wasm/runtime/instances.js';
import { loadSafetensors } from './helpers/golden.js';
import { Rng, asDType, randn } from './helpers/random.js';
import { both, error, onWasmBackend } from './helpers/util.js';

const rng = new Rng(1414);
const bytes = (t: Tensor | null) => (t === null ? Buffer.alloc(0) : Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
const same = (a: Tensor | null, b: Tensor | null) => bytes(a).equals(bytes(b));

/** The bytes of before: the per-element cast and the scalar oracle's kernels. */
function oracle<T>(f: () => T): T {
  setWasmBuild('scalar');
  setNumThreads(1);
  try {
    return f();
  } finally {
    setWasmBuild('simd');
    setNumThreads(2);
  }
}
const quantBefore = (W: Tensor) => oracle(() => int8VectorwiseQuant(castFloatReference(W, 'float16')));
const dequantBefore = (CB: Tensor, SCB: Tensor, dtype: FloatDType) =>
  oracle(() => castFloatReference(int8VectorwiseDequant(CB, SCB), dtype));

/** Runs f on the SIMD and scalar builds, 1 thread and threaded with small chunks; each result. */
function everywhere<T>(f: () => T): [string, T][] {
  const out: [string, T][] = [];
  for (const build of ['simd', 'scalar'] as const) {
    for (const [threads, chunk] of [
      [1, 1 << 18],
      [2, 1 << 18],
      [2, 999],
      [3, 1],
    ] as const) {
      setWasmBuild(build);
      setNumThreads(threads);
      setParallelThreshold(threads > 1 ? 0 : 1 << 20);
      setChunkElements(chunk);
      out.push([`${build}, ${threads} threads, chunk ${chunk}`, f()]);
    }
  }
  setWasmBuild('simd');
  setNumThreads(2);
  setParallelThreshold(1 << 20);
  setChunkElements(1 << 18);
  return out;
}

/** Weights of every float dtype: odd widths (SIMD steps and tails), and values that land on float16 subnormals or near its maximum. */
function weights(): Tensor[] {
  const out: Tensor[] = [];
  for (const [rows, cols] of [
    [37, 301],
    [3, 17],
    [1, 1],
    [130, 64],
    [5, 8],
    [9, 15],
  ] as const) {
    const x = randn(rng, rows * cols, 0.02);
    for (let i = 0; i < x.length; i += 7) x[i] = x[i]! * 1e-4; // float16 subnormals
    if (x.length > 20) x[13] = 60000;
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) out.push(asDType(x, [rows, cols], dtype));
  }
  return out;
}

describe('the SIMD int8 row kernels', () => {
  onWasmBackend();

  it("int8VectorwiseQuant: every float16 value, every threshold, gives the scalar oracle's CB, SCB and outlier columns", () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const inputs = [
      tensor(all, [256, 256], 'float16'),
      tensor(all.subarray(0, 65535), [4369, 15], 'float16'),
      tensor(all.subarray(30000, 30000 + 41 * 33), [41, 33], 'float16'),
    ];
    const rows = new Uint16Array(4 * 24);
    rows.fill(0x7e00, 0, 24); // a row of NaN
    rows.fill(0x0000, 24, 48); // of zeros
    rows.fill(0x4e00, 48, 72); // of outliers (24) for threshold 6
    rows.fill(0x8001, 72, 96); // of the least negative subnormal
    inputs.push(tensor(rows, [4, 24], 'float16'));
    for (const A of inputs) {
      for (const threshold of [0, 6, 3.3, 0.0001, 1e-30, 65504, 70000]) {
        const [simd, scalar] = both(() => int8VectorwiseQuant(A, { threshold, allowNonFinite: true }));
        simd.forEach((t, i) => expect(same(t, scalar[i]!), `${A.shape} threshold ${threshold}: output ${i}`).toBe(true));
      }
    }
  });

  it('the kernel called with a threshold off the float16 grid (the host rounds it onto the grid) still matches the scalar loop', () => {
    const A = Uint16Array.from({ length: 64 * 40 }, (_, i) => (i * 977) & 0xffff);
    const run = (build: 'simd' | 'scalar', threshold: number) => {
      const m = wasm(build);
      const [pA, pQ, pS] = m.scratch(A.byteLength, A.length, 64 * 4);
      m.write(pA!, new Uint8Array(A.buffer));
      m.k.int8VectorwiseQuant(pA!, 64, 40, threshold, pQ!, pS!);
      return Buffer.concat([Buffer.from(m.bytes(pQ!, A.length)), Buffer.from(m.bytes(pS!, 64 * 4))]);
    };
    for (const threshold of [3.3, 1e-30, 65510, 65530, 1e30])
      expect(run('simd', threshold).equals(run('scalar', threshold)), `threshold ${threshold}`).toBe(true);
  });

  it("int8VectorwiseDequant: every int8 value against special stats gives the scalar oracle's bytes", () => {
    const stats = [0, -0, 1, NaN, Infinity, -Infinity, 1e-40, 3e38, 127, -5.5, 0.0123, 2 ** -126];
    for (const cols of [256, 37, 16, 1]) {
      const rows = stats.length * Math.ceil(256 / cols);
      const CB = tensor(
        Int8Array.from({ length: rows * cols }, (_, i) => (i % 256) - 128),
        [rows, cols],
      );
      const SCB = tensor(
        Float32Array.from({ length: rows }, (_, r) => stats[r % stats.length]!),
        [rows],
      );
      const [simd, scalar] = both(() => int8VectorwiseDequant(CB, SCB));
      expect(same(simd, scalar), `${cols} columns`).toBe(true);
    }
  });
});

describe('int8VectorwiseQuantCast and int8VectorwiseDequantCast', () => {
  onWasmBackend();

  it('quantize: the bytes of int8VectorwiseQuant(castFloat(W, float16)) for every float dtype, build, thread count and chunk size', () => {
    for (const W of weights()) {
      const [CB, SCB, outliers] = quantBefore(W);
      expect(outliers).toBeNull();
      for (const [where, got] of everywhere(() => int8VectorwiseQuantCast(W))) {
        expect([got[0].shape, got[1].shape, got[2]], `${W.dtype} ${W.shape}, ${where}`).toEqual([W.shape, [W.shape[0]], null]);
        expect(same(got[0], CB) && same(got[1], SCB), `${W.dtype} ${W.shape}, ${where}`).toBe(true);
      }
    }
  });

  it('quantize: the errors of the two ops, the value reported as float16 and the index right in any chunk', () => {
    const x = randn(rng, 40 * 50, 0.02);
    const bad: [string, Tensor][] = [];
    for (const [at, v] of [
      [1777, 70144],
      [3, NaN],
      [1999, -Infinity],
      [40, 65520],
    ] as const) {
      const y = x.slice();
      y[at] = v;
      bad.push([`${v} at ${at} (bfloat16)`, asDType(y, [40, 50], 'bfloat16')], [`${v} at ${at} (float32)`, tensor(y, [40, 50])]);
    }
    bad.push(['no rows', tensor(new Float32Array(0), [0, 4])], ['a scalar', tensor(new Float32Array([1]), [])]);
    bad.push(['not a tensor', null as unknown as Tensor], ['wrong data', { ...tensor(x, [40, 50]), shape: [40, 49] }]);
    for (const [what, W] of bad) {
      const want = error(() => int8VectorwiseQuant(castFloat(W, 'float16')));
      for (const [where, got] of everywhere(() => error(() => int8VectorwiseQuantCast(W)))) {
        expect([got.code, got.message], `${what}, ${where}`).toEqual([want.code, want.message]);
      }
    }
    // the value bitsandbytes would see: 70144 is float16 Inf
    expect(error(() => int8VectorwiseQuantCast(bad[0]![1])).message).toMatch(/^A has a non-finite value \(Infinity\) at flat index 1777:/);
  });

  it('dequantize: the bytes of castFloat(int8VectorwiseDequant(CB, SCB), dtype) for every dtype, build, thread count and chunk size', () => {
    for (const [rows, cols] of [
      [37, 301],
      [3, 17],
      [1, 1],
      [130, 64],
    ] as const) {
      const CB = tensor(
        Int8Array.from({ length: rows * cols }, () => rng.int(-128, 127)),
        [rows, cols],
      );
      const s = randn(rng, rows, 0.05).map(Math.abs);
      if (rows > 30) [s[1], s[2], s[3], s[4]] = [NaN, Infinity, 0, 1e-40];
      const SCB = tensor(s, [rows]);
      for (const dtype of ['bfloat16', 'float16', 'float32'] as const) {
        const want = dequantBefore(CB, SCB, dtype);
        for (const [where, got] of everywhere(() => int8VectorwiseDequantCast(CB, SCB, dtype))) {
          expect([got.dtype, got.shape], where).toEqual([dtype, [rows, cols]]);
          expect(same(got, want), `${rows}x${cols} -> ${dtype}, ${where}`).toBe(true);
        }
      }
    }
    const CB = tensor(new Int8Array(6), [2, 3]),
      SCB = tensor(new Float32Array(2), [2]);
    for (const [what, f, g] of [
      [
        'float32 CB',
        () => int8VectorwiseDequantCast(tensor(new Float32Array(6), [2, 3]), SCB, 'bfloat16'),
        () => castFloat(int8VectorwiseDequant(tensor(new Float32Array(6), [2, 3]), SCB), 'bfloat16'),
      ],
      [
        'short SCB',
        () => int8VectorwiseDequantCast(CB, tensor(new Float32Array(1), [1]), 'float16'),
        () => castFloat(int8VectorwiseDequant(CB, tensor(new Float32Array(1), [1])), 'float16'),
      ],
      [
        'int8 dtype',
        () => int8VectorwiseDequantCast(CB, SCB, 'int8' as FloatDType),
        () => castFloat(int8VectorwiseDequant(CB, SCB), 'int8' as FloatDType),
      ],
    ] as const) {
      const [got, want] = [error(f), error(g)];
      expect([got.code, got.message], what).toEqual([want.code, want.message]);
    }
  });

  it('are the two ops where the cpu kernel is not the WebAssembly one (another backend)', () => {
    const W = weights()[1]!;
    const want = quantBefore(W)[0];
    let calls = 0;
    const restore = registerKernel('int8VectorwiseQuant', 'cpu', (A: Tensor) => {
      calls++;
      expect(A.dtype).toBe('float16'); // cast first, as the two ops do
      return int8VectorwiseQuantWasm(checkInt8Quant(A, {})); // the WebAssembly kernel takes the checked arguments
    });
    try {
      expect(same(int8VectorwiseQuantCast(W)[0], want)).toBe(true);
      expect(calls).toBe(1);
    } finally {
      restore();
    }
  });
});

describe('int8 checkpoints', () => {
  onWasmBackend();
  const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-int8-cast-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** A Llama-shaped folder: Linear weights of odd shapes (one of each float dtype), a norm and an embedding. */
  async function model(dir: string, big = false): Promise<Record<string, Tensor>> {
    mkdirSync(dir, { recursive: true });
    const t: Record<string, Tensor> = {};
    const add = (name: string, shape: number[], dtype: FloatDType) =>
      (t[name] = asDType(randn(rng, shape[0]! * (shape[1] ?? 1), 0.02), shape, dtype));
    add('model.embed_tokens.weight', [50, 24], 'bfloat16');
    add('model.layers.0.self_attn.q_proj.weight', [24, 24], 'bfloat16');
    add('model.layers.0.mlp.up_proj.weight', [61, 24], 'bfloat16');
    add('model.layers.0.mlp.down_proj.weight', [24, 61], 'float32');
    add('model.layers.0.mlp.gate_proj.weight', [61, 24], 'float16');
    add('model.layers.0.input_layernorm.weight', [24], 'bfloat16');
    if (big) t['model.layers.0.mlp.up_proj.weight']!.data[100] = numberToBf16(1e5); // Inf in float16
    await writeSafetensors(join(dir, 'model.safetensors'), t, { metadata: { format: 'pt' } });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', dtype: 'bfloat16' }));
    return t;
  }

  it('quantize and dequantize give the bytes of before, tensor for tensor', async () => {
    const src = await model(join(tmp, 'bf16'));
    await quantizeCheckpoint(join(tmp, 'bf16'), join(tmp, 'int8'), { format: 'int8' });
    const q = loadSafetensors(join(tmp, 'int8', 'model.safetensors'));
    const linear = Object.keys(src).filter((n) => n.includes('_proj.'));
    for (const name of linear) {
      const [CB, SCB] = quantBefore(src[name]!);
      const module = name.slice(0, -'.weight'.length);
      expect(same(q[name]!, CB) && same(q[`${module}.SCB`]!, SCB), name).toBe(true);
    }
    for (const name of ['model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight'])
      expect(same(q[name]!, src[name]!), name).toBe(true);
    for (const dtype of [undefined, 'float16', 'float32'] as const) {
      const out = join(tmp, `back-${dtype}`);
      await dequantizeCheckpoint(join(tmp, 'int8'), out, { dtype });
      const d = loadSafetensors(join(out, 'model.safetensors'));
      for (const name of linear) {
        const module = name.slice(0, -'.weight'.length);
        expect(same(d[name]!, dequantBefore(q[name]!, q[`${module}.SCB`]!, dtype ?? 'bfloat16')), `${name} -> ${dtype}`).toBe(true);
      }
    }
  });

  it('a weight past the float16 range is E_NON_FINITE naming the tensor, as before', async () => {
    await model(join(tmp, 'big'), true);
    const e = await quantizeCheckpoint(join(tmp, 'big'), join(tmp, 'big-int8'), { format: 'int8' }).then(
      () => null,
      (x) => x,
    );
    expect(e).toMatchObject({
      code: 'E_NON_FINITE',
      message: expect.stringMatching(/^model\.layers\.0\.mlp\.up_proj\.weight: A has a non-finite value \(Infinity\) at flat index 100:/),
    });
  });
});
