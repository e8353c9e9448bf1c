// The smoke suite in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), on pages served from localhost: a plain page, and a
// cross-origin isolated one (COOP + COEP) where a module Worker runs the suite too,
// writes into a shared WebAssembly.Memory and runs large ops on Workers of its own
// (threads; the page's main thread, which may not block, stays on one). bnbjs is
// imported unbundled through an import map built from the package's "browser"
// export condition.
import { readFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { extname, join, normalize } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, SmokeReport, expectSmokePassed, fixturesModule, missing } from './app.js';

const CHROMIUM = process.env.BNBJS_CHROMIUM ?? '/usr/bin/chromium';
// Without these Chromium waits on the network this machine does not have.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.html': 'text/html',
  '.json': 'application/json',
  '.map': 'application/json',
};
const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** The package's export for `conditions`, as an import-map generator (JSPM) resolves it. */
function resolveExport(target: unknown, conditions: string[]): string | null {
  if (typeof target === 'string') return target;
  if (target === null || typeof target !== 'object') return null;
  for (const [k, v] of Object.entries(target)) {
    if (!conditions.includes(k)) continue;
    const r = resolveExport(v, conditions);
    if (r) return r;
  }
  return null;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const CONDITIONS = ['browser', 'import', 'default'];
const entryOf = (subpath: string) => resolveExport(pkg.exports[subpath], CONDITIONS)!.replace(/^\.\//, '');
const page = (kind: string) => `<!doctype html><html data-entry="${kind}"><meta charset="utf-8"><title>${kind}</title>
<script type="importmap">${JSON.stringify({ imports: { bnbjs: `./node_modules/bnbjs/${entryOf(kind === 'inline' ? './inline' : '.')}` } })}</script>
<script type="module" src="./page.js"></script>`;

/** /plain/*, /coi/* and /inline/* serve the same files; /coi/* with the cross-origin isolation headers. */
function serve(): Server {
  const fixtures = fixturesModule();
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const m = /^\/(plain|coi|inline)\/(.*)$/.exec(url.pathname);
    const send = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...(m?.[1] === 'coi' ? ISOLATION : {}) });
      res.end(body);
    };
    if (!m) return send(404, 'text/plain', 'not found');
    const path = normalize(m[2]!);
    if (path === 'index.html') return send(200, TYPES['.html']!, page(m[1]!));
    if (path === 'fixtures.js') return send(200, TYPES['.js']!, fixtures);
    const files: Record<string, string> = {
      'smoke.js': 'test/runtimes/smoke.js',
      'page.js': 'test/runtimes/browser/page.js',
      'worker.js': 'test/runtimes/browser/worker.js',
    };
    let file = files[path];
    const inPackage = /^node_modules\/bnbjs\/((dist\/[\w/.-]+\.js)|(build\/bnb\.[\w-]+\.wasm)|package\.json)$/.exec(path);
    if (!file && inPackage && !path.includes('..')) file = inPackage[1]!;
    if (!file) return send(404, 'text/plain', 'not found');
    try {
      send(200, TYPES[extname(file)] ?? 'application/octet-stream', readFileSync(join(ROOT, file)));
    } catch {
      send(404, 'text/plain', 'not found');
    }
  });
}

const why = missing(CHROMIUM);
if (why) console.warn(`browser tests skipped: ${why} (.ci/run installs Debian's chromium; BNBJS_CHROMIUM names another binary)`);
let server: Server;
let base = '';
let browser: Browser | null = null;

describe.skipIf(why)(`headless Chromium${why ? ` (skipped: ${why}; .ci/run installs Debian's chromium)` : ''}`, () => {
  beforeAll(async () => {
    server = serve();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://localhost:${(server.address() as { port: number }).port}`;
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  async function smokeIn(kind: 'plain' | 'coi' | 'inline'): Promise<SmokeReport & Record<string, any>> {
    const context = await browser!.newContext();
    const tab = await context.newPage();
    const log: string[] = [];
    tab.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
    tab.on('pageerror', (e) => log.push(`page error: ${e.message}`));
    tab.on('requestfailed', (r) => log.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    try {
      await tab.goto(`${base}/${kind}/index.html`, { timeout: 30_000 });
      await tab.waitForFunction(() => 'smokeReport' in window, null, { timeout: 30_000 });
      const report = (await tab.evaluate(() => (window as unknown as { smokeReport: Promise<unknown> }).smokeReport)) as SmokeReport &
        Record<string, any>;
      expect(report.error, `${kind} page failed: ${report.error}\n${log.join('\n')}`).toBeUndefined();
      return report;
    } catch (e) {
      throw new Error(`${kind} page: ${(e as Error).message}\n${log.join('\n')}`);
    } finally {
      await context.close();
    }
  }

  it('plain page: the smoke suite after `await init()` (the relaxed-SIMD build fetched beside the package)', async () => {
    const r = await smokeIn('plain');
    expect(r.beforeInit, 'an op before init() must be an E_INIT error naming init()').toMatch(/^E_INIT: .*await init\(\)/);
    expect(r.features.relaxedSimd, 'Chromium validates relaxed SIMD').toBe(true);
    expect(r.initBuild).toBe('relaxed');
    expectSmokePassed('Chromium (plain page)', r);
    expect(r.crossOriginIsolated).toBe(false);
    expect([r.threads, r.threadedSame, r.threadError, r.workerJobs], 'no threads without cross-origin isolation').toEqual([
      1,
      true,
      undefined,
      0,
    ]);
    expect([r.resident, r.residentSame], 'wasmTensor is an ordinary copy without a shared memory').toEqual([false, true]);
    console.log(
      `Chromium ${browser!.version()}, plain page: ${r.results.length} smoke checks passed on the ${r.build} build; features ${JSON.stringify(r.features)}`,
    );
  });

  it('bnbjs/inline: the smoke suite without init(), the kernels compiled from the inlined bytes', async () => {
    const r = await smokeIn('inline');
    expect(r.beforeInit, 'an op before init() must work with the inlined kernels').toBe('no error');
    expectSmokePassed('Chromium (bnbjs/inline)', r);
    expect(r.build).toBe('relaxed');
    expect([r.threads, r.threadError], 'no threads without cross-origin isolation').toEqual([1, undefined]);
  });

  it('cross-origin isolated page: SharedArrayBuffer, and the smoke suite in a Worker sharing memory with the page', async () => {
    const r = await smokeIn('coi');
    expectSmokePassed('Chromium (cross-origin isolated page)', r);
    expect(r.crossOriginIsolated, 'COOP/COEP headers did not make the page cross-origin isolated').toBe(true);
    expect(r.sharedArrayBuffer).toBe(true);
    expect(r.features.threads).toBe(true);
    expect(r.worker?.error, `worker failed: ${r.worker?.error}`).toBeUndefined();
    expectSmokePassed('Chromium (Worker on the cross-origin isolated page)', r.worker);
    expect(r.worker.crossOriginIsolated).toBe(true);
    expect(r.worker.sharedMemory).toBe(true);
    expect(r.worker.sharedCell, "the Worker's write to the shared memory is not visible to the page").toBe(42);
    expect([r.threads, r.threadedSame, r.threadError, r.workerJobs], "the page's main thread cannot block: one thread, no error").toEqual([
      1,
      true,
      undefined,
      0,
    ]);
    expect([r.worker.threads, r.worker.threadedSame, r.worker.threadError], 'the Worker: 2 threads, the same bytes as on 1').toEqual([
      2,
      true,
      undefined,
    ]);
    expect(r.worker.workerJobs, 'no job ran on a Worker started by the Worker').toBeGreaterThan(0);
    expect(
      [r.resident, r.residentSame, r.worker.resident, r.worker.residentSame],
      'wasmTensor: an ordinary copy on the main thread, resident in the Worker, the same bytes',
    ).toEqual([false, true, true, true]);
    console.log(
      `Chromium ${browser!.version()}, cross-origin isolated page and its Worker: ${r.results.length} + ${r.worker.results.length} smoke checks passed; shared memory written by the Worker; 2 threads in the Worker (${r.worker.workerJobs} jobs on its Workers)`,
    );
  });
});
