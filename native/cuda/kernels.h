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

// gemv4bit for M >= 64 (lt.cpp): out[m, n] = sum_k a[m, k] w[n, k] by cuBLASLt, a and w of dtype
// abType (DT_*), out of dtype dType (abType or DT_F32), f32 compute (no TF32). false (nothing
// written) when libcublasLt cannot be loaded or has no algorithm for the case.
bool ltGemm(const void* a, const void* w, int abType, long long m, long long k, long long n, void* out, int dType);

// resources (runtime.cpp)
int smCount();
int occupancy(const void* kernel, int threads, size_t smem);
void* scratch(size_t bytes);  // per-device scratch buffer, grown on demand (not freed)

}  // namespace bnb
