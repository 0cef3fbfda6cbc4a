// Shared machinery of the addon: the Tensor wrapper, argument parsing, result
// conversion and the error guard. Every exported function goes through
// `Guarded`, so no C++ exception ever reaches Node (which would abort).
#pragma once

#include <napi.h>

// The parts of libtorch the addon uses: ATen (tensors, operators, grad mode, threads), autograd
// (custom functions, torch::autograd::grad, the engine, factories that honour requires_grad), the
// torch::cuda queries and the torch:: names of <torch/types.h> and <torch/utils.h>. Not
// <torch/torch.h>: it adds the C++ frontend (nn, optim, data loaders, serialization, JIT), which no
// file uses and which cost most of each file's compile time.
// This header is also the build's precompiled header (CMakeLists.txt).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
#include <torch/cuda.h>
#include <torch/types.h>  // torch::Tensor, torch::kFloat32 and the like
#include <torch/utils.h>  // torch::manual_seed, torch::NoGradGuard, torch::set_num_threads
#include <c10/util/flat_hash_map.h>  // ska::flat_hash_map: open addressing, one probe in a flat array

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "wrapper_pool.h"

namespace innerloop {

// ---------------------------------------------------------------------------
// Tensor wrapper. One JS object owns one at::Tensor reference. Tensors created
// while a scope is open are linked into that scope's intrusive list, so
// closing the scope can release them without holding JS references.
struct Scope;

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Value Wrap(Napi::Env env, at::Tensor t);
  // Returns nullptr when `v` is not a tensor created by this addon.
  static TensorWrap* Unwrap(Napi::Value v);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

  // From this thread's wrapper pool, which is also how Unwrap tells our wrappers from other
  // addons' (wrapper_pool.h).
  static void* operator new(std::size_t bytes) { return WrapperPool::Allocate(bytes); }
  static void operator delete(void* p) noexcept { WrapperPool::Free(p); }

  // Drops the reference to the at::Tensor (idempotent).
  void Release();
  bool disposed() const { return !tensor_.defined(); }
  at::Tensor& tensor() { return tensor_; }

  // Scope bookkeeping.
  void Unlink();
  void LinkInto(Scope* s);
  Scope* scope = nullptr;
  TensorWrap* prev = nullptr;
  TensorWrap* next = nullptr;

 private:
  at::Tensor tensor_;
  int64_t reportedBytes_ = 0;
  Napi::Env env_;
  struct EnvData* data_;  // the environment (main thread or worker) that made this tensor
};

struct Scope {
  TensorWrap* head = nullptr;
  Scope* parent = nullptr;
  int64_t id = 0;
};

// ---------------------------------------------------------------------------
// Per-environment state. Node runs the main thread and every worker_thread in
// its own environment (its own V8 isolate), and each loads this addon on its
// own: JS handles (the Tensor constructor, the error classes, the tidy hook)
// and the bookkeeping of that environment's tensors live here, in N-API
// instance data, so that threads never see each other's handles. libtorch's
// own state (allocators, the intra-op thread pool, RNG) stays process-wide.

// A list of tensors handed to the addon once and then passed by handle (tensorList()).
struct TensorList {
  std::vector<TensorWrap*> items;
  std::vector<napi_ref> refs;
};

struct EnvData {
  Napi::FunctionReference tensorCtor;
  Napi::FunctionReference torchError, oomError;
  Napi::FunctionReference createHook;  // set while an async scope is open
  at::Tensor* pending = nullptr;       // handed from Wrap() to the constructor
  Scope* scope = nullptr;
  int64_t scopeIds = 0;
  int64_t live = 0;
  // Bytes of CPU storage referenced by live JS tensors, each storage counted once.
  struct StorageUse {
    int64_t refs = 0;
    int64_t bytes = 0;
  };
  ska::flat_hash_map<const void*, StorageUse> cpuStorages;
  int64_t cpuBytes = 0;
  int64_t unreportedBytes = 0;
  std::unordered_set<const TensorList*> lists;
  // Set by the environment's cleanup hook: the thread is exiting (or was terminated) and no
  // JS runs any more; finalizers that still run must not call back into V8.
  bool closing = false;
  // State of other files (process groups, gradient reducers), made on first use and
  // destroyed with the environment.
  std::shared_ptr<void> distributed;
};

// The calling environment's state: one N-API call that reads a pointer.
inline EnvData& Data(napi_env env) {
  void* d = nullptr;
  napi_get_instance_data(env, &d);
  return *static_cast<EnvData*>(d);
}

// A per-environment slot of type T, made on first use.
template <typename T>
T& EnvSlot(std::shared_ptr<void>& slot) {
  if (!slot) slot = std::make_shared<T>();
  return *static_cast<T*>(slot.get());
}

Scope* CurrentScope(napi_env env);

// ---------------------------------------------------------------------------
// Errors. ArgError becomes a JS TypeError, everything from libtorch a
// TorchError (OutOfMemoryError for allocation failures).
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void ThrowTorchError(Napi::Env env, const char* fn, const std::string& message, bool oom);

// What a JS value is, for messages: "number", "array", "Tensor", "a disposed Tensor", ...
const char* TypeName(const Napi::Value& v);

// ---------------------------------------------------------------------------
// Argument access by position, with messages that name the function and the
// argument. Missing optional arguments are `undefined` or `null`.
//
// `names` lists the parameters by position, comma-separated, as PyTorch names
// them (camelCase, as in the TypeScript API): "self,other,alpha". It is a
// string literal that is only read when a message is built, so naming costs
// nothing on calls that succeed. Without it, messages give positions only.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn, const char* names = nullptr)
      : info_(info), fn_(fn), names_(names) {}
  const char* fn() const { return fn_; }
  Napi::Env env() const { return info_.Env(); }
  size_t size() const { return info_.Length(); }
  bool Has(size_t i) const;

  at::Tensor& T(size_t i);
  std::optional<at::Tensor> OptT(size_t i);
  // A tensor, or a JS number/boolean turned into a "wrapped number" tensor that,
  // like in PyTorch, takes no part in type promotion.
  at::Tensor TS(size_t i);
  at::Scalar Sc(size_t i);
  std::optional<at::Scalar> OptSc(size_t i);
  double D(size_t i);
  double D(size_t i, double dflt);
  std::optional<double> OptD(size_t i);
  int64_t I(size_t i);
  int64_t I(size_t i, int64_t dflt);
  std::optional<int64_t> OptI(size_t i);
  bool B(size_t i, bool dflt = false);
  std::vector<int64_t> IL(size_t i);  // number or array of numbers
  std::optional<std::vector<int64_t>> OptIL(size_t i);
  std::vector<at::Tensor> TL(size_t i);
  std::string S(size_t i);
  at::ScalarType DT(size_t i);
  std::optional<at::ScalarType> OptDT(size_t i);
  std::optional<at::Device> OptDev(size_t i);
  at::TensorOptions Options(size_t dtypeIdx, size_t deviceIdx, size_t gradIdx);

  [[noreturn]] void Fail(size_t i, const char* expected) const;
  // "argument 1 (other)", or "argument 1" when the parameter has no name.
  std::string Label(size_t i) const;

 private:
  const Napi::CallbackInfo& info_;
  const char* fn_;
  const char* names_;
};

// ---------------------------------------------------------------------------
// Result conversion.
inline Napi::Value ToJS(Napi::Env env, const at::Tensor& t) { return TensorWrap::Wrap(env, t); }
inline Napi::Value ToJS(Napi::Env env, at::Tensor&& t) { return TensorWrap::Wrap(env, std::move(t)); }
inline Napi::Value ToJS(Napi::Env env, double v) { return Napi::Number::New(env, v); }
inline Napi::Value ToJS(Napi::Env env, int64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }
inline Napi::Value ToJS(Napi::Env env, bool v) { return Napi::Boolean::New(env, v); }
inline Napi::Value ToJS(Napi::Env env, const std::string& v) { return Napi::String::New(env, v); }
Napi::Value ToJS(Napi::Env env, const std::vector<at::Tensor>& v);
Napi::Value ToJS(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& v);

// ---------------------------------------------------------------------------
// dtype / device names shared with TypeScript.
at::ScalarType ParseDType(const std::string& s);
const char* DTypeName(at::ScalarType t);
at::Device ParseDevice(const std::string& s);
std::string DeviceName(const at::Device& d);

// Runs `body` and turns C++ exceptions into JS exceptions.
template <typename F>
Napi::Value Guarded(const Napi::CallbackInfo& info, const char* fn, F&& body) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(env, e.what());
  } catch (const c10::OutOfMemoryError& e) {
    ThrowTorchError(env, fn, e.what_without_backtrace(), true);
  } catch (const c10::Error& e) {
    // Host allocation failures come as plain c10::Error from the CPU allocator.
    std::string msg = e.what_without_backtrace();
    ThrowTorchError(env, fn, msg, msg.find("can't allocate memory") != std::string::npos);
  } catch (const std::bad_alloc&) {
    ThrowTorchError(env, fn, "out of host memory", true);
  } catch (const std::exception& e) {
    ThrowTorchError(env, fn, e.what(), false);
  } catch (...) {
    ThrowTorchError(env, fn, "unknown native error", false);
  }
  return env.Undefined();
}

// Registration helpers: each translation unit adds its functions to `exports`.
void RegisterOps(Napi::Env env, Napi::Object exports);
void RegisterOptim(Napi::Env env, Napi::Object exports);
void RegisterDistributed(Napi::Env env, Napi::Object exports);
void RegisterFused(Napi::Env env, Napi::Object exports);
void RegisterCpuAllocator(Napi::Env env, Napi::Object exports);
void RegisterCudaGraph(Napi::Env env, Napi::Object exports);
void RegisterAten(Napi::Env env, Napi::Object exports);

}  // namespace innerloop
