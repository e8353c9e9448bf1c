// The smoke suite in workerd (the runtime of Cloudflare Workers, npm package
// workerd): a Worker importing bnbjs, bundled by esbuild with the conditions
// wrangler uses (workerd, worker, browser) and the .wasm imports left as modules,
// which the generated config hands to workerd as "wasm" modules.
import { ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, SmokeReport, expectSmokePassed, freePort, makeApp, missing } from './app.js';

const WORKERD = BIN('workerd');
const why = missing(WORKERD);
if (why) console.warn(`workerd test skipped: ${why} (npm install installs the workerd devDependency)`);

const config = (port: number, wasm: string[]) => `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .smokeWorker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const smokeWorker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
${wasm.map((w) => `    (name = "${w}", wasm = embed "${w}"),`).join('\n')}
  ],
  compatibilityDate = "2025-01-01",
);
`;

const app = makeApp({ 'worker-src.js': readFileSync(join(ROOT, 'test/runtimes/workerd/worker.js'), 'utf8') });
let workerd: ChildProcess | null = null;
let log = '';

/** Bundles the Worker; every .wasm import becomes an external module of that name next to the bundle. */
async function bundle(): Promise<string[]> {
  const esbuild = await import('esbuild');
  const wasm: string[] = [];
  await esbuild.build({
    entryPoints: [join(app.dir, 'worker-src.js')],
    outfile: join(app.dir, 'worker.js'),
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    logLevel: 'silent',
    plugins: [
      {
        name: 'wasm-modules',
        setup(b) {
          b.onResolve({ filter: /\.wasm$/ }, (args) => {
            const name = basename(args.path);
            copyFileSync(join(args.resolveDir, args.path), join(app.dir, name));
            if (!wasm.includes(name)) wasm.push(name);
            return { path: `./${name}`, external: true };
          });
        },
      },
    ],
  });
  return wasm;
}

async function fetchWhenUp(url: string, ms: number): Promise<Response> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fetch(url);
    } catch (e) {
      if (Date.now() > end || workerd?.exitCode !== null)
        throw new Error(`workerd did not answer at ${url}: ${(e as Error).message}\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe.skipIf(why)(`workerd${why ? ` (skipped: ${why})` : ''}`, () => {
  let port = 0;
  let wasm: string[] = [];

  beforeAll(async () => {
    wasm = await bundle();
    port = await freePort();
    writeFileSync(join(app.dir, 'config.capnp'), config(port, wasm));
    workerd = spawn(WORKERD, ['serve', 'config.capnp'], { cwd: app.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    workerd.stdout!.on('data', (d) => (log += d));
    workerd.stderr!.on('data', (d) => (log += d));
  }, 60_000);

  afterAll(() => {
    workerd?.kill();
    app.remove();
  });

  it('a Worker importing bnbjs with the .wasm as modules passes the smoke suite', async () => {
    expect(wasm.sort(), 'the Worker bundle must import the three builds as Wasm modules').toEqual([
      'bnb.relaxed.wasm',
      'bnb.scalar.wasm',
      'bnb.simd.wasm',
    ]);
    expect(readFileSync(join(app.dir, 'worker.js'), 'utf8')).not.toMatch(/getBuiltinModule|from\s*["']node:/);
    const res = await fetchWhenUp(`http://127.0.0.1:${port}/`, 30_000);
    const text = await res.text();
    expect(res.status, `workerd answered ${res.status}: ${text}\n${log}`).toBe(200);
    const report = JSON.parse(text) as SmokeReport & { compileFromBytes: string; importMetaUrl: string };
    expectSmokePassed('workerd', report);
    expect(report.build).toBe(report.features.relaxedSimd ? 'relaxed' : 'simd');
    // The constraint the Worker entry exists for: this runtime does refuse bytes.
    expect(report.compileFromBytes).toMatch(/^refused/);
    const scalar = (await (await fetch(`http://127.0.0.1:${port}/?build=scalar`)).json()) as SmokeReport;
    expectSmokePassed("workerd, setWasmBuild('scalar')", scalar);
    expect(scalar.build).toBe('scalar');
    console.log(
      `workerd: ${report.results.length} smoke checks passed on the simd build and on the scalar one; WebAssembly.compile(bytes) ${report.compileFromBytes}; import.meta.url = ${report.importMetaUrl}`,
    );
  });
});
