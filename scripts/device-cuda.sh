#!/usr/bin/env bash
# On the GPU machine (no Node.js, no registry): unpack the carried node, node_modules and
# ../shared, build the addon, run the whole test suite through CUDA, the byte comparison
# against the mock (check.mjs) and the CUDA bench.
#
# Prepare here, once: bash scripts/device-cuda.sh --prepare
#   (.device/node.xz, .device/nm.tar.xz = node_modules without the runtimes and compilers
#    the CUDA run does not use, .device/shared.tar.xz = ../shared golden files and models)
# Carry: .device dist build node_modules/node-addon-api node_modules/node-api-headers
# NO_BENCH=1 leaves out bench/cuda.mjs; NCU=1 adds a profile.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --prepare ]; then
  mkdir -p .device
  [ -f .device/node.xz ] || xz -T2 -c "$(command -v node)" > .device/node.xz
  tar cf - -C "${BNBJS_SHARED:-../shared}" golden models SPEC.md | xz -T2 -6 > .device/shared.tar.xz
  # ~8 MB: vitest and its bundler, fast-check; not the other runtimes, compilers or formatters
  skip=(@deno deno bun @cloudflare workerd binaryen typescript assemblyscript prettier playwright-core
    @types @esbuild esbuild lightningcss-linux-x64-gnu)
  tar cf - -C node_modules "${skip[@]/#/--exclude=./}" . | xz -T2 -9 > .device/nm.tar.xz
  npm run build --silent
  exit 0
fi
if ! command -v node > /dev/null; then
  xz -dc .device/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
fi
mkdir -p node_modules && tar xJf .device/nm.tar.xz -C node_modules
mkdir -p /tmp/shared && tar xJf .device/shared.tar.xz -C /tmp/shared && export BNBJS_SHARED=/tmp/shared
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ ! -f build/bnbjs_cuda.node ]; then
  BNBJS_CUDA_ARCHS=${BNBJS_CUDA_ARCHS:-90} node scripts/build-cuda.mjs > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
cp build/bnbjs_cuda.node "$OUT/" 2>/dev/null
node dist/cli.js inspect --backends
# the byte comparison and the bench first (a cut-short call still has them), then the suite;
# each with its own limit (seconds): CHECK_S, BENCH_S, SUITE_S
timeout "${CHECK_S:-200}" node native/cuda/check.mjs > "$OUT/check.log" 2>&1; echo "check exit $?"
sed -n '/^parity (bytes/,/^$/p' "$OUT/check.log" | head -40; grep -E "^PARITY|bars|skipped" "$OUT/check.log" | head -8
if [ -z "${NO_BENCH:-}" ]; then
  timeout "${BENCH_S:-200}" node bench/cuda.mjs > "$OUT/bench-cuda.md" 2>&1; echo "bench exit $?"
  tail -40 "$OUT/bench-cuda.md"
fi
# typescript, npm, the other runtimes and the bundlers are not there: their tests are CPU-only
# (abi.test.ts regenerates with typescript; the nvcc build above compiles what it generates)
# SUITE_FILES="test/a.test.ts ...": only those files
BNBJS_BACKEND=cuda timeout "${SUITE_S:-300}" node node_modules/vitest/vitest.mjs run ${SUITE_FILES:-} --exclude 'test/runtimes/**' \
  --exclude test/imports.test.ts --exclude test/readme.test.ts --exclude test/abi.test.ts --exclude test/package.test.ts > "$OUT/test-cuda.log" 2>&1
echo "test:cuda exit $?"
grep -E "Test Files|Tests |FAIL|×" "$OUT/test-cuda.log" | head -30
# NCU=1: a profile of the kernels still short of their targets (if Nsight Compute is there)
if [ "${NCU:-0}" = 1 ] && command -v ncu > /dev/null; then
  timeout 240 ncu --clock-control none -k 'regex:k_gemv4|k_quantize8' --section SpeedOfLight --section WarpStateStats \
    --section MemoryWorkloadAnalysis node native/cuda/prof.mjs > "$OUT/ncu.txt" 2>&1; echo "ncu exit $?"
fi
