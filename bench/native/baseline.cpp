// Native C++ reference figures for bench/run.mjs, measured in the same run as
// bnbjs: straightforward implementations of the same ops, compiled with g++ -O3
// -march=native -fopenmp (the compiler vectorises what it can); each op's outer
// loop is split over OMP_NUM_THREADS threads (1: the single-threaded baseline).
// Prints one JSON object: milliseconds (median of the runs) per op.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <immintrin.h>
#include <omp.h>
#include <vector>

using Clock = std::chrono::steady_clock;

template <class F> static double median_ms(int reps, F f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

static uint32_t rng_state = 12345;
static uint32_t rnd() { return rng_state = rng_state * 1103515245u + 12345u; }

static const float NF4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
  -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f,
  0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f,
  0.5626170039176941f, 0.7229568362236023f, 1.0f};

static uint16_t to_bf16(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  if ((b & 0x7fffffff) > 0x7f800000) return 0x7fff;
  return (uint16_t)((b + 0x7fff + ((b >> 16) & 1)) >> 16);
}

// memcpy in one contiguous slice per thread.
static void parallel_memcpy(void* dst, const void* src, size_t bytes) {
#pragma omp parallel
  {
    const size_t t = omp_get_thread_num(), T = omp_get_num_threads();
    const size_t a = bytes * t / T / 64 * 64, b = t + 1 == T ? bytes : bytes * (t + 1) / T / 64 * 64;
    memcpy((char*)dst + a, (const char*)src + a, b - a);
  }
}

// out[i][j] = sum_k A[i][k] * B[j][k], int32, tiles of B rows kept in cache.
static void int8_matmul(const int8_t* A, const int8_t* B, int32_t* C, int M, int N, int K) {
  const int tile = std::max(4, 65536 / K);
#pragma omp parallel for schedule(dynamic)
  for (int j0 = 0; j0 < N; j0 += tile)
    for (int i = 0; i < M; i++)
      for (int j = j0; j < std::min(N, j0 + tile); j++) {
        const int8_t* a = A + (size_t)i * K;
        const int8_t* b = B + (size_t)j * K;
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += (int32_t)a[k] * (int32_t)b[k];
        C[(size_t)i * N + j] = s;
      }
}

// y[j] = sum_k x[k] * NF4[q(j,k)] * absmax[block], 4-bit packed high nibble first, f32 accumulation.
static void gemv_nf4(const float* x, const uint8_t* packed, const float* absmax, float* y, int N, int K, int bs) {
#pragma omp parallel
  {
  std::vector<float> w(K);
#pragma omp for schedule(static)
  for (int j = 0; j < N; j++) {
    const uint8_t* row = packed + (size_t)j * K / 2;
    const float* am = absmax + (size_t)j * K / bs;
    for (int k = 0; k < K; k += 2) {
      uint8_t b = row[k / 2];
      float a = am[k / bs];
      w[k] = NF4[b >> 4] * a;
      w[k + 1] = NF4[b & 15] * a;
    }
    float s = 0;
    for (int k = 0; k < K; k++) s += x[k] * w[k];
    y[j] = s;
  }
  }
}

// out = bf16(e4m3(W) * scale[i/128][j/128]).
static void fp8_dequant(const uint8_t* W, const float* scale, uint16_t* out, int R, int Cc, const float* lut) {
  const int sc = (Cc + 127) / 128;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < R; i++)
    for (int j = 0; j < Cc; j++) out[(size_t)i * Cc + j] = to_bf16(lut[W[(size_t)i * Cc + j]] * scale[(i / 128) * sc + j / 128]);
}

// bitsandbytes CUDA's decision trees (dQuantizeNF4 / dQuantizeFP4).
static uint8_t nf4_code(float x) {
  if (x > 0.03979014977812767f) {
    if (x > 0.3893125355243683f) {
      if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 15 : 14;
      return x > 0.5016634166240692f ? 13 : 12;
    }
    if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 11 : 10;
    return x > 0.1202552504837513f ? 9 : 8;
  }
  if (x > -0.33967943489551544f) {
    if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 7 : 6;
    return x > -0.23460740596055984f ? 5 : 4;
  }
  if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 3 : 2;
  return x > -0.8480964004993439f ? 1 : 0;
}

static uint8_t fp4_code(float x) {
  const uint8_t sign = x < 0 ? 8 : 0;
  const float a = std::fabs(x);
  if (a > 0.29166667f) {
    if (a > 0.583333f) return sign | (a > 0.8333333f ? 3 : 2);
    return sign | (a > 0.4166667f ? 5 : 4);
  }
  if (a > 0.0859375f) return sign | (a > 0.20833333f ? 7 : 6);
  return sign | (a > 0.00260417f ? 1 : 0);
}

// Blockwise absmax (NaN ignored) and 4-bit codes, high nibble first.
template <class Code>
static void quant_4bit(const float* x, uint8_t* packed, float* absmax, size_t n, int bs, Code code) {
  const size_t nb = n / bs;
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) {
    const float* xb = x + b * bs;
    float m = 0;
    for (int i = 0; i < bs; i++) m = std::max(m, std::fabs(xb[i]));
    absmax[b] = m;
    const float r = 1.0f / m;
    for (int i = 0; i < bs; i += 2) packed[(b * bs + i) / 2] = (uint8_t)(code(xb[i] * r) << 4 | code(xb[i + 1] * r));
  }
}

// out = f16(NF4[q] * absmax[i / bs]) (F16C, round to nearest even).
static void dequant_nf4_f16(const uint8_t* packed, const float* absmax, uint16_t* out, size_t n, int bs) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i += 2) {
    uint8_t b = packed[i / 2];
    float a = absmax[i / bs];
    out[i] = _cvtss_sh(NF4[b >> 4] * a, _MM_FROUND_TO_NEAREST_INT);
    out[i + 1] = _cvtss_sh(NF4[b & 15] * a, _MM_FROUND_TO_NEAREST_INT);
  }
}

static void dequant_nf4_bf16(const uint8_t* packed, const float* absmax, uint16_t* out, size_t n, int bs) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i += 2) {
    uint8_t b = packed[i / 2];
    float a = absmax[i / bs];
    out[i] = to_bf16(NF4[b >> 4] * a);
    out[i + 1] = to_bf16(NF4[b & 15] * a);
  }
}

// bitsandbytes CUDA's kQuantizeBlockwise search: binary search of the sorted 256-entry
// code, then the nearer of the two neighbours.
static uint8_t search_code(const float* code, float s) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f, val = code[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (s > val) { lower_pivot = pivot; lower = val; pivot += step; }
    else { upper_pivot = pivot; upper = val; pivot -= step; }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[255];
  if (lower_pivot == 0) lower = code[0];
  if (s > val) return (uint8_t)(s > (upper + val) * 0.5f ? upper_pivot : pivot);
  return (uint8_t)(s < (lower + val) * 0.5f ? lower_pivot : pivot);
}

static void quant_blockwise(const float* x, const float* code, uint8_t* q, float* absmax, size_t n, int bs) {
  const size_t nb = n / bs;
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) {
    const float* xb = x + b * bs;
    float m = 0;
    for (int i = 0; i < bs; i++) m = std::max(m, std::fabs(xb[i]));
    absmax[b] = m;
    const float r = 1.0f / m;
    for (int i = 0; i < bs; i++) q[b * bs + i] = search_code(code, xb[i] * r);
  }
}

static void dequant_blockwise(const uint8_t* q, const float* code, const float* absmax, float* out, size_t n, int bs) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = code[q[i]] * absmax[i / bs];
}

// A signed dynamic-exponent code like bitsandbytes' default (sorted, 256 entries).
static std::vector<float> dynamic_code() {
  std::vector<float> v;
  for (int i = 0; i < 7; i++) {
    const int items = (1 << i) + 1;
    const float scale = std::pow(10.0f, (float)(i - 6));
    for (int j = 0; j + 1 < items; j++) {
      const float b0 = 0.1f + 0.9f * j / (items - 1), b1 = 0.1f + 0.9f * (j + 1) / (items - 1);
      v.push_back(scale * (b0 + b1) / 2);
      v.push_back(-scale * (b0 + b1) / 2);
    }
  }
  v.push_back(0);
  v.push_back(1);
  while (v.size() < 256) v.push_back(0);
  std::sort(v.begin(), v.end());
  return v;
}

// out = f32(NF4[q] * absmax[i / bs]).
static void dequant_nf4(const uint8_t* packed, const float* absmax, float* out, size_t n, int bs) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i += 2) {
    uint8_t b = packed[i / 2];
    float a = absmax[i / bs];
    out[i] = NF4[b >> 4] * a;
    out[i + 1] = NF4[b & 15] * a;
  }
}

int main() {
  const int reps = 3;
  printf("{");
  {  // memcpy of a 4096x14336 f32 tensor
    size_t n = (size_t)4096 * 14336;
    std::vector<float> a(n, 1.0f), b(n);
    printf("\"memcpy_f32_4096x14336\": %.3f, ", median_ms(reps, [&] { parallel_memcpy(b.data(), a.data(), n * 4); }));
    std::vector<uint8_t> packed(n / 2);
    for (auto& v : packed) v = rnd() >> 24;
    std::vector<float> absmax(n / 64, 1.5f);
    printf("\"dequant_nf4_bs64_f32\": %.3f, ", median_ms(reps, [&] { dequant_nf4(packed.data(), absmax.data(), b.data(), n, 64); }));
    std::vector<uint16_t> h(n);
    printf("\"dequant_nf4_bs64_f16\": %.3f, ", median_ms(reps, [&] { dequant_nf4_f16(packed.data(), absmax.data(), h.data(), n, 64); }));
    printf("\"dequant_nf4_bs64_bf16\": %.3f, ", median_ms(reps, [&] { dequant_nf4_bf16(packed.data(), absmax.data(), h.data(), n, 64); }));
    // N(0,1)-like input from a sum of uniforms
    for (auto& v : a) v = ((rnd() >> 8) + (rnd() >> 8) + (rnd() >> 8) - 1.5f * 16777216) / 4843165.0f;
    printf("\"quant_nf4_bs64_f32\": %.3f, ", median_ms(reps, [&] { quant_4bit(a.data(), packed.data(), absmax.data(), n, 64, nf4_code); }));
    printf("\"quant_fp4_bs64_f32\": %.3f, ", median_ms(reps, [&] { quant_4bit(a.data(), packed.data(), absmax.data(), n, 64, fp4_code); }));
    const std::vector<float> code = dynamic_code();
    std::vector<uint8_t> q(n);
    std::vector<float> absmax8(n / 256);
    printf("\"quant_blockwise_bs256_f32\": %.3f, ", median_ms(reps, [&] { quant_blockwise(a.data(), code.data(), q.data(), absmax8.data(), n, 256); }));
    printf("\"dequant_blockwise_bs256_f32\": %.3f, ", median_ms(reps, [&] { dequant_blockwise(q.data(), code.data(), absmax8.data(), b.data(), n, 256); }));
  }
  for (auto [M, N, K] : {std::array<int, 3>{4096, 4096, 4096}, std::array<int, 3>{1, 14336, 4096}}) {
    std::vector<int8_t> A((size_t)M * K), B((size_t)N * K);
    for (auto& v : A) v = (int8_t)(rnd() >> 24);
    for (auto& v : B) v = (int8_t)(rnd() >> 24);
    std::vector<int32_t> C((size_t)M * N);
    printf("\"int8_matmul_%dx%dx%d\": %.3f, ", M, N, K, median_ms(M > 1 ? 1 : reps, [&] { int8_matmul(A.data(), B.data(), C.data(), M, N, K); }));
  }
  {
    const int N = 14336, K = 4096;
    std::vector<uint8_t> packed((size_t)N * K / 2);
    for (auto& v : packed) v = rnd() >> 24;
    std::vector<float> absmax((size_t)N * K / 64, 0.05f), x(K, 0.5f), y(N);
    printf("\"gemv_nf4_1x4096_14336x4096\": %.3f, ", median_ms(reps, [&] { gemv_nf4(x.data(), packed.data(), absmax.data(), y.data(), N, K, 64); }));
  }
  {
    const int R = 7168, Cc = 7168;
    std::vector<uint8_t> W((size_t)R * Cc);
    for (auto& v : W) v = (uint8_t)(rnd() >> 24) & 0xf7;  // no NaN patterns
    float lut[256];
    for (int b = 0; b < 256; b++) {
      int em = b & 0x7f, e = em >> 3, m = em & 7;
      float v = e == 0 ? m * std::ldexp(1.0f, -9) : (1 + m / 8.0f) * std::ldexp(1.0f, e - 7);
      lut[b] = (b & 0x80) ? -v : v;
    }
    std::vector<float> scale(((R + 127) / 128) * ((Cc + 127) / 128), 0.01f);
    std::vector<uint16_t> out((size_t)R * Cc);
    printf("\"fp8_dequant_7168x7168_bf16\": %.3f", median_ms(reps, [&] { fp8_dequant(W.data(), scale.data(), out.data(), R, Cc, lut); }));
  }
  printf("}\n");
  return 0;
}
