// init(): loading the kernels from a module, bytes or a Response (what browsers and Workers do).
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { init, quantize4bit, setWasmBuild, tensor, wasmBuild } from '../src/index.js';
import { resetWasm } from '../src/backend/wasm/runtime/instances.js';
import { error } from './helpers/util.js';

const file = (b: string) => readFileSync(new URL(`../build/bnb.${b}.wasm`, import.meta.url));
const A = tensor(
  Float32Array.from({ length: 999 }, (_, i) => Math.sin(i) * 3),
  [999],
);
const reference = () => Buffer.from(quantize4bit(A, { quantType: 'nf4' })[0].data);

afterAll(() => {
  resetWasm();
  setWasmBuild('simd');
});

describe('init()', () => {
  it('takes bytes, a WebAssembly.Module or a Response, and the ops run on that module', async () => {
    setWasmBuild('simd');
    const want = reference();
    resetWasm();
    expect(await init(file('scalar'))).toBe('scalar');
    expect(wasmBuild()).toBe('scalar');
    expect(reference().equals(want)).toBe(true);
    resetWasm();
    expect(await init(new WebAssembly.Module(file('simd')))).toBe('simd');
    expect(reference().equals(want)).toBe(true);
    resetWasm();
    expect(await init(new Response(file('scalar')))).toBe('scalar');
    resetWasm();
    expect(await init()).toBe('simd');
  });

  it('says clearly what it cannot load', async () => {
    await expect(init(42 as never)).rejects.toMatchObject({
      code: 'E_INIT',
      message: expect.stringMatching(/source = 42 is not accepted/),
    });
    await expect(init(new Response('nope', { status: 404 }))).rejects.toMatchObject({
      code: 'E_INIT',
      message: expect.stringMatching(/HTTP 404/),
    });
    await expect(init('http://127.0.0.1:9/bnb.wasm')).rejects.toMatchObject({ code: 'E_INIT' });
    expect(error(() => setWasmBuild('avx' as never)).code).toBe('E_ARGUMENT');
  });
});
