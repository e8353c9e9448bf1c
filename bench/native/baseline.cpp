// Native C++ reference figures for bench/run.mjs, measured in the same run as
// bnbjs: straightforward single-threaded implementations of the same ops,
// compiled with g++ -O3 -march=native (the compiler vectorises what it can).
// Prints one JSON object: milliseconds (median of the runs) per op.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
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

// out[i][j] = sum_k A[i][k] * B[j][k], int32, tiles of B rows kept in cache.
static void int8_matmul(const int8_t* A, const int8_t* B, int32_t* C, int M, int N, int K) {
  const int tile = std::max(4, 65536 / K);
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
  std::vector<float> w(K);
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

// out = bf16(e4m3(W) * scale[i/128][j/128]).
static void fp8_dequant(const uint8_t* W, const float* scale, uint16_t* out, int R, int Cc, const float* lut) {
  const int sc = (Cc + 127) / 128;
  for (int i = 0; i < R; i++)
    for (int j = 0; j < Cc; j++) out[(size_t)i * Cc + j] = to_bf16(lut[W[(size_t)i * Cc + j]] * scale[(i / 128) * sc + j / 128]);
}

// out = f32(NF4[q] * absmax[i / bs]).
static void dequant_nf4(const uint8_t* packed, const float* absmax, float* out, size_t n, int bs) {
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
    printf("\"memcpy_f32_4096x14336\": %.3f, ", median_ms(reps, [&] { memcpy(b.data(), a.data(), n * 4); }));
    std::vector<uint8_t> packed(n / 2);
    for (auto& v : packed) v = rnd() >> 24;
    std::vector<float> absmax(n / 64, 1.5f);
    printf("\"dequant_nf4_bs64_f32\": %.3f, ", median_ms(reps, [&] { dequant_nf4(packed.data(), absmax.data(), b.data(), n, 64); }));
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
