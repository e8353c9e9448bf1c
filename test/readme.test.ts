// The README's examples: the API example runs as written against the built package, and
// every ```js / ```ts block of README.md and docs/*.md type-checks against the package's
// published types, resolved through package.json "exports" with the block's runtime
// conditions, as an app would.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
// Each block named by its file and line: readme-<line>.ts, docs-<page>-<line>.ts.
const codeBlocks = (file: string, prefix: string) => {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/```(js|ts)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1]!,
    code: m[2]!,
    name: `${prefix}-${text.slice(0, m.index).split('\n').length + 1}`,
  }));
};
const readmeBlocks = codeBlocks('README.md', 'readme');
const docBlocks = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .sort()
  .flatMap((f) => codeBlocks(`docs/${f}`, `docs-${f.slice(0, -3)}`));
const blocks = [...readmeBlocks, ...docBlocks];

// The runtime each block is written for (its first comment line says so), and the export
// conditions its `import ... from 'bnbjs'` resolves with there.
const RUNTIMES = [
  { name: 'deno', test: /^\/\/ Deno/, conditions: ['deno'], types: [] },
  { name: 'browser', test: /^\/\/ Browsers/, conditions: ['browser'], types: [] },
  { name: 'worker', test: /^\/\/ Cloudflare Workers/, conditions: ['workerd', 'worker'], types: [] },
  { name: 'node', test: /(?:)/, conditions: [], types: ['node'] },
];

// Fragments name what the prose around them defines: declared here with the types they have.
const PRELUDES: [RegExp, string][] = [
  [
    /wasmTensor\(packedWeight\)/,
    `import { dequantize4bit, gemv4bit, wasmTensor } from 'bnbjs';
import type { QuantState, Tensor } from 'bnbjs';
declare const packedWeight: Tensor, state: QuantState, tokens: Tensor[];`,
  ],
];

// A wrong call, checked with the blocks: the check must reject it (it sees the package's types).
const CONTROL = `import { quantize4bit, tensor } from 'bnbjs';
quantize4bit(tensor(new Float32Array(64)), { quantType: 'nf5' });
`;

describe('README', () => {
  it('the API example runs and prints what its comments say', () => {
    const dir = join(ROOT, 'build');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'readme-example.mjs');
    writeFileSync(file, readmeBlocks[0]!.code);
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8' });
    expect(out).toContain('uint8 [ 64, 1 ]');
    expect(out).toContain('absmax, quant_map, nested_absmax, nested_quant_map, quant_state.bitsandbytes__nf4');
    expect(out).toMatch(
      /\{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": \[2, 64\], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": [0-9.e-]+\}/,
    );
    expect(out).toContain('float32 [ 2, 64 ] true');
  });

  it("every js/ts code block type-checks against the package types, with its runtime's export conditions", async () => {
    expect(readmeBlocks.length).toBeGreaterThanOrEqual(1);
    expect(docBlocks.length).toBeGreaterThanOrEqual(6);
    // under the repository, so that 'bnbjs' resolves to this package by its name (self-reference through "exports")
    const dir = join(ROOT, 'build/readme');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const groups = new Map<string, { runtime: (typeof RUNTIMES)[number]; lang: string; files: string[] }>();
    const add = (runtime: (typeof RUNTIMES)[number], lang: string, name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      const key = `${runtime.name}-${lang}`;
      if (!groups.has(key)) groups.set(key, { runtime, lang, files: [] });
      groups.get(key)!.files.push(name);
    };
    for (const b of blocks) {
      const runtime = RUNTIMES.find((r) => r.test.test(b.code))!;
      const prelude = PRELUDES.filter(([re]) => re.test(b.code))
        .map(([, p]) => `${p}\n`)
        .join('');
      // Deno's npm: specifier names the npm package, resolved with the deno condition
      const code = runtime.name === 'deno' ? b.code.replaceAll("from 'npm:bnbjs'", "from 'bnbjs'") : b.code;
      // each file a module of its own (a block without imports would be a script sharing globals)
      add(runtime, b.lang, `${b.name}.ts`, `${prelude}${code}\nexport {};\n`);
    }
    add(
      RUNTIMES.find((r) => r.name === 'node')!,
      'js',
      'control.ts',
      CONTROL,
    );
    const results = await Promise.all(
      [...groups].map(async ([key, g]) => {
        const config = join(dir, `tsconfig.${key}.json`);
        writeFileSync(
          config,
          JSON.stringify({
            compilerOptions: {
              strict: true,
              // a JavaScript block cannot annotate its parameters (the Worker's fetch(request))
              noImplicitAny: g.lang === 'ts',
              noEmit: true,
              skipLibCheck: true,
              target: 'ES2022',
              module: 'NodeNext',
              moduleResolution: 'NodeNext',
              lib: ['ES2022', 'DOM'],
              types: g.runtime.types,
              customConditions: g.runtime.conditions,
            },
            files: g.files,
          }),
        );
        const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
        const out = await promisify(execFile)(process.execPath, [tsc, '-p', config], { cwd: ROOT }).then(
          (r) => r.stdout,
          (e) => String(e.stdout),
        );
        return out.split('\n').filter(Boolean);
      }),
    );
    const errors = results.flat();
    const control = errors.filter((e) => e.includes('control.ts'));
    expect(control.join('\n'), 'the check did not reject a wrong call').toMatch(/control\.ts\(2,\d+\): error TS2322: Type '"nf5"'/);
    expect(
      errors.filter((e) => !control.includes(e)),
      'README and docs code blocks (build/readme/readme-<line>.ts, docs-<page>-<line>.ts) do not type-check',
    ).toEqual([]);
  }, 120_000);

  it('the quick start names the scripts that exist', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const quick = /\n## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'))?.[1] ?? '';
    expect(quick).toMatch(/^npm install && npm run demo /m);
    expect(quick).toMatch(/^npm test /m);
    expect(pkg.scripts.demo).toBeDefined();
    expect(pkg.scripts.test).toContain('vitest run');
    expect(pkg.scripts).not.toHaveProperty('install');
    expect(pkg.scripts).not.toHaveProperty('postinstall');
  });
});
