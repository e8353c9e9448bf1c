// The smoke suite itself, in this process: it passes, it fails on a wrong byte (so a
// runtime that computes something else cannot pass it), and the inlined kernels of
// bnbjs/inline are the current builds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as lib from '../../src/index.js';
import { ROOT, fixtureFiles as files } from './app.js';
import { CHECK_NAMES, smoke } from './smoke.js';

describe('smoke suite', () => {
  it('passes here', () => {
    const r = smoke(lib, files());
    expect(r.results.filter((x) => !x.ok)).toEqual([]);
    expect(r.results.map((x) => x.name)).toEqual(CHECK_NAMES);
  });

  it('fails, naming the byte, when a golden output is off by one bit', () => {
    const f = files();
    const name = 'q4_nf4_bs64_float16_plain_0';
    const bytes = f[name]!;
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    bytes[8 + n + header['cuda.packed'].data_offsets[0]]! ^= 1; // the first packed byte bnb wrote
    const r = smoke(lib, f);
    const failed = r.results.filter((x) => !x.ok);
    expect(failed.map((x) => x.name)).toContain('quantize4bit/dequantize4bit nf4');
    expect(failed.find((x) => x.name === 'quantize4bit/dequantize4bit nf4')!.detail).toMatch(/byte 0 is \d+, expected \d+/);
  });

  it('bnbjs/inline carries the current build/*.wasm', async () => {
    const inline = await import(join(ROOT, 'dist/backend/wasm/runtime/inline-bytes.js'));
    for (const build of ['simd', 'scalar'] as const) {
      expect(inline[build], `dist/backend/wasm/runtime/inline-bytes.js is stale (${build}): run npm run build`).toBe(
        readFileSync(join(ROOT, `build/bnb.${build}.wasm`)).toString('base64'),
      );
    }
  });
});
