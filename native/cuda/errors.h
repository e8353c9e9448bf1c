// Errors thrown by the launchers and turned into JS Errors by the bindings.
#pragma once
#include <cuda_runtime.h>
#include <stdexcept>
#include <string>

namespace bnb {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "CUDA error <cudaGetErrorName>: <cudaGetErrorString> in <call>"
[[noreturn]] inline void throw_cuda(cudaError_t e, const char* call) {
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw Error(std::string("CUDA error ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + " in " + call);
}

#define BNB_CHECK(call)                               \
  do {                                                \
    cudaError_t bnb_e_ = (call);                      \
    if (bnb_e_ != cudaSuccess) ::bnb::throw_cuda(bnb_e_, #call); \
  } while (0)

[[noreturn]] inline void throw_arg(const std::string& msg) { throw Error(msg); }

}  // namespace bnb
