#!/usr/bin/env node
// Builds the optional CUDA addon: native/cuda -> build/cuda -> build/bnbjs_cuda.node.
// Plain cmake + nvcc; the Node-API headers come from the node-addon-api and
// node-api-headers packages (nothing is downloaded). Never run by npm install.
//
//   npm run build:cuda                  # CUDA architectures 80 and 90
//   BNBJS_CUDA_ARCHS="90" npm run build:cuda
//   CUDACXX=/path/to/nvcc npm run build:cuda
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'cuda');
const buildDir = join(root, 'build', 'cuda');
const target = join(root, 'build', 'bnbjs_cuda.node');

function fail(message) {
  console.error(`build:cuda: ${message}`);
  process.exit(1);
}

function which(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

function findNvcc() {
  const candidates = [
    process.env.CUDACXX,
    process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin', 'nvcc'),
    process.env.CUDA_PATH && join(process.env.CUDA_PATH, 'bin', 'nvcc'),
    which('nvcc'),
    '/usr/local/cuda/bin/nvcc',
  ];
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

function run(cmd, args) {
  console.log(`$ ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root });
  if (r.error) fail(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} exited with status ${r.status}`);
}

const nvcc = findNvcc();
if (!nvcc) {
  fail('nvcc (the CUDA compiler) was not found: install the CUDA toolkit, or set CUDACXX or CUDA_HOME. ' +
    'bnbjs works without the addon (WebAssembly kernels).');
}
const cmake = which('cmake');
if (!cmake) fail('cmake was not found on PATH (3.18 or newer is needed).');

const require = createRequire(import.meta.url);
let addonApi, apiHeaders;
try {
  addonApi = dirname(require.resolve('node-addon-api/package.json'));
  apiHeaders = join(dirname(require.resolve('node-api-headers/package.json')), 'include');
} catch (e) {
  fail(`the Node-API headers are missing (${e.message}): run npm install (devDependencies node-addon-api and node-api-headers).`);
}
if (!existsSync(join(addonApi, 'napi.h'))) fail(`napi.h not found in ${addonApi}`);
if (!existsSync(join(apiHeaders, 'node_api.h'))) fail(`node_api.h not found in ${apiHeaders}`);

const archs = (process.env.BNBJS_CUDA_ARCHS ?? '80;90').replace(/[ ,]+/g, ';');
mkdirSync(buildDir, { recursive: true });
run(cmake, [
  '-S', source,
  '-B', buildDir,
  '-DCMAKE_BUILD_TYPE=Release',
  `-DCMAKE_CUDA_COMPILER=${nvcc}`,
  `-DCMAKE_CUDA_ARCHITECTURES=${archs}`,
  `-DNODE_ADDON_API_DIR=${addonApi}`,
  `-DNODE_API_HEADERS_DIR=${apiHeaders}`,
]);
run(cmake, ['--build', buildDir, '--parallel', String(Math.max(1, Math.min(cpus().length, 16)))]);
const built = join(buildDir, 'bnbjs_cuda.node');
if (!existsSync(built)) fail(`the build finished but ${built} is missing`);
copyFileSync(built, target);
console.log(`build:cuda: wrote ${target}`);
