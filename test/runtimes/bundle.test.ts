// What esbuild pulls in when an app bundles bnbjs for each target: the export
// condition picks the right entry, and the browser, Worker and inline bundles hold
// none of the Node-only parts (node: modules, files, the CUDA addon, Gaudi's probe,
// worker threads).
import { join } from 'node:path';
import type { Metafile } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, makeApp } from './app.js';

const app = makeApp({
  'app.js': "import * as lib from 'bnbjs';\nexport default lib;\n",
  'app-inline.js': "import * as lib from 'bnbjs/inline';\nexport default lib;\n",
});
afterAll(() => app.remove());

// esbuild is a devDependency; where it is not installed (a machine with a partial
// node_modules) the bundles cannot be built: skipped, saying why.
const why = await import('esbuild').then(
  () => null,
  (e: Error) => `esbuild cannot be imported (${e.message.split('\n')[0]})`,
);
if (why) console.warn(`esbuild bundle tests skipped: ${why} (npm install installs the esbuild devDependency)`);

interface Target {
  name: string;
  entry: string;
  platform: 'browser' | 'neutral' | 'node';
  conditions: string[];
  expect: string;
}

const TARGETS: Target[] = [
  { name: 'browser', entry: 'app.js', platform: 'browser', conditions: [], expect: 'dist/browser.js' },
  {
    name: "Cloudflare Worker (wrangler's conditions)",
    entry: 'app.js',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    expect: 'dist/worker.js',
  },
  { name: 'Deno', entry: 'app.js', platform: 'neutral', conditions: ['deno'], expect: 'dist/inline.js' },
  { name: 'bnbjs/inline for browsers', entry: 'app-inline.js', platform: 'browser', conditions: [], expect: 'dist/inline.js' },
];

// Modules that only make sense with a file system, a native addon or Node's threads.
const NODE_ONLY = [
  /^dist\/backend\/(cuda|hpu)\//,
  /^dist\/backend\/probe\.js$/,
  /^dist\/io\/safetensors\/(file-[a-z-]+|sharded-[a-z]+)\.js$/,
  /^dist\/io\/(open|files|lock|swap|temp)\.js$/,
  /^dist\/checkpoint\//,
  /^dist\/wasm\/file-loader\.js$/,
  /^dist\/threads\/node-host\.js$/,
  /^dist\/runtime\/node-builtins\.js$/,
  /^dist\/(index|node|cli)\.js$/,
];
const NODE_IMPORT = /^(node:|fs$|fs\/|path$|os$|module$|url$|child_process$|worker_threads$)|\.node$/;

async function build(t: Target): Promise<{ meta: Metafile; text: string }> {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints: [join(app.dir, t.entry)],
    bundle: true,
    write: false,
    metafile: true,
    format: 'esm',
    platform: t.platform,
    conditions: t.conditions,
    absWorkingDir: ROOT,
    logLevel: 'silent',
    // the Worker's .wasm imports stay modules (wrangler uploads them as Wasm modules)
    plugins: [{ name: 'wasm', setup: (b) => b.onResolve({ filter: /\.wasm$/ }, (a) => ({ path: a.path, external: true })) }],
  });
  return { meta: r.metafile, text: r.outputFiles[0]!.text };
}

describe.skipIf(why)(`esbuild bundles of bnbjs${why ? ` (skipped: ${why})` : ''}`, () => {
  for (const t of TARGETS) {
    it(`${t.name}: resolves ${t.expect}, without Node-only modules`, async () => {
      const { meta, text } = await build(t);
      const inputs = Object.keys(meta.inputs);
      expect(inputs, `the ${t.name} condition resolved another entry`).toContain(t.expect);
      expect(
        inputs.filter((f) => NODE_ONLY.some((re) => re.test(f))),
        `${t.name} bundle pulled in Node-only modules`,
      ).toEqual([]);
      const imports = Object.entries(meta.inputs).flatMap(([f, i]) => i.imports.map((x) => ({ from: f, path: x.path })));
      expect(
        imports.filter((x) => NODE_IMPORT.test(x.path)),
        `${t.name} bundle imports Node modules`,
      ).toEqual([]);
      const externals = Object.values(meta.outputs).flatMap((o) => o.imports.map((x) => x.path));
      expect(
        externals.every((p) => p.endsWith('.wasm')),
        `unexpected external imports: ${externals}`,
      ).toBe(true);
      if (t.expect === 'dist/worker.js')
        expect(externals.map((p) => p.split('/').pop()).sort()).toEqual(['bnb.relaxed.wasm', 'bnb.scalar.wasm', 'bnb.simd.wasm']);
      else expect(externals).toEqual([]);
      for (const word of ['getBuiltinModule', 'bnbjs_cuda.node', 'worker_threads', 'readFileSync'])
        expect(text, `${t.name} bundle mentions ${word}`).not.toContain(word);
    });
  }

  it('Node (platform node): the default entry, with the native backends (what the checks above would catch)', async () => {
    const { meta } = await build({ name: 'node', entry: 'app.js', platform: 'node', conditions: [], expect: 'dist/index.js' });
    const inputs = Object.keys(meta.inputs);
    expect(inputs).toContain('dist/index.js');
    expect(inputs.some((f) => f.startsWith('dist/backend/cuda/'))).toBe(true);
    expect(inputs).toContain('dist/backend/wasm/runtime/file-loader.js');
    expect(inputs).toContain('dist/backend/wasm/threads/node-host.js');
  });
});
