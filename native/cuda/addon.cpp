// Node-API bindings of the bnbjs CUDA addon (build/bnbjs_cuda.node). The ABI is the
// CudaAddon interface of src/backend/cuda/addon.ts: device pointers are JS numbers,
// dtype and qtype ids those of src/backend/abi.ts. The kernel functions are generated
// from that table (bindings.gen.h); the runtime calls are written here. Kernels run
// on the default stream in order; copies to the host are synchronous. CUDA failures
// throw Error("CUDA error <name>: <string> in <call>").
#include <napi.h>
#include <cuda_runtime.h>
#include <cmath>
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
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

// The argument kinds of src/backend/abi.ts: a launcher's C++ type and its unpacking.
struct CPtr {
  using T = const void*;
  static T get(const Napi::CallbackInfo& info, size_t i, const char* name) { return ptr(info, i, name); }
};
struct Ptr {
  using T = void*;
  static T get(const Napi::CallbackInfo& info, size_t i, const char* name) { return ptr(info, i, name); }
};
struct Count {
  using T = long long;
  static T get(const Napi::CallbackInfo& info, size_t i, const char* name) { return count(info, i, name); }
};
struct Integer {
  using T = long long;
  static T get(const Napi::CallbackInfo& info, size_t i, const char* name) { return integer(info, i, name); }
};
struct Small {
  using T = int;
  static T get(const Napi::CallbackInfo& info, size_t i, const char* name) { return small(info, i, name); }
};
using Dtype = Small;  // the launcher checks the id
using Qtype = Small;
struct F32 {
  using T = float;
  static T get(const Napi::CallbackInfo& info, size_t i, const char* name) { return (float)number(info, i, name); }
};
struct F64 {
  using T = double;
  static T get(const Napi::CallbackInfo& info, size_t i, const char* name) { return number(info, i, name); }
};

// A kernel function: unpacks the arguments of kinds K... (named by Names) and calls the
// launcher F, whose parameter types must be exactly the kinds' (else it does not compile).
template <typename R, typename... K>
struct Kernel {
  template <R (*F)(typename K::T...), const auto& Names>
  static Napi::Value call(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return unpack<F, Names>(info, std::index_sequence_for<K...>{}); });
  }

  template <R (*F)(typename K::T...), const auto& Names, size_t... I>
  static Napi::Value unpack(const Napi::CallbackInfo& info, std::index_sequence<I...>) {
    // a braced list runs left to right: the first bad argument is the one reported
    std::tuple<typename K::T...> args{K::get(info, I, Names[I])...};
    if constexpr (std::is_void_v<R>) {
      std::apply(F, args);
      return info.Env().Undefined();
    } else {
      return num(info.Env(), (double)std::apply(F, args));
    }
  }
};

struct Binding {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};

#include "bindings.gen.h"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const Binding runtime[] = {
      {"probe", Probe},
      {"setDevice", SetDevice},
      {"malloc", Malloc},
      {"free", Free},
      {"memset", Memset},
      {"copyHtoD", CopyHtoD},
      {"copyDtoH", CopyDtoH},
      {"copyDtoD", CopyDtoD},
      {"synchronize", Synchronize},
      {"eventRecord", EventRecord},
      {"eventElapsed", EventElapsed},
      {"eventDestroy", EventDestroy},
  };
  for (const auto& f : runtime) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  for (const auto& f : kKernels) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  return exports;
}

}  // namespace

NODE_API_MODULE(bnbjs_cuda, Init)
