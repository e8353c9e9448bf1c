// Per-device resources: multiprocessor counts, occupancy, a small scratch buffer.
#include <cuda_runtime.h>
#include <map>
#include <mutex>
#include <tuple>
#include "errors.h"
#include "kernels.h"

namespace bnb {

namespace {
std::mutex mu;
int current_device() {
  int dev = 0;
  BNB_CHECK(cudaGetDevice(&dev));
  return dev;
}
}  // namespace

int smCount() {
  static std::map<int, int> cache;
  const int dev = current_device();
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it != cache.end()) return it->second;
  int v = 0;
  BNB_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
  cache[dev] = v;
  return v;
}

int occupancy(const void* kernel, int threads, size_t smem) {
  static std::map<std::tuple<int, const void*, int, size_t>, int> cache;
  const int dev = current_device();
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(dev, kernel, threads, smem);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int n = 0;
  BNB_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, smem));
  if (n < 1) n = 1;
  cache[key] = n;
  return n;
}

void* scratch(size_t bytes) {
  static std::map<int, std::pair<void*, size_t>> bufs;
  const int dev = current_device();
  std::lock_guard<std::mutex> lock(mu);
  auto& b = bufs[dev];
  if (b.second < bytes) {
    if (b.first) BNB_CHECK(cudaFree(b.first));
    b = {nullptr, 0};
    void* p = nullptr;
    BNB_CHECK(cudaMalloc(&p, bytes));
    b = {p, bytes};
  }
  return b.first;
}

}  // namespace bnb
