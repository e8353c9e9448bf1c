// Definitions for the stub cuda_runtime.h: a runtime with no device where every call
// succeeds. test/abi.test.ts links it with native/cuda/addon.cpp and launchers that
// report their arguments, to run the generated unpacking without the CUDA toolkit.
#include "cuda_runtime.h"

const char* cudaGetErrorName(cudaError_t) { return "cudaSuccess"; }
const char* cudaGetErrorString(cudaError_t) { return "no error"; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { return *v = 0, cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int* v) { return *v = 0, cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* n) { return *n = 0, cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp*, int) { return cudaSuccess; }
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t) { return *p = nullptr, cudaSuccess; }
cudaError_t cudaFree(void*) { return cudaSuccess; }
cudaError_t cudaMemset(void*, int, size_t) { return cudaSuccess; }
cudaError_t cudaMemcpy(void*, const void*, size_t, cudaMemcpyKind) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) { return *e = nullptr, cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, void*) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t, cudaEvent_t) { return *ms = 0, cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
