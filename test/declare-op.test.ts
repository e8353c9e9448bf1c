// An op added through the declaration API alone (#16): a declaration and a
// WebAssembly-backend kernel written here in TypeScript, dispatched like the real
// ops. The registry runs the op's check before any kernel, hands the kernel the
// checked arguments, returns the caller's `out`, and a device without a kernel for
// the op is E_DEVICE.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OPS, Tensor, probe, setForcedBackend, tensor } from '../src/index.js';
import { defineOp, outputs, registerOpKernel, registerUserKernel } from '../src/ops/registry.js';
import { checkOutput, checkTensorOf, emptyTensor } from '../src/ops/validate.js';
import { fail } from '../src/errors.js';
import { error } from './helpers/util.js';

/** What ran, in order: the check and the kernel log themselves here. */
const ran: string[] = [];

interface ScaleOptions {
  factor?: number;
  out?: Tensor;
}

/** scaleF32(A, { factor = 2, out }): f32(A * factor), into `out` where given. */
const scaleOp = defineOp({
  name: 'scaleF32',
  inputs: ['A'],
  attrs: { factor: 'value', out: 'tensor' },
  check(A: Tensor, opts: ScaleOptions) {
    ran.push('check');
    const a = checkTensorOf('A', A, 'float32');
    const factor = opts.factor ?? 2;
    if (typeof factor !== 'number' || !Number.isFinite(factor)) fail('E_ARGUMENT', 'factor', factor, 'a finite number');
    return { A: a, factor, out: checkOutput(opts.out, 'float32', a.shape, { A: a }) };
  },
  outputs: outputs<Tensor>('out'),
  output: 'out',
});
const scaleF32 = (A: Tensor, opts: ScaleOptions = {}): Tensor => scaleOp.call(A, opts);

// the WebAssembly backend's kernel: it gets the checked arguments (A is the check's snapshot)
registerOpKernel(scaleOp, 'wasm', ({ A, factor, out }) => {
  ran.push('kernel');
  const result = out ?? emptyTensor('float32', A.shape);
  const src = A.data as Float32Array,
    dst = result.data as Float32Array;
  for (let i = 0; i < src.length; i++) dst[i] = Math.fround(src[i]! * factor);
  return result;
});

const A = tensor(Float32Array.from([1, -2.5, 3, 0.1]), [2, 2]);
const bytes = (t: Tensor) => Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
const before = bytes(A);
/** A tensor on a device, with no host data (reading it throws). */
const fake = (device: string): Tensor => ({
  dtype: 'float32',
  shape: [2, 2],
  device,
  get data(): never {
    throw new Error('no host data');
  },
});

// host tensors on the WebAssembly backend, whatever BNBJS_BACKEND says (the CUDA backend has no kernel for this op)
const forcedBefore = probe().forced;
beforeEach(() => setForcedBackend(null));
afterAll(() => setForcedBackend(forcedBefore));
afterEach(() => {
  ran.length = 0;
  expect(bytes(A)).toEqual(before); // no call changes its input
});

describe('an op declared in a test', () => {
  it('dispatches host tensors to its WebAssembly kernel, the check first', () => {
    const r = scaleF32(A, { factor: 3 });
    expect(ran).toEqual(['check', 'kernel']);
    expect([r.dtype, r.shape, r.device]).toEqual(['float32', [2, 2], 'cpu']);
    expect(Array.from(r.data)).toEqual([3, -7.5, 9, Math.fround(0.1 * 3)].map(Math.fround));
  });

  it("returns the caller's own out, written; an out sharing A's memory is refused by the check", () => {
    const out = tensor(new Float32Array(4), [2, 2]);
    expect(scaleF32(A, { out })).toBe(out);
    expect(Array.from(out.data)).toEqual([2, -5, 6, Math.fround(0.2)]);
    const buf = new Float32Array(8);
    const shared = tensor(buf.subarray(0, 4), [2, 2]);
    const before2 = Array.from(buf);
    expect(error(() => scaleF32(shared, { out: tensor(buf.subarray(2, 6), [2, 2]) }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^out shares memory with A/),
    });
    expect(Array.from(buf)).toEqual(before2);
    expect(ran).toEqual(['check', 'kernel', 'check']);
  });

  it('bad arguments stop at the check: the kernel never runs', () => {
    expect(error(() => scaleF32(tensor(new Int32Array(4), [2, 2])))).toMatchObject({
      code: 'E_DTYPE',
      message: 'A.dtype = "int32" is not accepted: expected \'float32\'',
    });
    expect(error(() => scaleF32(A, { factor: NaN }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^factor = NaN is not accepted/),
    });
    expect(error(() => scaleF32(A, { out: tensor(new Float32Array(3), [3]) }))).toMatchObject({
      code: 'E_SHAPE',
      message: 'out.shape = [3] is not accepted: expected [2, 2]',
    });
    expect(ran).toEqual(['check', 'check', 'check']);
    // the options, by its attrs: an unknown name, or no object, before anything else
    expect(error(() => scaleF32(A, { factr: 3 } as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^scaleF32 option factr = "factr" is not accepted: expected one of factor, out/),
    });
    expect(error(() => scaleF32(A, 5 as never))).toMatchObject({
      code: 'E_ARGUMENT',
      message: expect.stringMatching(/^scaleF32 options = 5 is not accepted/),
    });
    expect(ran).toEqual(['check', 'check', 'check']);
  });

  it('a device without a kernel for it is E_DEVICE, before its check', () => {
    expect(error(() => scaleF32(fake('hpu:0')))).toMatchObject({ code: 'E_DEVICE', message: 'scaleF32 has no kernel for hpu:0' });
    expect(error(() => scaleF32(fake('cuda:1')))).toMatchObject({
      code: 'E_DEVICE',
      message: expect.stringMatching(/^scaleF32 has no kernel for cuda:1/),
    });
    expect(error(() => scaleF32(A, { out: fake('cuda:0') }))).toMatchObject({
      code: 'E_DEVICE',
      message: 'Input tensors need to be on the same device: A on cpu; out on cuda:0',
    });
    // BNBJS_BACKEND=cuda gives host tensors to the CUDA backend, which has no kernel for it
    setForcedBackend('cuda');
    expect(error(() => scaleF32(A))).toMatchObject({
      code: 'E_DEVICE',
      message: expect.stringMatching(/^scaleF32 has no kernel for the forced cuda backend/),
    });
    expect(ran).toEqual([]);
  });

  it("a user's kernel for another device gets the op's own arguments once the check has accepted them", () => {
    const seen: unknown[] = [];
    const restore = registerUserKernel('scaleF32', 'hpu', (t: Tensor, opts: ScaleOptions) => {
      ran.push('user kernel');
      seen.push(t.device, opts.factor);
      return t;
    });
    try {
      const t = fake('hpu:1');
      expect(scaleF32(t, { factor: 4 })).toBe(t);
      expect(seen).toEqual(['hpu:1', 4]);
      expect(error(() => scaleF32(fake('hpu:1'), { factor: Infinity }))).toMatchObject({ code: 'E_ARGUMENT' });
      expect(ran).toEqual(['check', 'user kernel', 'check']);
    } finally {
      restore();
    }
    expect(error(() => scaleF32(fake('hpu:1')))).toMatchObject({ code: 'E_DEVICE', message: 'scaleF32 has no kernel for hpu:1' });
  });

  it('is not one of the public OPS, and its name cannot be declared again', () => {
    expect(OPS).not.toContain('scaleF32');
    expect(OPS).toEqual([
      'quantize4bit',
      'dequantize4bit',
      'quantizeBlockwise',
      'dequantizeBlockwise',
      'int8VectorwiseQuant',
      'int8DoubleQuant',
      'int8VectorwiseDequant',
      'int8LinearMatmul',
      'int8MmDequant',
      'gemv4bit',
      'dequantizeFp8',
    ]);
    expect(error(() => defineOp({ ...scaleOp }))).toMatchObject({
      code: 'E_ARGUMENT',
      message: 'op = "scaleF32" is declared twice: op names are unique',
    });
  });
});
