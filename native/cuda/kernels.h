// Host launchers of the CUDA kernels (plain C++ interface for the bindings).
// Pointers are device addresses; every launcher checks the launch and throws
// bnb::Error with "CUDA error <name>: <string> in <call>".
#pragma once
#include <stdint.h>

namespace bnb {

// 4-bit and 8-bit blockwise (quant.cu)
void quantize4bit(const void* src, long long n, int dtype, long long blocksize, int qtype, void* packed, void* absmax);
void dequantize4bit(const void* packed, long long n, long long blocksize, int qtype, const void* absmax, int dtype, void* out);
// nested absmax (qabsmax uint8, code2 f32[256], absmax2 f32): dequantizeBlockwise f32 + addScalarF32 + dequantize4bit, fused
void dequantize4bitNested(const void* packed, long long n, long long blocksize, int qtype, const void* qabsmax, const void* code2,
                          const void* absmax2, long long blocksize2, double offset, int dtype, void* out);
void quantizeBlockwise(const void* src, long long n, int dtype, long long blocksize, const void* code, void* q, void* absmax);
void dequantizeBlockwise(const void* q, long long n, long long blocksize, const void* code, const void* absmax, int dtype, void* out);
void addScalarF32(void* ptr, long long n, double value);
void subtractScalarF32(const void* src, long long n, double value, void* dst);
long long firstNonFinite(const void* src, long long n, int dtype);

// LLM.int8 (int8.cu, lt.cpp)
void int8VectorwiseQuant(const void* a, long long rows, long long cols, float threshold, void* cb, void* stats);
void int8ColumnQuant(const void* a, long long rows, long long cols, float threshold, void* cat, void* stats);
void int8VectorwiseDequant(const void* a, long long rows, long long cols, const void* stats, void* out);
void int8MatmulKernel(const void* a, long long m, long long k, const void* b, long long n, void* out);  // exact, own kernel
void int8LinearMatmul(const void* a, long long m, long long k, const void* b, long long n, void* out);  // cuBLASLt or the kernel
void int8MmDequant(const void* a, long long rows, long long cols, const void* rowStats, const void* colStats, const void* bias,
                   int biasKind, int dtype, void* out);

// 4-bit GEMV (gemv.cu)
void gemv4bit(const void* a, long long m, long long k, int adtype, const void* packed, long long n, const void* absmax,
              long long blocksize, int qtype, const void* bias, int dtype, void* out);

// FP8 (fp8.cu)
void dequantizeFp8(const void* w, long long rows, long long cols, long long row0, const void* scale, long long scaleCols,
                   long long blockRows, long long blockCols, int dtype, void* out);

// a GPU-side wait for benchmarks (spin.cu)
void spin(double microseconds);

// resources (runtime.cpp)
int smCount();
int occupancy(const void* kernel, int threads, size_t smem);
void* scratch(size_t bytes);  // per-device scratch buffer, grown on demand (not freed)

}  // namespace bnb
