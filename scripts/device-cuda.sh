#!/usr/bin/env bash
# On the GPU machine (no Node.js, no registry): unpack the carried node, node_modules and
# ../shared, build the addon, run the whole test suite through CUDA and the CUDA bench.
# Carry: .device dist build node_modules/node-addon-api node_modules/node-api-headers
set -uo pipefail
xz -dc .device/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
mkdir -p node_modules && tar xJf .device/nm.tar.xz -C node_modules
mkdir -p /tmp/shared && tar xJf .device/shared.tar.xz -C /tmp/shared && export BNBJS_SHARED=/tmp/shared
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
node scripts/build-cuda.mjs > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
node dist/cli.js inspect --backends
BNBJS_BACKEND=cuda node node_modules/vitest/vitest.mjs run > "$OUT/test-cuda.log" 2>&1; echo "test:cuda exit $?"
grep -E "Test Files|Tests |FAIL|×" "$OUT/test-cuda.log" | head -30
node native/cuda/check.mjs > "$OUT/check.log" 2>&1; echo "check exit $?"; tail -3 "$OUT/check.log"
node bench/cuda.mjs > "$OUT/bench-cuda.md" 2>&1; echo "bench exit $?"
tail -22 "$OUT/bench-cuda.md"
# NCU=1: a profile of the kernels still short of their targets (if Nsight Compute is there)
if [ "${NCU:-0}" = 1 ] && command -v ncu > /dev/null; then
  timeout 240 ncu --clock-control none -k 'regex:k_gemv4|k_quantize8' --section SpeedOfLight --section WarpStateStats \
    --section MemoryWorkloadAnalysis node native/cuda/prof.mjs > "$OUT/ncu.txt" 2>&1; echo "ncu exit $?"
fi
