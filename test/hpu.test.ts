// The HPU (Intel Gaudi) backend: bitsandbytes' HPU dequantize_4bit contract (docs/bit-exactness.md#gaudi-dequantization),
// emulated on WebAssembly, and the Gaudi probe against fake hl-smi and metadata.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  QuantState,
  Tensor,
  dequantize4bit,
  get4bitType,
  needsNibbleSwap,
  parseGaudiVersion,
  probeGaudi,
  quantize4bit,
  setForcedBackend,
  setGaudiSoftwareVersion,
  swapNibbles,
  tensor,
  toDevice,
} from '../src/index.js';
import { habanaDequantizeNf4 } from '../src/backend/hpu/backend.js';
import { bf16ToNumber, f16ToNumber, numberToBf16, numberToF16 } from '../src/float16.js';
import { FloatDType } from '../src/dtypes.js';
import { bytes, casesOf, loadGolden } from './helpers/golden.js';
import { error } from './helpers/util.js';
import { Rng, asDType, randn } from './helpers/random.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-hpu-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  setForcedBackend(null);
  setGaudiSoftwareVersion(undefined);
});

const hpu = (t: Tensor) => toDevice(t, 'hpu');
function onHpu(state: QuantState): QuantState {
  return new QuantState({
    ...state,
    absmax: hpu(state.absmax),
    state2: state.state2 ? new QuantState({ ...state.state2, absmax: hpu(state.state2.absmax) }) : null,
  });
}

/** bitsandbytes' HPU result computed independently: dtype(nf4[q] * f32(dtype(absmax))). */
function expected(packed: Uint8Array, absmax: Float32Array, blocksize: number, n: number, dtype: FloatDType): number[] {
  const nf4 = get4bitType('nf4').data as Float32Array;
  const round = (x: number) =>
    dtype === 'float16' ? f16ToNumber(numberToF16(x)) : dtype === 'bfloat16' ? bf16ToNumber(numberToBf16(x)) : Math.fround(x);
  const bits = (x: number) =>
    dtype === 'float16' ? numberToF16(x) : dtype === 'bfloat16' ? numberToBf16(x) : new Uint32Array(new Float32Array([x]).buffer)[0]!;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const q = i % 2 === 0 ? packed[i >> 1]! >> 4 : packed[i >> 1]! & 15;
    out.push(bits(Math.fround(nf4[q]! * round(absmax[Math.floor(i / blocksize)]!))));
  }
  return out;
}

describe('HPU dequantize_4bit against every nf4 golden case', () => {
  it('equals the CUDA dequant with absmax rounded to the output dtype first', () => {
    setForcedBackend('hpu');
    setGaudiSoftwareVersion('1.22.0');
    let cases = 0,
      differFromCuda = 0,
      total = 0;
    for (const c of casesOf('quantize_4bit').filter((c) => c.quant_type === 'nf4' && !c.quant_storage)) {
      const g = loadGolden(c.file);
      const qs: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(g)) if (k.startsWith('cuda.qs.')) qs[k.slice(8)] = v;
      const state = QuantState.fromDict(qs);
      const out = dequantize4bit(hpu(g['cuda.packed']!), onHpu(state));
      expect(out.device).toBe('hpu:0');
      const host = toDevice(out, 'cpu');
      // the de-nested absmax as bitsandbytes computes it (f32, two roundings)
      const s2 = state.state2;
      const absmax = !s2
        ? (state.absmax.data as Float32Array)
        : Float32Array.from(state.absmax.data, (q, i) =>
            Math.fround(Math.fround((s2.code.data as Float32Array)[q]! * s2.absmax.data[Math.floor(i / s2.blocksize)]!) + state.offset!),
          );
      const n = host.data.length;
      const want = expected(bytes(g['cuda.packed']!), absmax, c.blocksize as number, n, c.dtype as FloatDType);
      expect(
        Array.from(host.data as ArrayLike<number>, (v) => (c.dtype === 'float32' ? new Uint32Array(new Float32Array([v]).buffer)[0]! : v)),
        c.file,
      ).toEqual(want);
      const cuda = g['cuda.dequant']!;
      const d = Array.from(bytes(cuda)).filter((b, i) => b !== bytes(host)[i]).length;
      if (c.dtype === 'float32') expect(d, `${c.file}: float32 output is bit-exact with CUDA`).toBe(0);
      differFromCuda += d > 0 ? 1 : 0;
      total += n;
      cases++;
    }
    console.log(
      `HPU: ${cases} nf4 golden cases; ${differFromCuda} of them (bf16/f16 outputs) differ from cuda.dequant by the absmax rounding, as bitsandbytes' HPU path does`,
    );
    expect(cases).toBeGreaterThan(40);
  });
});

describe('nibble order and the software version', () => {
  const W = asDType(randn(new Rng(5), 64 * 96), [64, 96], 'bfloat16');
  const [packed, state] = quantize4bit(W, { quantType: 'nf4', compressStatistics: true });

  it('the old kernel on nibble-swapped bytes (1.21) equals the new kernel on plain bytes (1.22)', () => {
    const absmax = Float32Array.from({ length: 96 }, (_, i) => 0.5 + i / 100);
    const b = bytes(packed).slice();
    const v121 = parseGaudiVersion('1.21.0'),
      v122 = parseGaudiVersion('1.22.0');
    const old = habanaDequantizeNf4(swapNibbles(b), absmax, 64, [64, 96], 'bfloat16', v121);
    const cur = habanaDequantizeNf4(b, absmax, 64, [64, 96], 'bfloat16', v122);
    expect(old.data).toEqual(cur.data);
    expect(habanaDequantizeNf4(b, absmax, 64, [64, 96], 'bfloat16', v121).data).not.toEqual(cur.data);
  });

  it('dequantize4bit on hpu gives the same result for 1.21 (swapped for the old kernel), 1.22 and 2.0', () => {
    setForcedBackend('hpu');
    const results = ['1.21.0', '1.22.0', '2.0.0', null].map((v) => {
      setGaudiSoftwareVersion(v);
      return toDevice(dequantize4bit(hpu(packed), onHpu(state)), 'cpu').data;
    });
    for (const r of results.slice(1)) expect(r).toEqual(results[0]);
    expect(needsNibbleSwap(parseGaudiVersion('2.0.0'))).toBe(false); // bitsandbytes' `major < 1 or minor < 22` would swap here
    expect(needsNibbleSwap(parseGaudiVersion('1.21.3'))).toBe(true);
    expect(needsNibbleSwap(parseGaudiVersion('0.99.0'))).toBe(true);
  });

  it('rejects fp4 and float16/float32 storage; accepts bfloat16 storage', () => {
    setForcedBackend('hpu');
    const [p4, s4] = quantize4bit(W, { quantType: 'fp4' });
    expect(error(() => dequantize4bit(hpu(p4), onHpu(s4)))).toMatchObject({
      code: 'E_QUANT_TYPE',
      message: 'HPU backend only supports quant_type \'nf4\', got "fp4"',
    });
    for (const quantStorage of ['float16', 'float32'] as const) {
      const [p, s] = quantize4bit(W, { quantType: 'nf4', quantStorage });
      expect(error(() => dequantize4bit(hpu(p), onHpu(s)))).toMatchObject({
        code: 'E_DTYPE',
        message: `HPU backend only supports uint8 or bfloat16 storage, got "${quantStorage}"`,
      });
    }
    const [pb, sb] = quantize4bit(W, { quantType: 'nf4', quantStorage: 'bfloat16' });
    expect(toDevice(dequantize4bit(hpu(pb), onHpu(sb)), 'cpu').data).toEqual(
      toDevice(dequantize4bit(hpu(packed), onHpu(quantize4bit(W, { quantType: 'nf4' })[1])), 'cpu').data,
    );
  });

  it("out: the shared check (the WebAssembly kernel's codes and messages), then written in place", () => {
    setForcedBackend('hpu');
    const want = toDevice(dequantize4bit(hpu(packed), onHpu(state)), 'cpu').data;
    const out = hpu(tensor(new Uint16Array(64 * 96), [64, 96], 'bfloat16'));
    expect(dequantize4bit(hpu(packed), onHpu(state), { out })).toBe(out);
    expect(toDevice(out, 'cpu').data).toEqual(want);
    for (const bad of [tensor(new Float32Array(64 * 96), [64, 96]), tensor(new Uint16Array(64 * 96), [96, 64], 'bfloat16')]) {
      const onWasm = error(() => dequantize4bit(packed, state, { out: bad }));
      expect(onWasm.code).toMatch(/^E_(DTYPE|SHAPE)$/);
      const o = hpu(bad);
      expect(error(() => dequantize4bit(hpu(packed), onHpu(state), { out: o }))).toMatchObject({
        code: onWasm.code,
        message: onWasm.message,
      });
      expect(Array.from(toDevice(o, 'cpu').data).every((v) => v === 0)).toBe(true); // nothing written
    }
  });

  it('is selected only when forced or detected', () => {
    expect(error(() => toDevice(tensor([1, 2]), 'hpu'))).toMatchObject({
      code: 'E_DEVICE',
      message: expect.stringMatching(/no Gaudi device.*BNBJS_BACKEND=hpu/),
    });
  });
});

describe('Gaudi probe', () => {
  function fakeHlSmi(name: string, output: string): string {
    const dir = join(tmp, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hl-smi'), `#!/bin/sh\necho '${output}'\n`);
    chmodSync(join(dir, 'hl-smi'), 0o755);
    return dir;
  }
  const none = join(tmp, 'empty');
  mkdirSync(none, { recursive: true });

  it('reads the version from hl-smi -v: 1.21, 1.22, 2.0, malformed', () => {
    const cases: [string, string, [number, number] | null, boolean][] = [
      ['v121', 'hl-smi version: hl-1.21.0-fw-50.1.2.0', [1, 21], true],
      ['v122', 'hl-smi version: hl-1.22.0-fw-51.0.0.0', [1, 22], false],
      ['v200', 'hl-smi version: hl-2.0.0-fw-60.0.0.0', [2, 0], false],
      ['bad', 'hl-smi version: unknown', null, false],
    ];
    for (const [name, out, v, swap] of cases) {
      const p = probeGaudi({ env: { PATH: fakeHlSmi(name, out) }, sitePackages: [none], devRoot: none });
      expect(p.version ? [p.version.major, p.version.minor] : null, name).toEqual(v);
      expect(p.swapNibbles, name).toBe(swap);
      expect(p.versionSource, name).toMatch(v ? /^hl-smi -v/ : /printed no version/);
      expect(p.emulated).toBe(true);
    }
  });

  it('reads habana-torch-plugin metadata first, and reports a missing or malformed version', () => {
    const site = join(tmp, 'site');
    mkdirSync(join(site, 'habana_torch_plugin-1.21.0.dist-info'), { recursive: true });
    writeFileSync(
      join(site, 'habana_torch_plugin-1.21.0.dist-info', 'METADATA'),
      'Metadata-Version: 2.1\nName: habana-torch-plugin\nVersion: 1.21.0.555\n',
    );
    const p = probeGaudi({ env: { PATH: fakeHlSmi('v122b', 'hl-1.22.0') }, sitePackages: [site], devRoot: none });
    expect(p.version?.minor).toBe(21);
    expect(p.versionSource).toMatch(/habana-torch-plugin metadata/);
    const badSite = join(tmp, 'badsite');
    mkdirSync(join(badSite, 'habana_torch_plugin-x.dist-info'), { recursive: true });
    writeFileSync(join(badSite, 'habana_torch_plugin-x.dist-info', 'METADATA'), 'Name: habana-torch-plugin\nVersion: \n');
    const q = probeGaudi({ env: { PATH: none }, sitePackages: [badSite], devRoot: none });
    expect(q.version).toBeNull();
    expect(q.versionSource).toMatch(/no usable Version/);
    // a FIFO named METADATA is skipped, not read (reading it would block the probe forever)
    const fifoSite = join(tmp, 'fifosite');
    mkdirSync(join(fifoSite, 'habana_torch_plugin-2.0.0.dist-info'), { recursive: true });
    execFileSync('mkfifo', [join(fifoSite, 'habana_torch_plugin-2.0.0.dist-info', 'METADATA')]);
    const f = probeGaudi({ env: { PATH: none }, sitePackages: [fifoSite], devRoot: none });
    expect(f.version).toBeNull();
    expect(f.versionSource).toMatch(/^not found/);
    const missing = probeGaudi({ env: { PATH: none }, sitePackages: [none], devRoot: none });
    expect(missing).toMatchObject({
      version: null,
      available: false,
      swapNibbles: false,
      versionSource: expect.stringMatching(/^not found/),
    });
  });

  it('finds accel device nodes and HABANA_VISIBLE_DEVICES', () => {
    const dev = join(tmp, 'dev');
    mkdirSync(join(dev, 'accel'), { recursive: true });
    writeFileSync(join(dev, 'accel', 'accel0'), '');
    writeFileSync(join(dev, 'accel', 'accel1'), '');
    const p = probeGaudi({ env: { PATH: none, HABANA_VISIBLE_DEVICES: '0,1' }, sitePackages: [none], devRoot: dev });
    expect(p).toMatchObject({ available: true, reason: null, visibleDevices: '0,1' });
    expect(p.devices.map((d) => d.split('/').pop())).toEqual(['accel0', 'accel1']);
  });
});
