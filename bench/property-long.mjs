#!/usr/bin/env node
// The property tests of test/property/ with many more cases and another seed:
//
//   node bench/property-long.mjs [seed] [scale]      (defaults: a random seed, 50x the CI runs)
//
// The properties are defined once (test/property/props-*.ts) and run through vitest;
// this script only sets BNBJS_PROP_SEED and BNBJS_PROP_SCALE and reports. A failure
// prints fast-check's counterexample and the seed that reproduces it.
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

const seed = process.argv[2] !== undefined ? Number(process.argv[2]) : Math.floor(Math.random() * 2 ** 31);
const scale = process.argv[3] !== undefined ? Number(process.argv[3]) : 50;
if (!Number.isSafeInteger(seed) || !(scale > 0)) {
  console.error('usage: node bench/property-long.mjs [seed (integer)] [scale (> 0)]');
  process.exit(2);
}
const root = fileURLToPath(new URL('..', import.meta.url));
console.log(`property tests: seed ${seed}, ${scale}x the CI runs, ${cpus().length} cores, Node ${process.version}`);
const started = performance.now();
const r = spawnSync(
  process.execPath,
  [`${root}/node_modules/vitest/vitest.mjs`, 'run', 'test/property/', '--testTimeout=0', '--reporter=verbose'],
  { cwd: root, stdio: 'inherit', env: { ...process.env, BNBJS_PROP_SEED: String(seed), BNBJS_PROP_SCALE: String(scale) } },
);
const minutes = (performance.now() - started) / 60000;
console.log(
  `\nseed ${seed}, scale ${scale}: ${r.status === 0 ? 'all properties hold' : 'FAILED (rerun with this seed to reproduce)'} in ${minutes.toFixed(1)} min`,
);
process.exit(r.status ?? 1);
