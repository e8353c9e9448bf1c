#!/usr/bin/env node
// `npm run build` only where a source changed since the last build: `npm run demo` on an
// unchanged tree starts at once. The kernels (assembly/ -> build/*.wasm) and the
// TypeScript (src/ -> dist/) each rebuild when a source is newer than their oldest output.
//   node scripts/build-if-stale.mjs            # build if stale, then exit
//   node scripts/build-if-stale.mjs --check    # only say 'up to date' (exit 0) or 'stale: <file>' (exit 1)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const WASM = ['simd', 'relaxed', 'scalar', 'simd-mt', 'relaxed-mt'].map((b) => `build/bnb.${b}.wasm`);
// each step: its sources, its outputs, the npm script that makes them
const STEPS = [
  { script: 'build:wasm', sources: ['assembly', 'asconfig.json', 'package.json'], outputs: WASM },
  {
    script: 'build:ts',
    sources: ['src', 'tsconfig.json', 'package.json', 'scripts/inline-wasm.mjs', ...WASM],
    outputs: ['dist', 'dist/cli.js', 'dist/core.js', 'dist/backend/wasm/runtime/inline-bytes.js'],
  },
];

function* files(path) {
  const full = join(root, path);
  if (!existsSync(full)) return;
  if (statSync(full).isDirectory()) for (const f of readdirSync(full)) yield* files(join(path, f));
  else yield path;
}

/** Why a step must run, or null. */
function stale(step) {
  const missing = step.outputs.find((f) => !existsSync(join(root, f)));
  if (missing) return `${missing} is missing`;
  const oldest = Math.min(...step.outputs.flatMap((o) => [...files(o)]).map((f) => statSync(join(root, f)).mtimeMs));
  for (const f of step.sources.flatMap((s) => [...files(s)])) if (statSync(join(root, f)).mtimeMs > oldest) return `${f} changed`;
  return null;
}

const why = STEPS.map(stale);
if (process.argv.includes('--check')) {
  const first = why.find((w) => w !== null);
  console.log(first === undefined ? 'up to date' : `stale: ${first}`);
  process.exit(first === undefined ? 0 : 1);
}
for (const [i, step] of STEPS.entries()) {
  const reason = i === 0 ? why[0] : stale(step); // the wasm step makes the ts step stale
  if (reason === null) continue;
  console.error(`bnbjs: npm run ${step.script} (${reason})`);
  const r = spawnSync('npm', ['run', step.script, '--silent'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
