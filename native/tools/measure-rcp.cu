// Measures the GPU's approximate reciprocal (what `1.0f / x` becomes under
// --use_fast_math, as in bitsandbytes' kQuantizeBlockwise) against the IEEE
// reciprocal, for every f32 mantissa at several exponents.
// Output: rcp-delta.bin, int8 per mantissa (exponent 0): bits(approx) - bits(IEEE).
// Build: nvcc -O3 -arch=native --use_fast_math measure-rcp.cu -o measure-rcp
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <vector>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { \
  fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1); } } while (0)

__global__ void rcpAsm(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { float r; asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x[i])); y[i] = r; }
}
__global__ void rcpDiv(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = 1.0f / x[i];
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float fromBits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

int main(int argc, char** argv) {
  const int n = 1 << 23;
  std::vector<float> hx(n), ha(n), hd(n);
  float *dx, *dy, *dz;
  CHECK(cudaMalloc(&dx, n * 4)); CHECK(cudaMalloc(&dy, n * 4)); CHECK(cudaMalloc(&dz, n * 4));
  std::vector<int8_t> base(n);
  const int exps[] = {0, 1, -1, 20, -20, 100, -100, 125, -125};
  long mismatchDiv = 0, expDiff = 0;
  for (int e : exps) {
    for (int m = 0; m < n; m++) hx[m] = fromBits(((uint32_t)(127 + e) << 23) | m);
    CHECK(cudaMemcpy(dx, hx.data(), n * 4, cudaMemcpyHostToDevice));
    rcpAsm<<<n / 256, 256>>>(dx, dy, n);
    rcpDiv<<<n / 256, 256>>>(dx, dz, n);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(ha.data(), dy, n * 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hd.data(), dz, n * 4, cudaMemcpyDeviceToHost));
    long nz = 0, hist[5] = {0};
    for (int m = 0; m < n; m++) {
      int d = (int)((int64_t)bits(ha[m]) - (int64_t)bits(1.0f / hx[m]));
      if (bits(ha[m]) != bits(hd[m])) mismatchDiv++;
      if (d != 0) nz++;
      if (d >= -2 && d <= 2) hist[d + 2]++;
      if (e == 0) base[m] = (int8_t)d; else if (base[m] != d) expDiff++;
    }
    printf("exp %4d: differs from IEEE %.4f%%  delta -2..2: %ld %ld %ld %ld %ld\n", e, 100.0 * nz / n,
           hist[0], hist[1], hist[2], hist[3], hist[4]);
  }
  printf("1.0f/x (fast-math) vs rcp.approx.ftz mismatches: %ld\n", mismatchDiv);
  printf("entries whose delta depends on the exponent: %ld\n", expDiff);
  FILE* f = fopen(argc > 1 ? argv[1] : "rcp-delta.bin", "wb");
  fwrite(base.data(), 1, n, f);
  fclose(f);
  return 0;
}
