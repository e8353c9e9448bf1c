// The kernel ABI table (src/backend/abi.ts) against every place that states the ABI:
// the WebAssembly builds' exports (names, parameter counts and value types), the
// TypeScript interfaces derived from it, the generated C++ (up to date with the
// table, and the .cu/.cpp launchers defined with its declarations), the addon's
// generated unpacking (built with g++ against a stub CUDA runtime and launchers that
// report what they get) and the mock addon, which must reject and accept the same
// arguments as that unpacking.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { DTYPE_ID, KERNEL_ABI, ParamKind, QTYPE_ID, kernelsOf } from '../src/backend/abi.js';
import { CudaAddon } from '../src/backend/cuda/addon.js';
import { KernelExports } from '../src/backend/wasm/runtime/exports.js';
import { wasmSignatures } from './helpers/wasm-signatures.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const require = createRequire(import.meta.url);
type Fn = (...args: unknown[]) => unknown;

describe("the WebAssembly builds export the table's wasm entries", () => {
  const builds = readdirSync(join(ROOT, 'build'))
    .filter((f) => /^bnb\.[a-z-]+\.wasm$/.test(f))
    .sort();
  const wasmType = (kind: ParamKind) => (kind === 'f32' || kind === 'f64' ? kind : 'i32'); // wasm32: pointers are i32

  it('all five builds are there', () => {
    expect(builds).toEqual(['bnb.relaxed-mt.wasm', 'bnb.relaxed.wasm', 'bnb.scalar.wasm', 'bnb.simd-mt.wasm', 'bnb.simd.wasm']);
  });

  it.each(builds)('%s: every exported function, with its parameter and result types', (file) => {
    const signatures = wasmSignatures(readFileSync(join(ROOT, 'build', file)));
    const expected = new Map(
      kernelsOf('wasm').map(({ name, params, returns }) => [
        name,
        {
          params: params.map(([, kind]) => wasmType(kind)),
          results: returns === 'void' ? [] : ['i32'],
        },
      ]),
    );
    expect(Object.fromEntries(signatures)).toEqual(Object.fromEntries(expected));
  });

  it.each(['bnb.simd.wasm', 'bnb.scalar.wasm'])(
    "%s instantiated: the exports are the table's names and arities, and the memory",
    (file) => {
      const module = new WebAssembly.Module(readFileSync(join(ROOT, 'build', file)));
      const exports = new WebAssembly.Instance(module, { env: { abort: () => {} } }).exports;
      const arity = Object.fromEntries(
        Object.entries(exports)
          .filter(([, v]) => typeof v === 'function')
          .map(([n, f]) => [n, (f as Fn).length]),
      );
      expect(arity).toEqual(Object.fromEntries(kernelsOf('wasm').map(({ name, params }) => [name, params.length])));
      expect(Object.keys(exports).filter((n) => !(n in arity))).toEqual(['memory']);
    },
  );
});

describe('the TypeScript interfaces are derived from the table', () => {
  it("each target takes its own parameters: the wasm-only ones are not in the addon's functions", () => {
    // compile-time (tsc -p tsconfig.test.json): the mapped types give each target's parameter list
    expectTypeOf<Parameters<KernelExports['quantize4bit']>['length']>().toEqualTypeOf<8>();
    expectTypeOf<Parameters<CudaAddon['quantize4bit']>['length']>().toEqualTypeOf<7>();
    expectTypeOf<Parameters<KernelExports['gemv4bit']>['length']>().toEqualTypeOf<15>();
    expectTypeOf<Parameters<CudaAddon['gemv4bit']>['length']>().toEqualTypeOf<12>();
    expectTypeOf<ReturnType<CudaAddon['firstNonFinite']>>().toEqualTypeOf<number>();
    expectTypeOf<ReturnType<KernelExports['castFloat']>>().toEqualTypeOf<void>();
    expectTypeOf<KernelExports>().not.toHaveProperty('dequantize4bitNested');
    expectTypeOf<CudaAddon>().not.toHaveProperty('castFloat');
    // and at run time, the table's own view of a target
    const params = (target: 'wasm' | 'cuda', name: string) =>
      kernelsOf(target)
        .find((k) => k.name === name)
        ?.params.map(([p]) => p);
    expect(params('wasm', 'gemv4bit')).toEqual([
      'a',
      'm',
      'k',
      'adtype',
      'packed',
      'base',
      'j0',
      'n',
      'absmax',
      'blocksize',
      'qtype',
      'bias',
      'dtype',
      'out',
      'scratch',
    ]);
    expect(params('cuda', 'gemv4bit')).toEqual([
      'a',
      'm',
      'k',
      'adtype',
      'packed',
      'n',
      'absmax',
      'blocksize',
      'qtype',
      'bias',
      'dtype',
      'out',
    ]);
    expect(params('cuda', 'castFloat')).toBeUndefined();
    expect(params('wasm', 'dequantize4bitNested')).toBeUndefined();
  });
});

describe('the generated files (scripts/gen-abi.mjs)', () => {
  const gen = (cwd: string, ...args: string[]) =>
    spawnSync(process.execPath, [join(cwd, 'scripts', 'gen-abi.mjs'), ...args], { cwd, encoding: 'utf8' });
  const OUTPUTS = ['native/cuda/kernels.gen.h', 'native/cuda/bindings.gen.h', 'test/helpers/abi.gen.json'];

  it('are what the table generates, byte for byte', () => {
    const r = gen(ROOT, '--check');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it("the mock's JSON copy is the table", () => {
    expect(JSON.parse(read('test/helpers/abi.gen.json'))).toEqual({ DTYPE_ID, QTYPE_ID, KERNEL_ABI });
  });

  it('a changed table makes --check fail, naming the stale files, until they are generated again', () => {
    const tree = mkdtempSync(join(tmpdir(), 'bnbjs-abi-'));
    try {
      for (const f of ['scripts/gen-abi.mjs', 'src/backend/abi.ts', ...OUTPUTS]) {
        mkdirSync(dirname(join(tree, f)), { recursive: true });
        copyFileSync(join(ROOT, f), join(tree, f));
      }
      symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'), 'dir');
      const abi = join(tree, 'src/backend/abi.ts');
      writeFileSync(abi, readFileSync(abi, 'utf8').replace("['blocksize2', 'integer']", "['blocksize2', 'count']"));
      const stale = gen(tree, '--check');
      expect(stale.status).toBe(1);
      expect(stale.stderr).toContain(': native/cuda/bindings.gen.h, test/helpers/abi.gen.json (run npm run gen:abi)');
      expect(gen(tree).status).toBe(0);
      expect(gen(tree, '--check').status).toBe(0);
      expect(readFileSync(join(tree, 'native/cuda/bindings.gen.h'), 'utf8')).toContain('CPtr, CPtr, CPtr, Count, F64');
      // the launcher's C++ type is the same (long long): only the unpacking changed
      expect(readFileSync(join(tree, 'native/cuda/kernels.gen.h'), 'utf8')).toBe(read('native/cuda/kernels.gen.h'));
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });
});

/** The functions declared (';') or defined ('{') in C++ text: name -> return type and [type, name] parameters. */
function signatures(text: string, end: ';' | '{'): Map<string, { ret: string; params: [string, string][] }[]> {
  const found = new Map<string, { ret: string; params: [string, string][] }[]>();
  for (const m of text.matchAll(/^(void|long long) (\w+)\(([^)]*)\)\s*([;{])/gm)) {
    if (m[4] !== end) continue;
    const params = m[3]!
      .split(',')
      .map((p) => p.trim().replace(/\s+/g, ' '))
      .filter(Boolean)
      .map((p) => /^(.*[\s*])(\w+)$/.exec(p)!)
      .map((x) => [x[1]!.trim(), x[2]!] as [string, string]);
    found.set(m[2]!, [...(found.get(m[2]!) ?? []), { ret: m[1]!, params }]);
  }
  return found;
}

describe('the C++ launchers', () => {
  const declared = signatures(read('native/cuda/kernels.gen.h'), ';');

  it("kernels.gen.h declares every cuda entry, in the table's order, with its parameter names", () => {
    expect([...declared.keys()]).toEqual(kernelsOf('cuda').map((k) => k.name));
    for (const { name, params } of kernelsOf('cuda'))
      expect(declared.get(name)![0]!.params.map(([, p]) => p)).toEqual(params.map(([p]) => p));
  });

  it('the .cu and .cpp files define each launcher once, with the declared types (nvcc is not needed to see a mismatch)', () => {
    const dir = join(ROOT, 'native/cuda');
    const sources = readdirSync(dir)
      .filter((f) => /\.(cu|cpp)$/.test(f))
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('\n');
    const defined = signatures(sources, '{');
    for (const [name, [decl]] of declared) {
      const types = (s: { ret: string; params: [string, string][] }) => [s.ret, ...s.params.map(([t]) => t)];
      expect(defined.get(name)?.map(types), name).toEqual([types(decl!)]);
    }
  });

  it('the hand-written kernels.h no longer declares them', () => {
    expect([...signatures(read('native/cuda/kernels.h'), ';').keys()]).toEqual(['int8MatmulKernel']);
  });
});

// ---- the addon's generated unpacking, built with g++, against the mock ----

const gxx = spawnSync('g++', ['--version']).status === 0;
if (!gxx) console.log("abi.test: the addon's unpacking is not built and compared with the mock: no g++ on this machine");

describe.skipIf(!gxx)("the addon's unpacking (addon.cpp + bindings.gen.h, g++ with a stub CUDA runtime) and the mock agree", () => {
  let tree = '';
  let addon: Record<string, Fn> = {};
  const mock = require('./helpers/mock-cuda-addon.cjs') as Record<string, Fn>;
  const includes = [
    '-I',
    join(ROOT, 'test/helpers/cuda-stub'),
    '-I',
    join(ROOT, 'native/cuda'),
    '-I',
    dirname(require.resolve('node-addon-api/package.json')),
    '-I',
    join(dirname(require.resolve('node-api-headers/package.json')), 'include'),
  ];
  const flags = ['-std=c++17', '-fexceptions', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED'];

  beforeAll(() => {
    tree = mkdtempSync(join(tmpdir(), 'bnbjs-addon-'));
    // launchers with the generated declarations that throw their arguments back: "<name> <arg> <arg> ..."
    const launchers = [...signatures(read('native/cuda/kernels.gen.h'), ';')].map(
      ([name, [{ ret, params }]]) =>
        `${ret} ${name}(${params.map(([t, p]) => `${t} ${p}`).join(', ')}) {\n  throw Error(std::string("${name}")${params.map(([, p]) => ` + " " + show(${p})`).join('')});\n}`,
    );
    writeFileSync(
      join(tree, 'launchers.cpp'),
      [
        '#include <stdint.h>',
        '#include <stdio.h>',
        '#include <string>',
        '#include "errors.h"',
        '#include "kernels.h"',
        'namespace {',
        'std::string show(const void* p) { return std::to_string((uintptr_t)p); }',
        'std::string show(long long v) { return std::to_string(v); }',
        'std::string show(int v) { return std::to_string(v); }',
        'std::string show(double v) { char b[40]; snprintf(b, sizeof b, "%.17g", v); return b; }',
        '}  // namespace',
        'namespace bnb {',
        ...launchers,
        '}  // namespace bnb',
        '',
      ].join('\n'),
    );
    const out = join(tree, 'bnbjs_cuda_stub.node');
    const r = spawnSync(
      'g++',
      [
        ...flags,
        '-shared',
        '-fPIC',
        '-O0',
        ...includes,
        join(ROOT, 'native/cuda/addon.cpp'),
        join(ROOT, 'test/helpers/cuda-stub/cuda_runtime.cpp'),
        join(tree, 'launchers.cpp'),
        '-o',
        out,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`g++ failed:\n${r.stderr}`);
    addon = require(out) as Record<string, Fn>;
  }, 120_000);

  afterAll(() => {
    if (tree) rmSync(tree, { recursive: true, force: true });
  });

  it('addon.cpp compiles with warnings on, clean', () => {
    const r = spawnSync('g++', [...flags, '-fsyntax-only', '-Wall', '-Wextra', ...includes, join(ROOT, 'native/cuda/addon.cpp')], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it("the addon and the mock export the same functions: the table's cuda entries and the runtime calls", () => {
    const cuda = kernelsOf('cuda').map((k) => k.name);
    expect(Object.keys(addon).filter((n) => cuda.includes(n))).toEqual(cuda);
    expect(
      Object.keys(mock)
        .filter((n) => n !== 'mockStats')
        .sort(),
    ).toEqual(Object.keys(addon).sort());
  });

  // one value a kind, distinct by position; f32 is rounded to float by the unpacking
  const good = (kind: ParamKind, i: number): number =>
    ({
      cptr: 4096 * (i + 1),
      ptr: 2 ** 40 + 256 * i,
      count: 1000 + i,
      integer: -3 - i,
      small: 5 + i,
      dtype: DTYPE_ID.bfloat16,
      qtype: QTYPE_ID.nf4,
      f32: 0.1 * (i + 1),
      f64: -1 / 3 - i,
      u32: i,
    })[kind];
  const outcome = (f: Fn, args: unknown[]) => {
    try {
      f(...args);
      return 'returned';
    } catch (e) {
      const err = e as Error;
      return `${err.constructor.name}: ${err.message.replace(/( must be an integer, got ).*/, '$1…')}`; // std::to_string and JS print numbers apart
    }
  };

  it.each(kernelsOf('cuda'))("$name: the launcher gets every argument in the table's order and C++ type", ({ name, params }) => {
    const args = params.map(([, kind], i) => good(kind, i));
    const expected = params.map(([, kind], i) => (kind === 'f32' ? Math.fround(args[i]!) : args[i]));
    let message = '';
    try {
      addon[name]!(...args);
    } catch (e) {
      message = (e as Error).message;
    }
    const [called, ...got] = message.split(' ');
    expect(called).toBe(name);
    expect(got.map(Number)).toEqual(expected);
  });

  it.each(kernelsOf('cuda'))(
    '$name: a missing, non-number, negative, fractional or unsafe argument is refused by both, with the same error',
    ({ name, params }) => {
      const args = params.map(([, kind], i) => good(kind, i));
      let compared = 0;
      params.forEach(([p, kind], i) => {
        const cases: unknown[][] = [args.slice(0, i), [...args.slice(0, i), 'x', ...args.slice(i + 1)]];
        if (kind !== 'f32' && kind !== 'f64') {
          cases.push(...[0.5, 2 ** 53 + 2].map((v) => [...args.slice(0, i), v, ...args.slice(i + 1)]));
          if (kind === 'count' || kind === 'ptr' || kind === 'cptr') cases.push([...args.slice(0, i), -1, ...args.slice(i + 1)]);
        }
        for (const c of cases) {
          const fromAddon = outcome(addon[name]!, c);
          expect(fromAddon, `${name}(${p}) with ${String(c[i])}`).toMatch(
            new RegExp(`^(TypeError|RangeError): (argument ${i} \\(${p}\\)|${p} )`),
          );
          expect(outcome(mock[name]!, c), `${name}(${p}) with ${String(c[i])}`).toBe(fromAddon);
          compared++;
        }
      });
      expect(compared).toBeGreaterThanOrEqual(params.length * 2);
    },
  );
});
