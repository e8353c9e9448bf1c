// What `npm pack` ships (package.json "files"), and the package installed from that
// tarball into an app's node_modules: it works, and its CUDA message fits a package
// that has no build script (scripts/ and native/ are not shipped).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const npm = (args: string[], cwd = ROOT) =>
  execFileSync('npm', [...args, '--ignore-scripts'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const tmp = mkdtempSync(join(tmpdir(), 'bnbjs-package-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// No BNBJS_* settings from the caller (npm run test:cuda-mock names a mock addon).
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BNBJS_')));

/** The probe's CUDA reason and a small op's result, with bnbjs resolved from `cwd`. */
function runApp(cwd: string): { reason: string; packed: number[] } {
  writeFileSync(
    join(cwd, 'probe.mjs'),
    `import { probe, quantize4bit, tensor } from 'bnbjs';
const [p] = quantize4bit(tensor(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i))), { quantType: 'nf4' });
console.log(JSON.stringify({ reason: probe().cuda.reason, packed: [...p.data.slice(0, 4)] }));
`,
  );
  return JSON.parse(execFileSync(process.execPath, ['probe.mjs'], { cwd, env, encoding: 'utf8' }));
}

describe('the npm package', () => {
  it('ships the license, the security policy, the README, the CLI, the kernels and every export; no tests or benchmarks', () => {
    const files: string[] = JSON.parse(npm(['pack', '--dry-run', '--json']))[0].files.map((f: { path: string }) => f.path);
    for (const f of ['LICENSE', 'SECURITY.md', 'README.md', 'package.json', 'dist/cli.js', 'dist/index.js', 'dist/index.d.ts'])
      expect(files, f).toContain(f);
    const values = (v: unknown): string[] => (typeof v === 'string' ? [v] : Object.values(v as object).flatMap(values));
    const targets = values([pkg.bin, pkg.exports]).map((p) => p.replace(/^\.\//, ''));
    expect(targets.filter((t) => /^build\/.*\.wasm$/.test(t)).length).toBe(5);
    expect(
      targets.filter((t) => !files.includes(t)),
      'exports or bin targets missing from the tarball',
    ).toEqual([]);
    expect(
      files.filter((f) => /^(test|bench|src|scripts|native)\//.test(f)),
      'development files in the tarball',
    ).toEqual([]);
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 the bnbjs authors\n/);
    expect(pkg.license).toBe('MIT');
  });

  it('installed from the tarball: ops work, and the CUDA message says how to get an addon without the build script', () => {
    const tarball = JSON.parse(npm(['pack', '--json', '--pack-destination', tmp]))[0].filename as string;
    const app = join(tmp, 'app'),
      installed = join(app, 'node_modules/bnbjs');
    mkdirSync(installed, { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    execFileSync('tar', ['-xzf', join(tmp, tarball), '-C', installed, '--strip-components=1']);
    expect(existsSync(join(installed, 'scripts/build-cuda.mjs'))).toBe(false);

    const got = runApp(app);
    const addon = join(installed, 'build/bnbjs_cuda.node');
    expect(got.reason).toBe(
      `the CUDA addon is not built (${addon}): the installed package has no CUDA sources; build it in a clone of the bnbjs repository ` +
        `(npm run build:cuda, needs nvcc and cmake) and copy its build/bnbjs_cuda.node to ${addon}, or point BNBJS_CUDA_ADDON at it`,
    );
    // the same op from this checkout: the same bytes, and the checkout's message names its script
    const here = runApp(join(ROOT, 'build'));
    expect(got.packed).toEqual(here.packed);
    if (!existsSync(join(ROOT, 'build/bnbjs_cuda.node'))) {
      expect(here.reason).toBe(
        `the CUDA addon is not built (${join(ROOT, 'build/bnbjs_cuda.node')}): npm run build:cuda (needs nvcc and cmake)`,
      );
    }
  }, 120_000);
});
