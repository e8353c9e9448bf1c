// A kernel that only waits: queued before a timed call, it keeps the GPU busy while the
// host enqueues the start event and the call, so CUDA events time the kernel rather than
// the launch latency of an idle GPU, without touching memory (bench/cuda.mjs).
#include "common.cuh"

namespace bnb {

namespace {
__global__ void k_spin(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}
}  // namespace

void spin(double microseconds) {
  int khz = 0;
  int dev = 0;
  BNB_CHECK(cudaGetDevice(&dev));
  BNB_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev));
  k_spin<<<1, 1>>>((long long)(microseconds * khz / 1000.0));
  check_launch("spin kernel");
}

}  // namespace bnb
