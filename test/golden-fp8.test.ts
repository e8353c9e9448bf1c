// dequantize_fp8 golden cases: per-tensor and 128x128-tile scales with partial edge tiles.
import { afterAll, describe, expect, it } from 'vitest';
import { dequantizeFp8, setWasmBuild, tensor, Tensor } from '../src/index.js';
import { casesOf, diffElements, loadGolden } from './helpers/golden.js';

const fp8 = (t: Tensor) => tensor(t.data as Uint8Array, t.shape, 'float8_e4m3fn');

describe.each(['simd', 'scalar'] as const)('dequantize_fp8 golden cases, %s build', (build) => {
  for (const c of casesOf('dequantize_fp8')) {
    for (const dtype of ['bfloat16', 'float16', 'float32'] as const) {
      it(`${c.file} -> ${dtype}`, () => {
        setWasmBuild(build);
        const g = loadGolden(c.file);
        const out = dequantizeFp8(fp8(g.W_bits!), g.scale_inv!, { dtype, blockSize: (c.block as number) || undefined });
        expect(out.dtype).toBe(dtype);
        expect(out.shape).toEqual(c.shape);
        const diff = diffElements(out, g[`out.${dtype}`]!);
        console.log(`${c.file} -> ${dtype}: ${diff.length} of ${out.data.length} elements differ from the reference`);
        expect(diff).toEqual([]);
      });
    }
  }
});

afterAll(() => setWasmBuild('simd'));
