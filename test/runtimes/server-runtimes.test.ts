// The smoke suite in Node, Deno and Bun, each importing bnbjs from node_modules as a
// user's app does and resolving the package's "exports" conditions itself. Deno runs
// without any permission flag: the "deno" condition gives the inlined kernels.
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, OLD_NODE, expectSmokePassed, makeApp, missing, reportFrom, run } from './app.js';

const RUNNER = `import * as lib from 'bnbjs';
import fixtures from './fixtures.js';
import { decodeFixtures, smoke, threadRun } from './smoke.js';

const runtime = typeof Deno !== 'undefined' ? 'deno ' + Deno.version.deno : typeof Bun !== 'undefined' ? 'bun ' + Bun.version : 'node ' + process.version;
// Threads (Node and Bun: worker_threads; Deno: Workers): the same bytes on 2 threads as on 1, jobs run on a worker.
const threaded = await threadRun(lib);
const extra = { runtime, resolved: import.meta.resolve('bnbjs'), ...threaded };
if (typeof Deno !== 'undefined') extra.permissions = Object.fromEntries(['read', 'env', 'net', 'ffi', 'run'].map((name) => [name, Deno.permissions.querySync({ name }).state]));
console.log('SMOKE ' + JSON.stringify({ ...smoke(lib, decodeFixtures(fixtures)), ...extra, at: Date.now() }));
`;

const app = makeApp({ 'run.js': RUNNER });
afterAll(() => app.remove());

const RUNTIMES: {
  name: string;
  cmd: string;
  args: string[];
  entry: string;
  env: Record<string, string>;
  build?: string;
  threads: number;
}[] = [
  { name: 'Node', cmd: process.execPath, args: ['run.js'], entry: 'dist/index.js', env: {}, threads: 2 },
  {
    name: 'Node, BNBJS_WASM=scalar (the override)',
    cmd: process.execPath,
    args: ['run.js'],
    entry: 'dist/index.js',
    env: { BNBJS_WASM: 'scalar' },
    build: 'scalar',
    threads: 2,
  },
  // before process.getBuiltinModule (20.16) and without relaxed SIMD unflagged: the SIMD build
  // (the flag: the runner's import.meta.resolve, unflagged in 20.6)
  {
    name: 'Node 20.0.0',
    cmd: OLD_NODE,
    args: ['--experimental-import-meta-resolve', 'run.js'],
    entry: 'dist/index.js',
    env: {},
    build: 'simd',
    threads: 2,
  },
  // No --allow-* flag: the bytes path must not need one. DENO_DIR keeps its cache in the app folder.
  {
    name: 'Deno',
    cmd: BIN('deno'),
    args: ['run', 'run.js'],
    entry: 'dist/inline.js',
    env: { DENO_DIR: `${app.dir}/.deno`, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
    threads: 2,
  },
  { name: 'Bun', cmd: BIN('bun'), args: ['run.js'], entry: 'dist/index.js', env: { NO_COLOR: '1' }, threads: 2 },
];

describe('runtime smoke suite', () => {
  for (const r of RUNTIMES) {
    const why = r.cmd === process.execPath ? null : missing(r.cmd);
    if (why)
      console.warn(
        `${r.name} smoke test skipped: ${why} (npm install${r.cmd === OLD_NODE ? ' --prefix test/node-versions' : ''} installs it)`,
      );
    (why ? it.skip : it)(`${r.name}${why ? ` (skipped: ${why})` : ''}`, async () => {
      const out = await run(r.cmd, r.args, { cwd: app.dir, env: { ...process.env, BNBJS_WASM: '', ...r.env } });
      const report = reportFrom(out.stdout);
      const lag = Date.now() - Number(report?.at);
      expect(report, `${r.name} exited ${out.code} without a report:\n${out.stdout}\n${out.stderr}`).toBeDefined();
      expectSmokePassed(r.name, report);
      expect(out.code, out.stderr).toBe(0);
      expect(String(report!.resolved), `${r.name} resolved bnbjs to the wrong entry`).toMatch(
        new RegExp(`/${r.entry.replace('.', '\\.')}$`),
      );
      expect(report!.build).toBe(r.build ?? (report!.features.relaxedSimd ? 'relaxed' : 'simd'));
      expect(
        [report!.threads, report!.threadedSame, report!.threadError],
        `${r.name}: threads, and the same bytes on 2 threads as on 1`,
      ).toEqual([r.threads, true, undefined]);
      expect([report!.resident, report!.residentSame], `${r.name}: wasmTensor resident where threads run, the same bytes`).toEqual([
        r.threads > 1 && report!.build !== 'scalar',
        true,
      ]);
      if (report!.build === 'scalar') expect(report!.workerJobs, 'the scalar build runs on the calling thread').toBe(0);
      else expect(report!.workerJobs, `${r.name}: no job ran on a worker`).toBeGreaterThan(0);
      // an idle pool lets the process end (Deno: closed after IDLE_MS, its Workers having no unref)
      expect(lag, `${r.name} kept running after its last op`).toBeLessThan(10_000);
      if (r.name === 'Deno')
        expect(report!.permissions, 'Deno ran with a permission granted').toEqual({
          read: 'prompt',
          env: 'prompt',
          net: 'prompt',
          ffi: 'prompt',
          run: 'prompt',
        });
      console.log(
        `${report!.runtime}: ${report!.results.length} smoke checks passed on the ${report!.build} build (${report!.resolved}), ${report!.threads} threads (${report!.workerJobs} jobs on a worker), exited ${lag} ms after its report`,
      );
    });
  }
});
