// Every quantize_4bit case of ../shared/golden against the bitsandbytes CUDA outputs.
import { afterAll, describe, expect, it } from 'vitest';
import { QuantState, dequantize4bit, quantize4bit, setWasmBuild, toFloat32, Tensor } from '../src/index.js';
import { compressAbsmax } from '../src/backend/wasm/blockwise.js';
import { meanF32 } from '../src/stats.js';
import { bytes, casesOf, diffElements, loadGolden } from './helpers/golden.js';
import { explainedByReciprocal, fp4Code, nf4Code, ulpDistance } from './helpers/reference.js';

const cases = casesOf('quantize_4bit');
const tally = { elements: 0, flips: 0, unexplained: 0 };

function goldenQs(g: Record<string, Tensor>): Record<string, Tensor> {
  const qs: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(g)) if (k.startsWith('cuda.qs.')) qs[k.slice('cuda.qs.'.length)] = v;
  return qs;
}

/** Compares nibbles; every difference must be a reciprocal flip. Returns the count. */
function codeFlips(file: string, input: Tensor, ours: Tensor, golden: Tensor, absmax: Float32Array, bs: number, qt: 'nf4' | 'fp4'): number {
  const x = toFloat32(input);
  const a = bytes(ours),
    b = bytes(golden);
  const codeOf = qt === 'nf4' ? nf4Code : fp4Code;
  let flips = 0;
  for (let k = 0; k < b.length; k++) {
    if (a[k] === b[k]) continue;
    for (const [i, shift] of [
      [2 * k, 4],
      [2 * k + 1, 0],
    ] as const) {
      const g = (b[k]! >> shift) & 15;
      if (((a[k]! >> shift) & 15) === g) continue;
      flips++;
      const xi = i < x.length ? x[i]! : 0;
      const ok = explainedByReciprocal(xi, absmax[Math.floor(i / bs)]!, g, codeOf);
      console.log(`${file}: element ${i} (x=${xi}) code ${(a[k]! >> shift) & 15} vs CUDA ${g}: ${ok ? 'reciprocal flip' : 'UNEXPLAINED'}`);
      if (!ok) tally.unexplained++;
    }
  }
  return flips;
}

describe.each(['simd', 'scalar'] as const)('quantize_4bit golden cases, %s build', (build) => {
  for (const c of cases) {
    it(c.file, () => {
      setWasmBuild(build);
      const g = loadGolden(c.file);
      const bs = c.blocksize as number,
        qt = c.quant_type as 'nf4' | 'fp4';
      const nested = c.compress_statistics as boolean;
      const storage = (c.quant_storage ?? 'uint8') as 'uint8';
      const opts = { blocksize: bs, quantType: qt, compressStatistics: nested, quantStorage: storage };
      const input = g.input!;
      const [packed, state] = quantize4bit(input, opts);
      const gp = g['cuda.packed']!;
      expect(packed.dtype).toBe(gp.dtype);
      expect(packed.shape).toEqual(gp.shape);
      const plain = quantize4bit(input, { ...opts, compressStatistics: false })[1].absmax.data as Float32Array;
      tally.elements += input.data.length;
      tally.flips += codeFlips(c.file, input, packed, gp, plain, bs, qt);

      const qs = goldenQs(g);
      let replayed = state;
      if (!nested) {
        expect(bytes(state.absmax)).toEqual(bytes(g['cuda.qs.absmax'] ?? g['cuda.absmax']!));
      } else {
        const blob = JSON.parse(new TextDecoder().decode(bytes(qs['quant_state.bitsandbytes__' + qt]!)));
        const goldenOffset = Math.fround(blob.nested_offset);
        expect(state.offset).toBe(meanF32(plain));
        const ulps = ulpDistance(state.offset!, goldenOffset);
        if (ulps) console.log(`${c.file}: offset ${state.offset} vs CUDA ${goldenOffset} (${ulps} ulp, torch's summation order)`);
        expect(ulps).toBeLessThanOrEqual(16);
        const replay = compressAbsmax(plain, 256, goldenOffset);
        expect(bytes(replay.absmax)).toEqual(bytes(qs.absmax!));
        expect(bytes(replay.state2.absmax)).toEqual(bytes(qs.nested_absmax!));
        replayed = new QuantState({ ...state, ...replay });
      }

      if (Object.keys(qs).length) {
        const d = replayed.asDict({ packed: true }) as Record<string, Tensor>;
        expect(Object.keys(d).sort()).toEqual(Object.keys(qs).sort());
        for (const k of Object.keys(qs)) {
          expect(d[k]!.dtype, k).toBe(qs[k]!.dtype);
          expect(bytes(d[k]!), k).toEqual(bytes(qs[k]!));
        }
        const fromGolden = QuantState.fromDict(qs);
        expect(fromGolden.equals(replayed)).toBe(true);
        expect(diffElements(dequantize4bit(gp, fromGolden), g['cuda.dequant']!)).toEqual([]);
      } else {
        const out = dequantize4bit(gp, {
          absmax: g['cuda.absmax']!,
          shape: c.shape as number[],
          blocksize: bs,
          quantType: qt,
          dtype: c.dtype as 'float16',
        });
        expect(diffElements(out, g['cuda.dequant']!)).toEqual([]);
      }
    });
  }
});

afterAll(() => {
  console.log(`4-bit golden: ${tally.flips} code flips in ${tally.elements} elements (${tally.unexplained} unexplained)`);
  setWasmBuild('simd');
});

it('differs from CUDA only by reciprocal flips, fewer than 1 per 100,000 elements', () => {
  expect(tally.elements).toBeGreaterThan(cases.length * 1000);
  expect(tally.unexplained).toBe(0);
  expect(tally.flips * 100_000).toBeLessThan(tally.elements);
});
