// LLM.int8 golden cases: int8_vectorwise_quant, int8_double_quant, int8_vectorwise_dequant,
// int8_linear_matmul and int8_mm_dequant against the bitsandbytes CUDA outputs.
import { afterAll, describe, expect, it } from 'vitest';
import {
  int8DoubleQuant,
  int8LinearMatmul,
  int8MmDequant,
  int8ScaledMm,
  int8VectorwiseDequant,
  int8VectorwiseQuant,
  setWasmBuild,
} from '../src/index.js';
import { casesOf, diffElements, loadGolden } from './helpers/golden.js';

const report = (what: string, d: number[], n: number) => console.log(`${what}: ${d.length} of ${n} elements differ from CUDA`);

describe.each(['simd', 'scalar'] as const)('int8 golden cases, %s build', (build) => {
  for (const c of casesOf('int8')) {
    it(c.file, () => {
      setWasmBuild(build);
      const g = loadGolden(c.file);
      const threshold = c.threshold as number;
      const [CA, SCA, outliers] = int8VectorwiseQuant(g.A!, { threshold });
      const d1 = diffElements(CA, g['cuda.vq.CA']!);
      report(`${c.file} vectorwise CA`, d1, CA.data.length);
      expect(d1).toEqual([]);
      expect(diffElements(SCA, g['cuda.vq.SCA']!)).toEqual([]);
      if (threshold > 0) expect([...outliers!.data]).toEqual([...g['cuda.vq.outlier_cols']!.data]);
      else expect(outliers).toBeNull();

      const [CArow, CAcol, rowStats, colStats, out2] = int8DoubleQuant(g.A!, { threshold });
      expect(diffElements(CArow, g['cuda.dq.CA']!)).toEqual([]);
      const d2 = diffElements(CAcol, g['cuda.dq.CAt']!);
      report(`${c.file} double-quant CAt`, d2, CAcol.data.length);
      expect(d2).toEqual([]);
      expect(diffElements(rowStats, g['cuda.dq.SCA']!)).toEqual([]);
      expect(diffElements(colStats, g['cuda.dq.SCAt']!)).toEqual([]);
      if (threshold > 0) expect([...out2!.data]).toEqual([...g['cuda.dq.outlier_cols']!.data]);

      const vdq = int8VectorwiseDequant(g['cuda.vq.CA']!, g['cuda.vq.SCA']!);
      expect(diffElements(vdq, g['cuda.vdq']!)).toEqual([]);
    });
  }

  for (const c of casesOf('int8_matmul')) {
    it(c.file, () => {
      setWasmBuild(build);
      const g = loadGolden(c.file);
      const C = int8LinearMatmul(g.A!, g.B!);
      expect(C.shape).toEqual(g['cuda.C']!.shape);
      expect(diffElements(C, g['cuda.C']!)).toEqual([]);
      for (const [key, bias] of [
        ['cuda.mm_dequant', null],
        ['cuda.mm_dequant_bias', g.bias!],
      ] as const) {
        const out = int8MmDequant(g['cuda.C']!, g.row_stats!, g.col_stats!, { bias });
        const d = diffElements(out, g[key]!);
        report(`${c.file} ${key}`, d, out.data.length);
        expect(d).toEqual([]);
      }
      expect(diffElements(int8ScaledMm(g.A!, g.B!, g.row_stats!, g.col_stats!, { bias: g.bias! }), g['cuda.mm_dequant_bias']!)).toEqual([]);
    });
  }
});

afterAll(() => setWasmBuild('simd'));
