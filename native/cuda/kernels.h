// Host launchers of the CUDA kernels (plain C++ interface for the bindings).
// Pointers are device addresses; every launcher checks the launch and throws
// bnb::Error with "CUDA error <name>: <string> in <call>".
#pragma once
#include <stddef.h>
#include <stdint.h>

// the addon's launchers and the dtype/qtype ids, generated from src/backend/abi.ts
#include "kernels.gen.h"

namespace bnb {

// int8LinearMatmul (lt.cpp) takes cuBLASLt or this exact integer kernel (int8.cu)
void int8MatmulKernel(const void* a, long long m, long long k, const void* b, long long n, void* out);

// resources (runtime.cpp)
int smCount();
int occupancy(const void* kernel, int threads, size_t smem);
void* scratch(size_t bytes);  // per-device scratch buffer, grown on demand (not freed)

}  // namespace bnb
