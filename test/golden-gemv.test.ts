// gemv_4bit golden cases: our GEMV against bitsandbytes' CUDA output, within
// bitsandbytes' own test_gemv_4bit bars, and against a float64 reference.
import { afterAll, describe, expect, it } from 'vitest';
import { QuantState, Tensor, dequantize4bit, gemv4bit, matmul4bit, setWasmBuild, toFloat32 } from '../src/index.js';
import { FloatDType } from '../src/dtypes.js';
import { casesOf, loadGolden } from './helpers/golden.js';
import { gemvBars, gemvMetrics } from './helpers/gemv-bars.js';

function reference(A: Tensor, W: Float32Array, N: number, K: number): Float64Array {
  const a = toFloat32(A),
    out = new Float64Array(N);
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += a[k]! * W[j * K + k]!;
    out[j] = s;
  }
  return out;
}

describe.each(['simd', 'scalar'] as const)('gemv_4bit golden cases, %s build', (build) => {
  for (const c of casesOf('gemv_4bit')) {
    it(c.file, () => {
      setWasmBuild(build);
      const g = loadGolden(c.file);
      const [N, K] = c.NK as [number, number];
      const dtype = c.dtype as FloatDType;
      const qs: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(g)) if (k.startsWith('cuda.qs.')) qs[k.slice(8)] = v;
      const state = QuantState.fromDict(qs);
      const qB = g['cuda.qB']!;
      const out = gemv4bit(g.A!, qB, state);
      expect(out.dtype).toBe(dtype);
      expect(out.shape).toEqual([1, 1, N]);
      const ours = toFloat32(out),
        cuda = toFloat32(g['cuda.out']!);
      const same = ours.filter((v, i) => v === cuda[i]).length;
      const vsCuda = gemvMetrics(cuda, ours, K);
      const W = toFloat32(dequantize4bit(qB, new QuantState({ ...state, dtype: 'float32' })));
      const vsRef = gemvMetrics(reference(g.A!, W, N, K), ours, K);
      const cudaVsRef = gemvMetrics(reference(g.A!, W, N, K), cuda, K);
      console.log(
        `${c.file}: ${N - same} of ${N} outputs differ from CUDA (CUDA multiplies in ${dtype}, bnbjs in f32); ` +
          `vs CUDA err1 ${vsCuda.err1.toExponential(2)}; vs f64 err1 ${vsRef.err1.toExponential(2)} (CUDA's own ${cudaVsRef.err1.toExponential(2)})`,
      );
      const bars = gemvBars(dtype, K);
      for (const key of ['err1', 'relerr1', 'maxerr1'] as const) {
        expect(vsCuda[key], `vs CUDA ${key}`).toBeLessThan(bars[key]);
        expect(vsRef[key], `vs f64 ${key}`).toBeLessThan(bars[key]);
      }
      // matmul_4bit with the same weight, and B passed transposed (same bytes)
      const mm = matmul4bit(g.A!, { ...qB, shape: [1, qB.shape[0]!] }, state);
      expect(mm.data).toEqual(out.data);
    });
  }
});

afterAll(() => setWasmBuild('simd'));
