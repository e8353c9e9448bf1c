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
node bench/cuda.mjs > "$OUT/bench-cuda.md" 2>&1; echo "bench exit $?"
tail -20 "$OUT/bench-cuda.md"
