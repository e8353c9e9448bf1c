#!/usr/bin/env bash
# The real-client check on the GPU machine (no Node.js, no registry): builds bitsandbytes
# from ../shared/vendor and the CUDA addon side by side, then runs device-transformers.py
# (transformers + bitsandbytes against bnbjs, every format) and prints its table.
#
# Prepare here, once:  bash scripts/device-transformers.sh --prepare
#   (.device/node.xz and .device/bitsandbytes-*.tar.gz; dist/ and build/ built)
# Carry: .device dist build node_modules/node-addon-api node_modules/node-api-headers
set -uo pipefail
cd "$(dirname "$0")/.."
BNB=bitsandbytes-95f9af30.tar.gz
if [ "${1:-}" = --prepare ]; then
  mkdir -p .device
  [ -f .device/node.xz ] || xz -T2 -c "$(command -v node)" > .device/node.xz
  cp "${BNBJS_SHARED:-../shared}/vendor/$BNB" .device/
  npm run build --silent
  exit 0
fi
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
xz -dc .device/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
if [ ! -f /tmp/bnb/bitsandbytes/libbitsandbytes_cuda130.so ]; then
  mkdir -p /tmp/bnb && tar xzf ".device/$BNB" -C /tmp/bnb
  (cd /tmp/bnb && cmake -DCOMPUTE_BACKEND=cuda -DCOMPUTE_CAPABILITY=90 -S . -B build && cmake --build build -j$(nproc)) > "$OUT/bnb-build.log" 2>&1 &
  bnb_pid=$!
fi
# NO_ADDON=1: leave every core to bitsandbytes' build (a short device budget)
if [ -z "${NO_ADDON:-}" ] && [ ! -f build/bnbjs_cuda.node ]; then
  BNBJS_CUDA_ARCHS=90 timeout "${ADDON_TIMEOUT:-1200}" node scripts/build-cuda.mjs > "$OUT/addon-build.log" 2>&1 || { echo "addon build failed"; tail -20 "$OUT/addon-build.log"; }
fi
if [ -n "${bnb_pid:-}" ]; then
  wait "$bnb_pid" || { echo "bitsandbytes build failed"; tail -30 "$OUT/bnb-build.log"; exit 1; }
fi
export PYTHONPATH=/tmp/bnb
node dist/cli.js inspect --backends
cuda=--cuda; [ -f build/bnbjs_cuda.node ] || cuda=
shards=; [ -n "${NO_SHARDS:-}" ] && shards=--no-shards
python3 scripts/device-transformers.py --out "$OUT" $cuda $shards 2>&1 | tee "$OUT/transformers.log" | grep -v "^{" | tail -40
exit "${PIPESTATUS[0]}"
