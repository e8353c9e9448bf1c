// Node-API bindings of the bnbjs CUDA addon (build/bnbjs_cuda.node). The ABI is the
// CudaAddon interface of src/backend/cuda/addon.ts: device pointers are JS numbers,
// dtype ids 0 float32 / 1 float16 / 2 bfloat16, qtype ids 0 fp4 / 1 nf4. Kernels run
// on the default stream in order; copies to the host are synchronous. CUDA failures
// throw Error("CUDA error <name>: <string> in <call>").
#include <napi.h>
#include <cuda_runtime.h>
#include <cmath>
#include <string>
#include "errors.h"
#include "kernels.h"

namespace {

using bnb::Error;

constexpr double kMaxSafe = 9007199254740992.0;  // 2^53

double number(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string("argument ") + std::to_string(i) + " (" + name + ") must be a number");
  }
  return info[i].As<Napi::Number>().DoubleValue();
}

long long integer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double v = number(info, i, name);
  if (!std::isfinite(v) || std::floor(v) != v || std::fabs(v) > kMaxSafe) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an integer, got " + std::to_string(v));
  }
  return (long long)v;
}

long long count(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const long long v = integer(info, i, name);
  if (v < 0) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be non-negative, got " + std::to_string(v));
  return v;
}

void* ptr(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const long long v = integer(info, i, name);
  if (v < 0) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a device pointer (a non-negative integer)");
  return reinterpret_cast<void*>((uintptr_t)v);
}

int small(const Napi::CallbackInfo& info, size_t i, const char* name) { return (int)integer(info, i, name); }

struct View {
  uint8_t* data;
  size_t bytes;
};

View view(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() > i && info[i].IsTypedArray()) {
    Napi::TypedArray t = info[i].As<Napi::TypedArray>();
    return {static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength()};
  }
  if (info.Length() > i && info[i].IsDataView()) {
    Napi::DataView d = info[i].As<Napi::DataView>();
    return {static_cast<uint8_t*>(d.ArrayBuffer().Data()) + d.ByteOffset(), d.ByteLength()};
  }
  throw Napi::TypeError::New(info.Env(), std::string("argument ") + std::to_string(i) + " (" + name + ") must be an ArrayBufferView");
}

Napi::Number num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

// Runs f, turning bnb::Error (CUDA failures, bad arguments) into JS Errors.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F f) {
  try {
    return f();
  } catch (const Error& e) {
    throw Napi::Error::New(info.Env(), e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), "out of host memory");
  }
}

#define FN(name) Napi::Value name(const Napi::CallbackInfo& info)
#define BODY(...) return guarded(info, [&]() -> Napi::Value { __VA_ARGS__ });

FN(Probe) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  r.Set("driverVersion", num(env, drv));
  r.Set("runtimeVersion", num(env, rt));
  Napi::Array devices = Napi::Array::New(env);
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    r.Set("error", Napi::String::New(env, std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e)));
    n = 0;
  }
  uint32_t k = 0;
  for (int i = 0; i < n; i++) {
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, i);
    if (e != cudaSuccess) {
      cudaGetLastError();
      r.Set("error", Napi::String::New(env, std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e) + " (device " +
                                                std::to_string(i) + ")"));
      continue;
    }
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", num(env, i));
    d.Set("name", Napi::String::New(env, p.name));
    d.Set("major", num(env, p.major));
    d.Set("minor", num(env, p.minor));
    d.Set("totalMemory", num(env, (double)p.totalGlobalMem));
    d.Set("multiProcessorCount", num(env, p.multiProcessorCount));
    devices.Set(k++, d);
  }
  r.Set("devices", devices);
  return r;
}

FN(SetDevice) { BODY(BNB_CHECK(cudaSetDevice(small(info, 0, "index"))); return info.Env().Undefined();) }

FN(Malloc) {
  BODY(const long long bytes = count(info, 0, "bytes"); void* p = nullptr;
       const size_t size = (size_t)(bytes > 0 ? bytes : 1); BNB_CHECK(cudaMalloc(&p, size));
       return num(info.Env(), (double)reinterpret_cast<uintptr_t>(p));)
}

FN(Free) { BODY(BNB_CHECK(cudaFree(ptr(info, 0, "ptr"))); return info.Env().Undefined();) }

FN(Memset) {
  BODY(void* p = ptr(info, 0, "ptr"); const int byte = small(info, 1, "byte"); const long long bytes = count(info, 2, "bytes");
       if (bytes > 0) BNB_CHECK(cudaMemset(p, byte, (size_t)bytes)); return info.Env().Undefined();)
}

FN(CopyHtoD) {
  BODY(void* dst = ptr(info, 0, "dst"); View v = view(info, 1, "src");
       if (v.bytes > 0) BNB_CHECK(cudaMemcpy(dst, v.data, v.bytes, cudaMemcpyHostToDevice)); return info.Env().Undefined();)
}

FN(CopyDtoH) {
  BODY(View v = view(info, 0, "dst"); void* src = ptr(info, 1, "src");
       if (v.bytes > 0) BNB_CHECK(cudaMemcpy(v.data, src, v.bytes, cudaMemcpyDeviceToHost)); return info.Env().Undefined();)
}

FN(CopyDtoD) {
  BODY(void* dst = ptr(info, 0, "dst"); void* src = ptr(info, 1, "src"); const long long bytes = count(info, 2, "bytes");
       if (bytes > 0) BNB_CHECK(cudaMemcpy(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice)); return info.Env().Undefined();)
}

FN(Spin) {
  BODY(if (!info[0].IsNumber()) bnb::throw_arg("spin: microseconds must be a number"); bnb::spin(info[0].As<Napi::Number>().DoubleValue());
       return info.Env().Undefined();)
}

FN(Synchronize) { BODY(BNB_CHECK(cudaDeviceSynchronize()); return info.Env().Undefined();) }

FN(EventRecord) {
  BODY(cudaEvent_t e = nullptr; BNB_CHECK(cudaEventCreate(&e)); cudaError_t r = cudaEventRecord(e, 0);
       if (r != cudaSuccess) {
         cudaEventDestroy(e);
         bnb::throw_cuda(r, "cudaEventRecord(e, 0)");
       } return num(info.Env(), (double)reinterpret_cast<uintptr_t>(e));)
}

FN(EventElapsed) {
  BODY(cudaEvent_t s = (cudaEvent_t)ptr(info, 0, "start"); cudaEvent_t e = (cudaEvent_t)ptr(info, 1, "end");
       BNB_CHECK(cudaEventSynchronize(e)); float ms = 0; BNB_CHECK(cudaEventElapsedTime(&ms, s, e));
       return num(info.Env(), ms);)
}

FN(EventDestroy) { BODY(BNB_CHECK(cudaEventDestroy((cudaEvent_t)ptr(info, 0, "event"))); return info.Env().Undefined();) }

FN(Quantize4bit) {
  BODY(void* const src_ = ptr(info, 0, "src");
       const long long n_ = count(info, 1, "n");
       const int dtype_ = small(info, 2, "dtype");
       const long long blocksize_ = integer(info, 3, "blocksize");
       const int qtype_ = small(info, 4, "qtype");
       void* const packed_ = ptr(info, 5, "packed");
       void* const absmax_ = ptr(info, 6, "absmax");
       bnb::quantize4bit(src_, n_, dtype_, blocksize_,
                         qtype_, packed_, absmax_);
       return info.Env().Undefined();)
}

FN(Dequantize4bit) {
  BODY(void* const packed_ = ptr(info, 0, "packed");
       const long long n_ = count(info, 1, "n");
       const long long blocksize_ = integer(info, 2, "blocksize");
       const int qtype_ = small(info, 3, "qtype");
       void* const absmax_ = ptr(info, 4, "absmax");
       const int dtype_ = small(info, 5, "dtype");
       void* const out_ = ptr(info, 6, "out");
       bnb::dequantize4bit(packed_, n_, blocksize_, qtype_,
                           absmax_, dtype_, out_);
       return info.Env().Undefined();)
}

FN(QuantizeBlockwise) {
  BODY(void* const src_ = ptr(info, 0, "src");
       const long long n_ = count(info, 1, "n");
       const int dtype_ = small(info, 2, "dtype");
       const long long blocksize_ = integer(info, 3, "blocksize");
       void* const code_ = ptr(info, 4, "code");
       void* const q_ = ptr(info, 5, "q");
       void* const absmax_ = ptr(info, 6, "absmax");
       bnb::quantizeBlockwise(src_, n_, dtype_, blocksize_,
                              code_, q_, absmax_);
       return info.Env().Undefined();)
}

FN(DequantizeBlockwise) {
  BODY(void* const q_ = ptr(info, 0, "q");
       const long long n_ = count(info, 1, "n");
       const long long blocksize_ = integer(info, 2, "blocksize");
       void* const code_ = ptr(info, 3, "code");
       void* const absmax_ = ptr(info, 4, "absmax");
       const int dtype_ = small(info, 5, "dtype");
       void* const out_ = ptr(info, 6, "out");
       bnb::dequantizeBlockwise(q_, n_, blocksize_, code_,
                                absmax_, dtype_, out_);
       return info.Env().Undefined();)
}

FN(AddScalarF32) {
  BODY(void* const ptr_ = ptr(info, 0, "ptr");
       const long long n_ = count(info, 1, "n");
       const double value_ = number(info, 2, "value");
       bnb::addScalarF32(ptr_, n_, value_); return info.Env().Undefined();)
}

FN(SubtractScalarF32) {
  BODY(void* const src_ = ptr(info, 0, "src");
       const long long n_ = count(info, 1, "n");
       const double value_ = number(info, 2, "value");
       void* const dst_ = ptr(info, 3, "dst");
       bnb::subtractScalarF32(src_, n_, value_, dst_);
       return info.Env().Undefined();)
}

FN(FirstNonFinite) {
  BODY(void* const src_ = ptr(info, 0, "src");
       const long long n_ = count(info, 1, "n");
       const int dtype_ = small(info, 2, "dtype");
       return num(info.Env(), (double)bnb::firstNonFinite(src_, n_, dtype_));)
}

FN(Int8VectorwiseQuant) {
  BODY(void* const a_ = ptr(info, 0, "a");
       const long long rows_ = count(info, 1, "rows");
       const long long cols_ = count(info, 2, "cols");
       const double threshold_ = number(info, 3, "threshold");
       void* const cb_ = ptr(info, 4, "cb");
       void* const stats_ = ptr(info, 5, "stats");
       bnb::int8VectorwiseQuant(a_, rows_, cols_, (float)threshold_,
                                cb_, stats_);
       return info.Env().Undefined();)
}

FN(Int8ColumnQuant) {
  BODY(void* const a_ = ptr(info, 0, "a");
       const long long rows_ = count(info, 1, "rows");
       const long long cols_ = count(info, 2, "cols");
       const double threshold_ = number(info, 3, "threshold");
       void* const cat_ = ptr(info, 4, "cat");
       void* const stats_ = ptr(info, 5, "stats");
       bnb::int8ColumnQuant(a_, rows_, cols_, (float)threshold_,
                            cat_, stats_);
       return info.Env().Undefined();)
}

FN(Int8VectorwiseDequant) {
  BODY(void* const a_ = ptr(info, 0, "a");
       const long long rows_ = count(info, 1, "rows");
       const long long cols_ = count(info, 2, "cols");
       void* const stats_ = ptr(info, 3, "stats");
       void* const out_ = ptr(info, 4, "out");
       bnb::int8VectorwiseDequant(a_, rows_, cols_, stats_,
                                  out_);
       return info.Env().Undefined();)
}

FN(Int8LinearMatmul) {
  BODY(void* const a_ = ptr(info, 0, "a");
       const long long m_ = count(info, 1, "m");
       const long long k_ = count(info, 2, "k");
       void* const b_ = ptr(info, 3, "b");
       const long long n_ = count(info, 4, "n");
       void* const out_ = ptr(info, 5, "out");
       bnb::int8LinearMatmul(a_, m_, k_, b_, n_,
                             out_);
       return info.Env().Undefined();)
}

FN(Int8MmDequant) {
  BODY(void* const a_ = ptr(info, 0, "a");
       const long long rows_ = count(info, 1, "rows");
       const long long cols_ = count(info, 2, "cols");
       void* const rowStats_ = ptr(info, 3, "rowStats");
       void* const colStats_ = ptr(info, 4, "colStats");
       void* const bias_ = ptr(info, 5, "bias");
       const int biasKind_ = small(info, 6, "biasKind");
       const int dtype_ = small(info, 7, "dtype");
       void* const out_ = ptr(info, 8, "out");
       bnb::int8MmDequant(a_, rows_, cols_, rowStats_,
                          colStats_, bias_, biasKind_, dtype_,
                          out_);
       return info.Env().Undefined();)
}

FN(Gemv4bit) {
  BODY(void* const a_ = ptr(info, 0, "a");
       const long long m_ = count(info, 1, "m");
       const long long k_ = count(info, 2, "k");
       const int adtype_ = small(info, 3, "adtype");
       void* const packed_ = ptr(info, 4, "packed");
       const long long n_ = count(info, 5, "n");
       void* const absmax_ = ptr(info, 6, "absmax");
       const long long blocksize_ = integer(info, 7, "blocksize");
       const int qtype_ = small(info, 8, "qtype");
       void* const bias_ = ptr(info, 9, "bias");
       const int dtype_ = small(info, 10, "dtype");
       void* const out_ = ptr(info, 11, "out");
       bnb::gemv4bit(a_, m_, k_, adtype_, packed_,
                     n_, absmax_, blocksize_, qtype_,
                     bias_, dtype_, out_);
       return info.Env().Undefined();)
}

FN(Dequantize4bitNested) {
  BODY(void* const packed_ = ptr(info, 0, "packed");
       const long long n_ = count(info, 1, "n");
       const long long blocksize_ = integer(info, 2, "blocksize");
       const int qtype_ = small(info, 3, "qtype");
       void* const qabsmax_ = ptr(info, 4, "qabsmax");
       void* const code2_ = ptr(info, 5, "code2");
       void* const absmax2_ = ptr(info, 6, "absmax2");
       const long long blocksize2_ = integer(info, 7, "blocksize2");
       const double offset_ = number(info, 8, "offset");
       const int dtype_ = small(info, 9, "dtype");
       void* const out_ = ptr(info, 10, "out");
       bnb::dequantize4bitNested(packed_, n_, blocksize_, qtype_, qabsmax_, code2_, absmax2_, blocksize2_, offset_, dtype_, out_);
       return info.Env().Undefined();)
}

FN(DequantizeFp8) {
  BODY(void* const w_ = ptr(info, 0, "w");
       const long long rows_ = count(info, 1, "rows");
       const long long cols_ = count(info, 2, "cols");
       const long long row0_ = count(info, 3, "row0");
       void* const scale_ = ptr(info, 4, "scale");
       const long long scaleCols_ = count(info, 5, "scaleCols");
       const long long blockRows_ = integer(info, 6, "blockRows");
       const long long blockCols_ = integer(info, 7, "blockCols");
       const int dtype_ = small(info, 8, "dtype");
       void* const out_ = ptr(info, 9, "out");
       bnb::dequantizeFp8(w_, rows_, cols_, row0_,
                          scale_, scaleCols_, blockRows_,
                          blockCols_, dtype_, out_);
       return info.Env().Undefined();)
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } fns[] = {
      {"probe", Probe},
      {"setDevice", SetDevice},
      {"malloc", Malloc},
      {"free", Free},
      {"memset", Memset},
      {"copyHtoD", CopyHtoD},
      {"copyDtoH", CopyDtoH},
      {"copyDtoD", CopyDtoD},
      {"synchronize", Synchronize},
      {"spin", Spin},
      {"eventRecord", EventRecord},
      {"eventElapsed", EventElapsed},
      {"eventDestroy", EventDestroy},
      {"quantize4bit", Quantize4bit},
      {"dequantize4bit", Dequantize4bit},
      {"quantizeBlockwise", QuantizeBlockwise},
      {"dequantizeBlockwise", DequantizeBlockwise},
      {"addScalarF32", AddScalarF32},
      {"subtractScalarF32", SubtractScalarF32},
      {"firstNonFinite", FirstNonFinite},
      {"int8VectorwiseQuant", Int8VectorwiseQuant},
      {"int8ColumnQuant", Int8ColumnQuant},
      {"int8VectorwiseDequant", Int8VectorwiseDequant},
      {"int8LinearMatmul", Int8LinearMatmul},
      {"int8MmDequant", Int8MmDequant},
      {"gemv4bit", Gemv4bit},
      {"dequantizeFp8", DequantizeFp8},
      {"dequantize4bitNested", Dequantize4bitNested},
  };
  for (const auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  return exports;
}

}  // namespace

NODE_API_MODULE(bnbjs_cuda, Init)
