// Bundle sizes: each entry point of bnbjs bundled by esbuild as an app would bundle
// it (minified ESM), raw and gzip -9, and each .wasm beside the package.
// Usage: npm run build && node bench/bundle-size.mjs
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = new URL('../', import.meta.url);
const ENTRIES = [
  ['browser (`browser` condition): the core JS, kernels fetched', 'dist/browser.js', 'browser'],
  ['Workers (`workerd`/`worker`): core JS, .wasm imported as modules', 'dist/worker.js', 'neutral'],
  ['inline (`deno`, `bnbjs/inline`): core JS + the four builds in base64 (the threaded one included)', 'dist/inline.js', 'neutral'],
  ['Node/Bun (`node`/`bun`/`default`): core JS + file loader, CUDA and Gaudi backends', 'dist/index.js', 'node'],
];

const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const gz = (b) => gzipSync(b, { level: 9 }).length;

console.log('| what | minified | gzip -9 |\n|---|---:|---:|');
for (const [what, entry, platform] of ENTRIES) {
  const r = await esbuild.build({
    entryPoints: [new URL(entry, root).pathname],
    bundle: true,
    minify: true,
    format: 'esm',
    platform,
    write: false,
    logLevel: 'silent',
    plugins: [{ name: 'wasm', setup: (b) => b.onResolve({ filter: /\.wasm$/ }, (a) => ({ path: a.path, external: true })) }],
  });
  const js = r.outputFiles[0].contents;
  console.log(`| ${what} | ${kb(js.length)} | ${kb(gz(js))} |`);
}
for (const build of ['simd', 'relaxed', 'scalar', 'simd-mt', 'relaxed-mt']) {
  const b = readFileSync(new URL(`build/bnb.${build}.wasm`, root));
  console.log(`| build/bnb.${build}.wasm | ${kb(b.length)} | ${kb(gz(b))} |`);
}
