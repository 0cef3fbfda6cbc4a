// The Tensor wrapper, memory scopes, argument parsing, conversions between JS
// values and tensors, autograd entry points, RNG, CUDA queries and module init.
#include "binding.h"
#include "gemm.h"

#include <ATen/autocast_mode.h>
#include <dlfcn.h>
#include <unistd.h>
#include <torch/version.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#ifdef INNERLOOP_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace innerloop {

namespace {

// External-memory reports to V8 are batched: one call per megabyte of change
// instead of one per tensor keeps the per-op cost low.
void ReportExternal(napi_env env, EnvData& d, int64_t delta) {
  d.unreportedBytes += delta;
  if (d.closing) return;  // the isolate is being torn down
  if (d.unreportedBytes > (1 << 20) || d.unreportedBytes < -(1 << 20)) {
    int64_t ignored;
    napi_adjust_external_memory(env, d.unreportedBytes, &ignored);
    d.unreportedBytes = 0;
  }
}

// The handle holds a reference to each element's JS object, so that its wrapper outlives the
// handle; it does not hold the tensors themselves: a tensor disposed meanwhile is reported as
// disposed, as it would be in an array.
void FinalizeTensorList(Napi::Env env, TensorList* l) {
  for (napi_ref r : l->refs) napi_delete_reference(env, r);
  Data(env).lists.erase(l);
  delete l;
}

}  // namespace

Scope* CurrentScope(napi_env env) { return Data(env).scope; }

#ifdef INNERLOOP_WITH_CUDA
// The caching allocator's statistics for a device; zeros before CUDA is
// initialised (libtorch throws "Invalid device argument" then).
decltype(c10::cuda::CUDACachingAllocator::getDeviceStats(0)) CudaStats(c10::DeviceIndex d) {
  try {
    return c10::cuda::CUDACachingAllocator::getDeviceStats(d);
  } catch (const c10::Error&) {
    return {};
  }
}
#endif

// ---------------------------------------------------------------------------
// TensorWrap

static_assert(sizeof(TensorWrap) <= WrapperPool::kMaxObject, "a TensorWrap must fit a wrapper pool slot");

Napi::Function TensorWrap::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "Tensor", {});
  Data(env).tensorCtor = Napi::Persistent(ctor);
  return ctor;
}

Napi::Value TensorWrap::Wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  EnvData& d = Data(env);
  d.pending = &t;
  Napi::Object obj = d.tensorCtor.New({});
  d.pending = nullptr;
  return obj;
}

TensorWrap* TensorWrap::Unwrap(Napi::Value v) {
  if (!v.IsObject()) return nullptr;
  void* raw = nullptr;
  if (napi_unwrap(v.Env(), v, &raw) != napi_ok || raw == nullptr) return nullptr;
  auto* w = static_cast<TensorWrap*>(raw);
  return WrapperPool::Owns(w) ? w : nullptr;
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<TensorWrap>(info), env_(info.Env()), data_(&Data(info.Env())) {
  EnvData& d = *data_;
  if (d.pending == nullptr) {
    throw Napi::TypeError::New(info.Env(),
        "Tensors are made by factories such as torch.tensor() or torch.zeros(), not with `new`");
  }
  tensor_ = std::move(*d.pending);
  d.pending = nullptr;
  ++d.live;
  if (tensor_.device().is_cpu() && tensor_.has_storage()) {
    const void* key = tensor_.storage().unsafeGetStorageImpl();
    EnvData::StorageUse& use = d.cpuStorages[key];
    if (use.refs++ == 0) {
      use.bytes = static_cast<int64_t>(tensor_.storage().nbytes());
      d.cpuBytes += use.bytes;
      reportedBytes_ = use.bytes;
      if (reportedBytes_ > 0) ReportExternal(info.Env(), d, reportedBytes_);
    }
  }
  if (d.scope != nullptr) {
    LinkInto(d.scope);
  } else if (!d.createHook.IsEmpty()) {
    d.createHook.Call({info.This()});
  }
}

TensorWrap::~TensorWrap() {
  Release();
}

void TensorWrap::Release() {
  if (!tensor_.defined()) return;
  EnvData& d = *data_;
  Unlink();
  if (tensor_.device().is_cpu() && tensor_.has_storage()) {
    auto it = d.cpuStorages.find(tensor_.storage().unsafeGetStorageImpl());
    if (it != d.cpuStorages.end() && --it->second.refs == 0) {
      d.cpuBytes -= it->second.bytes;
      d.cpuStorages.erase(it);
    }
  }
  if (reportedBytes_ > 0) {
    ReportExternal(env_, d, -reportedBytes_);
    reportedBytes_ = 0;
  }
  tensor_.reset();
  --d.live;
}

void TensorWrap::Unlink() {
  if (scope == nullptr) return;
  if (prev) prev->next = next; else scope->head = next;
  if (next) next->prev = prev;
  prev = next = nullptr;
  scope = nullptr;
}

void TensorWrap::LinkInto(Scope* s) {
  Unlink();
  scope = s;
  next = s->head;
  if (next) next->prev = this;
  s->head = this;
}

// ---------------------------------------------------------------------------
// Errors

namespace {
void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) s.replace(pos, from.size(), to);
}
}  // namespace

void ThrowTorchError(Napi::Env env, const char* fn, const std::string& message, bool oom) {
  std::string msg = message;
  // libtorch messages sometimes end in a newline or carry "Exception raised from ..." lines.
  auto pos = msg.find("\nException raised from");
  if (pos != std::string::npos) msg = msg.substr(0, pos);
  // "Could not run 'aten::x' with arguments from the 'B' backend" is followed by
  // a dump of the dispatcher's registrations: keep the first paragraph only.
  if (msg.find("registered at ") != std::string::npos) {
    auto para = msg.find("\n\n");
    if (para != std::string::npos) msg = msg.substr(0, para);
  }
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  // Autograd's advice names Python spellings: give the TypeScript option instead, and drop the
  // anomaly-detection hint (this binding has no anomaly mode).
  ReplaceAll(msg, "Specify retain_graph=True", "Pass { retainGraph: true } to backward() or autograd.grad()");
  if (auto hint = msg.find(" Hint: enable anomaly detection"); hint != std::string::npos) {
    auto end = msg.find(").", hint);
    msg.erase(hint, end == std::string::npos ? std::string::npos : end + 2 - hint);
  }
  std::string full = std::string(fn) + ": " + msg;
  if (oom) {
#ifdef INNERLOOP_WITH_CUDA
    // Best effort: releasing the cache must not turn an error into a crash (it refuses, for one,
    // while a graph capture is under way).
    try {
      if (torch::cuda::is_available()) c10::cuda::CUDACachingAllocator::emptyCache();
    } catch (...) {
    }
#endif
  }
  Napi::FunctionReference& ctor = oom ? Data(env).oomError : Data(env).torchError;
  if (ctor.IsEmpty()) throw Napi::Error::New(env, full);
  Napi::Object err = ctor.New({Napi::String::New(env, full)});
  throw Napi::Error(env, err);
}

// ---------------------------------------------------------------------------
// Args

const char* TypeName(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object:
      if (v.IsArray()) return "array";
      if (TensorWrap* w = TensorWrap::Unwrap(v)) return w->disposed() ? "a disposed Tensor" : "Tensor";
      return "object";
    case napi_function: return "function";
    case napi_bigint: return "bigint";
    default: return "value";
  }
}

bool Args::Has(size_t i) const {
  if (i >= info_.Length()) return false;
  napi_valuetype t = info_[i].Type();
  return t != napi_undefined && t != napi_null;
}

std::string Args::Label(size_t i) const {
  std::string label = "argument " + std::to_string(i);
  if (names_ == nullptr) return label;
  // The i-th comma-separated entry of names_.
  const char* p = names_;
  for (size_t k = 0; k < i && *p != '\0'; ++p) {
    if (*p == ',') ++k;
  }
  const char* end = p;
  while (*end != '\0' && *end != ',') ++end;
  if (end != p) label += " (" + std::string(p, end) + ")";
  return label;
}

// Whether `v` is what a tensor becomes when it is sent to another thread: postMessage and
// structuredClone copy own enumerable properties only, and a tensor has none, so the copy is an
// empty plain object.
static bool LooksLikeClonedTensor(const Napi::Value& v) {
  if (!v.IsObject() || v.IsArray()) return false;
  Napi::Object o = v.As<Napi::Object>();
  napi_value proto, objectProto;
  Napi::Env env = v.Env();
  if (napi_get_prototype(env, o, &proto) != napi_ok) return false;
  Napi::Object objectCtor = env.Global().Get("Object").As<Napi::Object>();
  objectProto = objectCtor.Get("prototype");
  bool same = false;
  napi_strict_equals(env, proto, objectProto, &same);
  return same && o.GetPropertyNames().Length() == 0;
}

void Args::Fail(size_t i, const char* expected) const {
  std::string got = i < info_.Length() ? TypeName(info_[i]) : "nothing";
  if (i < info_.Length() && info_[i].IsObject()) {
    if (auto* w = TensorWrap::Unwrap(info_[i]); w && w->disposed()) got = "a disposed tensor";
  }
  if (i < info_.Length() && std::strstr(expected, "Tensor") != nullptr && LooksLikeClonedTensor(info_[i])) {
    // A TorchError (the Guarded catch-all), not a TypeError: the value was a tensor, of another thread.
    throw std::runtime_error(Label(i) +
        " is an empty object, as a tensor of another thread becomes when it is sent with postMessage or "
        "structuredClone: a tensor belongs to the thread that made it. Send its data instead "
        "(await t.data(), with t.shape and t.dtype) and make a tensor from it with torch.tensor()");
  }
  throw ArgError(std::string(fn_) + ": " + Label(i) + " must be " + expected + ", got " + got);
}

at::Tensor& Args::T(size_t i) {
  TensorWrap* w = i < info_.Length() ? TensorWrap::Unwrap(info_[i]) : nullptr;
  if (w == nullptr) Fail(i, "a Tensor");
  if (w->disposed()) {
    throw ArgError(std::string(fn_) + ": " + Label(i) + " is a tensor that was disposed; it can no longer be used");
  }
  return w->tensor();
}

std::optional<at::Tensor> Args::OptT(size_t i) {
  if (!Has(i)) return std::nullopt;
  return T(i);
}

at::Tensor Args::TS(size_t i) {
  if (i < info_.Length()) {
    Napi::Value v = info_[i];
    if (v.IsNumber()) {
      double d = v.As<Napi::Number>().DoubleValue();
      at::Tensor s;
      if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) {
        s = at::scalar_tensor(static_cast<int64_t>(d), at::kLong);
      } else {
        s = at::scalar_tensor(d, at::kDouble);
      }
      s.unsafeGetTensorImpl()->set_wrapped_number(true);
      return s;
    }
    if (v.IsBoolean()) {
      at::Tensor s = at::scalar_tensor(v.As<Napi::Boolean>().Value(), at::kBool);
      s.unsafeGetTensorImpl()->set_wrapped_number(true);
      return s;
    }
    if (TensorWrap* w = TensorWrap::Unwrap(v)) {
      if (!w->disposed()) return w->tensor();
      return T(i);  // the disposed-tensor message
    }
  }
  Fail(i, "a Tensor or a number");
}

at::Scalar Args::Sc(size_t i) {
  if (i < info_.Length()) {
    Napi::Value v = info_[i];
    if (v.IsNumber()) {
      double d = v.As<Napi::Number>().DoubleValue();
      if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) {
        return at::Scalar(static_cast<int64_t>(d));
      }
      return at::Scalar(d);
    }
    if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  }
  Fail(i, "a number");
}

std::optional<at::Scalar> Args::OptSc(size_t i) {
  if (!Has(i)) return std::nullopt;
  return Sc(i);
}

double Args::D(size_t i) {
  if (i >= info_.Length() || !info_[i].IsNumber()) Fail(i, "a number");
  return info_[i].As<Napi::Number>().DoubleValue();
}

double Args::D(size_t i, double dflt) { return Has(i) ? D(i) : dflt; }

std::optional<double> Args::OptD(size_t i) {
  if (!Has(i)) return std::nullopt;
  return D(i);
}

int64_t Args::I(size_t i) {
  if (i >= info_.Length() || !info_[i].IsNumber()) Fail(i, "an integer");
  double d = info_[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.007199254740992e15) Fail(i, "an integer");
  return static_cast<int64_t>(d);
}

int64_t Args::I(size_t i, int64_t dflt) { return Has(i) ? I(i) : dflt; }

std::optional<int64_t> Args::OptI(size_t i) {
  if (!Has(i)) return std::nullopt;
  return I(i);
}

bool Args::B(size_t i, bool dflt) {
  if (!Has(i)) return dflt;
  if (!info_[i].IsBoolean()) Fail(i, "a boolean");
  return info_[i].As<Napi::Boolean>().Value();
}

// A value as an argument error shows it: `NaN`, `1.5`, `the string "3"`, or its type.
static std::string DescribeValue(const Napi::Value& v) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    std::ostringstream s;
    s << std::setprecision(17) << d;
    return s.str();
  }
  if (v.IsString()) return "the string \"" + v.As<Napi::String>().Utf8Value() + "\"";
  return TypeName(v);
}

std::vector<int64_t> Args::IL(size_t i) {
  if (i < info_.Length() && info_[i].IsNumber()) return {I(i)};
  if (i >= info_.Length() || !info_[i].IsArray()) Fail(i, "an integer or an array of integers");
  Napi::Array arr = info_[i].As<Napi::Array>();
  uint32_t n = arr.Length();
  std::vector<int64_t> out(n);
  for (uint32_t k = 0; k < n; ++k) {
    Napi::Value e = arr.Get(k);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!e.IsNumber() || !std::isfinite(d) || std::floor(d) != d) {
      throw ArgError(std::string(fn_) + ": element " + std::to_string(k) + " of " + Label(i) +
                     " must be an integer, got " + DescribeValue(e));
    }
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

std::optional<std::vector<int64_t>> Args::OptIL(size_t i) {
  if (!Has(i)) return std::nullopt;
  return IL(i);
}

std::vector<at::Tensor> Args::TL(size_t i) {
  std::vector<at::Tensor> out;
  auto take = [&](uint32_t k, TensorWrap* w) {
    if (w->disposed()) {
      throw ArgError(std::string(fn_) + ": element " + std::to_string(k) + " of " + Label(i) +
                     " is a tensor that was disposed");
    }
    out.push_back(w->tensor());
  };
  if (i < info_.Length() && info_[i].IsExternal()) {
    const auto* l = static_cast<const TensorList*>(info_[i].As<Napi::External<void>>().Data());
    if (Data(env()).lists.count(l) == 0) Fail(i, "an array of Tensors");
    out.reserve(l->items.size());
    for (size_t k = 0; k < l->items.size(); ++k) take(static_cast<uint32_t>(k), l->items[k]);
    return out;
  }
  if (i >= info_.Length() || !info_[i].IsArray()) Fail(i, "an array of Tensors");
  Napi::Array arr = info_[i].As<Napi::Array>();
  uint32_t n = arr.Length();
  out.reserve(n);
  for (uint32_t k = 0; k < n; ++k) {
    Napi::Value e = arr.Get(k);
    TensorWrap* w = TensorWrap::Unwrap(e);
    if (w == nullptr) {
      throw ArgError(std::string(fn_) + ": element " + std::to_string(k) + " of " + Label(i) +
                     " must be a Tensor, got " + TypeName(e));
    }
    take(k, w);
  }
  return out;
}

std::string Args::S(size_t i) {
  if (i >= info_.Length() || !info_[i].IsString()) Fail(i, "a string");
  return info_[i].As<Napi::String>().Utf8Value();
}

at::ScalarType Args::DT(size_t i) {
  std::string s = S(i);
  try {
    return ParseDType(s);
  } catch (const ArgError&) {
    throw ArgError(std::string(fn_) + ": unknown dtype '" + s +
                   "' (expected float32, float64, bfloat16, float16, complex64, complex128, int64, int32, int16, int8, uint8 or bool)");
  }
}

std::optional<at::ScalarType> Args::OptDT(size_t i) {
  if (!Has(i)) return std::nullopt;
  return DT(i);
}

std::optional<at::Device> Args::OptDev(size_t i) {
  if (!Has(i)) return std::nullopt;
  std::string s = S(i);
  at::Device d(at::kCPU);
  try {
    d = ParseDevice(s);
  } catch (const ArgError&) {
    throw ArgError(std::string(fn_) + ": unknown device '" + s + "' (expected 'cpu', 'cuda' or 'cuda:N')");
  }
  if (d.is_cuda()) {
    // Checked here because libtorch's own message for this is a dispatcher dump.
    if (!torch::cuda::is_available()) {
      throw ArgError(std::string(fn_) + ": device '" + s +
                     "' requested but CUDA is not available (libtorch without CUDA, or no GPU visible)");
    }
    int64_t n = static_cast<int64_t>(torch::cuda::device_count());
    if (d.index() >= n) {
      throw ArgError(std::string(fn_) + ": device '" + s + "' does not exist; this machine has " +
                     std::to_string(n) + " CUDA device(s)");
    }
  }
  return d;
}

at::TensorOptions Args::Options(size_t dtypeIdx, size_t deviceIdx, size_t gradIdx) {
  at::TensorOptions o = at::TensorOptions().dtype(OptDT(dtypeIdx).value_or(at::kFloat));
  if (auto d = OptDev(deviceIdx)) o = o.device(*d);
  if (B(gradIdx, false)) o = o.requires_grad(true);
  return o;
}

// ---------------------------------------------------------------------------
// Names

at::ScalarType ParseDType(const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "float64") return at::kDouble;
  if (s == "bfloat16") return at::kBFloat16;
  if (s == "float16") return at::kHalf;
  if (s == "int64") return at::kLong;
  if (s == "int32") return at::kInt;
  if (s == "int16") return at::kShort;
  if (s == "int8") return at::kChar;
  if (s == "uint8") return at::kByte;
  if (s == "uint16") return at::kUInt16;
  if (s == "bool") return at::kBool;
  if (s == "uint32") return at::kUInt32;
  if (s == "uint64") return at::kUInt64;
  if (s == "complex64") return at::kComplexFloat;
  if (s == "complex128") return at::kComplexDouble;
  if (s == "complex32") return at::kComplexHalf;
  throw ArgError("unknown dtype '" + s + "'");
}

const char* DTypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kUInt16: return "uint16";
    case at::kBool: return "bool";
    case at::kUInt32: return "uint32";
    case at::kUInt64: return "uint64";
    case at::kComplexFloat: return "complex64";
    case at::kComplexDouble: return "complex128";
    case at::kComplexHalf: return "complex32";
    default: return "unsupported";
  }
}

at::Device ParseDevice(const std::string& s) {
  if (s == "cpu") return at::Device(at::kCPU);
  if (s == "cuda") return at::Device(at::kCUDA, 0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9) {
    for (size_t k = 5; k < s.size(); ++k) {
      if (s[k] < '0' || s[k] > '9') throw ArgError("unknown device '" + s + "'");
    }
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(s.substr(5))));
  }
  throw ArgError("unknown device '" + s + "'");
}

std::string DeviceName(const at::Device& d) {
  if (d.is_cpu()) return "cpu";
  if (d.is_cuda()) return "cuda:" + std::to_string(d.has_index() ? d.index() : 0);
  return d.str();
}

Napi::Value ToJS(Napi::Env env, const std::vector<at::Tensor>& v) {
  Napi::Array arr = Napi::Array::New(env, v.size());
  for (size_t k = 0; k < v.size(); ++k) arr.Set(static_cast<uint32_t>(k), TensorWrap::Wrap(env, v[k]));
  return arr;
}

Napi::Value ToJS(Napi::Env env, const std::tuple<at::Tensor, at::Tensor>& v) {
  Napi::Array arr = Napi::Array::New(env, 2);
  arr.Set(0u, TensorWrap::Wrap(env, std::get<0>(v)));
  arr.Set(1u, TensorWrap::Wrap(env, std::get<1>(v)));
  return arr;
}

// ---------------------------------------------------------------------------
// Exported functions that are not plain ops.

namespace {

#define NATIVE(name) Napi::Value name(const Napi::CallbackInfo& info)
#define BODY(label) return Guarded(info, label, [&]() -> Napi::Value

// init({ TorchError, OutOfMemoryError })
NATIVE(InitErrors) {
  Napi::Object o = info[0].As<Napi::Object>();
  EnvData& d = Data(info.Env());
  d.torchError = Napi::Persistent(o.Get("TorchError").As<Napi::Function>());
  d.oomError = Napi::Persistent(o.Get("OutOfMemoryError").As<Napi::Function>());
  return info.Env().Undefined();
}

NATIVE(SetCreateHook) {
  EnvData& d = Data(info.Env());
  d.createHook.Reset();
  if (info.Length() > 0 && info[0].IsFunction()) d.createHook = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// --- scopes
NATIVE(ScopeBegin) {
  EnvData& d = Data(info.Env());
  Scope* s = new Scope();
  s->parent = d.scope;
  s->id = ++d.scopeIds;
  d.scope = s;
  return Napi::Number::New(info.Env(), static_cast<double>(s->id));
}

// scopeEnd(id, keepList): tensors in keepList move to the enclosing scope, the rest are released.
NATIVE(ScopeEnd) {
  BODY("tidy") {
    Args a(info, "tidy");
    int64_t id = a.I(0);
    EnvData& d = Data(info.Env());
    if (d.scope == nullptr || d.scope->id != id) {
      throw ArgError("tidy: scopes were closed out of order (a tidy callback escaped its scope)");
    }
    Scope* s = d.scope;
    if (a.Has(1)) {
      Napi::Array keep = info[1].As<Napi::Array>();
      for (uint32_t k = 0; k < keep.Length(); ++k) {
        TensorWrap* w = TensorWrap::Unwrap(keep.Get(k));
        if (w && w->scope == s) {
          if (s->parent) w->LinkInto(s->parent); else w->Unlink();
        }
      }
    }
    int64_t released = 0;
    while (s->head != nullptr) {
      TensorWrap* w = s->head;
      w->Release();  // unlinks
      ++released;
    }
    d.scope = s->parent;
    delete s;
    return Napi::Number::New(info.Env(), static_cast<double>(released));
  });
}

// Moves a tensor out of every scope: no tidy will release it.
NATIVE(Keep) {
  TensorWrap* w = TensorWrap::Unwrap(info[0]);
  if (w) w->Unlink();
  return info[0];
}

// Moves a tensor into the current scope (used for tensors adopted by async scopes).
NATIVE(Track) {
  TensorWrap* w = TensorWrap::Unwrap(info[0]);
  if (Scope* s = Data(info.Env()).scope; w && s) w->LinkInto(s);
  return info[0];
}

NATIVE(Dispose) {
  TensorWrap* w = TensorWrap::Unwrap(info[0]);
  if (w) w->Release();
  return info.Env().Undefined();
}

NATIVE(IsDisposed) {
  TensorWrap* w = TensorWrap::Unwrap(info[0]);
  return Napi::Boolean::New(info.Env(), w == nullptr || w->disposed());
}

// tensorList(tensors) -> a handle that list arguments accept in place of the array.
NATIVE(MakeTensorList) {
  return Guarded(info, "tensorList", [&]() -> Napi::Value {
    Args a(info, "tensorList", "tensors");
    a.TL(0);  // every element a live tensor, with the usual messages
    Napi::Array arr = info[0].As<Napi::Array>();
    auto* l = new TensorList();
    for (uint32_t k = 0; k < arr.Length(); ++k) {
      Napi::Value e = arr.Get(k);
      napi_ref r = nullptr;
      if (napi_create_reference(info.Env(), e, 1, &r) != napi_ok) {
        FinalizeTensorList(info.Env(), l);
        throw ArgError("tensorList: could not reference element " + std::to_string(k));
      }
      l->refs.push_back(r);
      l->items.push_back(TensorWrap::Unwrap(e));
    }
    Data(info.Env()).lists.insert(l);
    return Napi::External<TensorList>::New(info.Env(), l, FinalizeTensorList);
  });
}

NATIVE(IsTensor) {
  return Napi::Boolean::New(info.Env(), TensorWrap::Unwrap(info[0]) != nullptr);
}

NATIVE(Memory) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  EnvData& d = Data(env);
  o.Set("liveTensors", Napi::Number::New(env, static_cast<double>(d.live)));
  o.Set("cpuBytes", Napi::Number::New(env, static_cast<double>(d.cpuBytes)));
  double allocated = 0, reserved = 0;
#ifdef INNERLOOP_WITH_CUDA
  if (torch::cuda::is_available()) {
    for (int d = 0; d < static_cast<int>(torch::cuda::device_count()); ++d) {
      auto stats = CudaStats(static_cast<c10::DeviceIndex>(d));
      allocated += static_cast<double>(stats.allocated_bytes[0].current);
      reserved += static_cast<double>(stats.reserved_bytes[0].current);
    }
  }
#endif
  o.Set("cudaAllocated", Napi::Number::New(env, allocated));
  o.Set("cudaReserved", Napi::Number::New(env, reserved));
  return o;
}

// --- factories
NATIVE(Zeros) { BODY("zeros") { Args a(info, "zeros", "size,dtype,device,requiresGrad"); return ToJS(info.Env(), torch::zeros(a.IL(0), a.Options(1, 2, 3))); }); }
NATIVE(Ones) { BODY("ones") { Args a(info, "ones", "size,dtype,device,requiresGrad"); return ToJS(info.Env(), torch::ones(a.IL(0), a.Options(1, 2, 3))); }); }
NATIVE(Empty) { BODY("empty") { Args a(info, "empty", "size,dtype,device,requiresGrad"); return ToJS(info.Env(), torch::empty(a.IL(0), a.Options(1, 2, 3))); }); }
NATIVE(Full) {
  BODY("full") {
    Args a(info, "full", "size,fillValue,dtype,device,requiresGrad");
    return ToJS(info.Env(), torch::full(a.IL(0), a.Sc(1), a.Options(2, 3, 4)));
  });
}
NATIVE(Randn) { BODY("randn") { Args a(info, "randn", "size,dtype,device,requiresGrad"); return ToJS(info.Env(), torch::randn(a.IL(0), a.Options(1, 2, 3))); }); }
NATIVE(Rand) { BODY("rand") { Args a(info, "rand", "size,dtype,device,requiresGrad"); return ToJS(info.Env(), torch::rand(a.IL(0), a.Options(1, 2, 3))); }); }
NATIVE(Randint) {
  BODY("randint") {
    Args a(info, "randint", "low,high,size,dtype,device");
    at::TensorOptions o = at::TensorOptions().dtype(a.OptDT(3).value_or(at::kLong));
    if (auto d = a.OptDev(4)) o = o.device(*d);
    return ToJS(info.Env(), torch::randint(a.I(0), a.I(1), a.IL(2), o));
  });
}
// arange(start, end, step, dtype|null, device)
NATIVE(Arange) {
  BODY("arange") {
    Args a(info, "arange", "start,end,step,dtype,device,requiresGrad");
    at::TensorOptions o;
    if (auto dt = a.OptDT(3)) o = o.dtype(*dt);
    if (auto d = a.OptDev(4)) o = o.device(*d);
    if (a.B(5, false)) o = o.requires_grad(true);
    return ToJS(info.Env(), torch::arange(a.Sc(0), a.Sc(1), a.Sc(2), o));
  });
}
NATIVE(Linspace) {
  BODY("linspace") {
    Args a(info, "linspace", "start,end,steps,dtype,device,requiresGrad");
    return ToJS(info.Env(), torch::linspace(a.Sc(0), a.Sc(1), a.I(2), a.Options(3, 4, 5)));
  });
}
NATIVE(Eye) {
  BODY("eye") {
    Args a(info, "eye", "n,m,dtype,device,requiresGrad");
    return ToJS(info.Env(), torch::eye(a.I(0), a.I(1), a.Options(2, 3, 4)));
  });
}
// zerosLike/onesLike/emptyLike/randnLike(t, dtype?, device?)
template <at::Tensor (*F)(const at::Tensor&, at::TensorOptions, std::optional<at::MemoryFormat>)>
Napi::Value LikeFactory(const Napi::CallbackInfo& info, const char* fn) {
  BODY(fn) {
    Args a(info, fn, "input,dtype,device,requiresGrad");
    at::Tensor& t = a.T(0);
    at::TensorOptions o = at::TensorOptions().dtype(a.OptDT(1).value_or(t.scalar_type())).device(a.OptDev(2).value_or(t.device()));
    if (a.B(3, false)) o = o.requires_grad(true);
    return ToJS(info.Env(), F(t, o, std::nullopt));
  });
}
NATIVE(ZerosLike) { return LikeFactory<torch::zeros_like>(info, "zerosLike"); }
NATIVE(OnesLike) { return LikeFactory<torch::ones_like>(info, "onesLike"); }
NATIVE(EmptyLike) { return LikeFactory<torch::empty_like>(info, "emptyLike"); }
NATIVE(RandnLike) { return LikeFactory<torch::randn_like>(info, "randnLike"); }

at::ScalarType TypedArrayDType(napi_typedarray_type t, const char* fn) {
  switch (t) {
    case napi_float32_array: return at::kFloat;
    case napi_float64_array: return at::kDouble;
    case napi_int32_array: return at::kInt;
    case napi_bigint64_array: return at::kLong;
    case napi_uint8_array: return at::kByte;
    case napi_uint8_clamped_array: return at::kByte;
    case napi_int8_array: return at::kChar;
    case napi_int16_array: return at::kShort;
    case napi_uint16_array: return at::kUInt16;
    default: throw ArgError(std::string(fn) + ": unsupported typed array type");
  }
}

// fromTypedArray(typedArray, shape, dtype?, device?, requiresGrad?): copies the elements.
NATIVE(FromTypedArray) {
  BODY("tensor") {
    Args a(info, "tensor", "data,shape,dtype,device,requiresGrad");
    if (!info[0].IsTypedArray()) a.Fail(0, "a typed array");
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    at::ScalarType src = TypedArrayDType(ta.TypedArrayType(), "tensor");
    std::vector<int64_t> shape = a.IL(1);
    int64_t numel = 1;
    for (int64_t d : shape) {
      if (d < 0) throw ArgError("tensor: negative dimension in shape");
      numel *= d;
    }
    if (numel != static_cast<int64_t>(ta.ElementLength())) {
      throw ArgError("tensor: shape holds " + std::to_string(numel) + " elements but the data has " +
                     std::to_string(ta.ElementLength()));
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(src));
    if (numel > 0) {
      auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      std::memcpy(t.data_ptr(), base, ta.ByteLength());
    }
    at::ScalarType dt = a.OptDT(2).value_or(src);
    auto dev = a.OptDev(3);
    if (dt != src || (dev && !dev->is_cpu())) t = t.to(dev.value_or(at::Device(at::kCPU)), dt);
    if (a.B(4, false)) t.requires_grad_(true);
    return ToJS(info.Env(), t);
  });
}

// fromBuffer(bytes: Uint8Array, dtype, shape, device?): raw little-endian bytes, copied once.
NATIVE(FromBuffer) {
  BODY("fromBuffer") {
    Args a(info, "fromBuffer", "bytes,dtype,shape,device");
    if (!info[0].IsTypedArray()) a.Fail(0, "a Buffer or Uint8Array");
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    at::ScalarType dt = a.DT(1);
    std::vector<int64_t> shape = a.IL(2);
    int64_t numel = 1;
    for (int64_t d : shape) {
      if (d < 0) throw ArgError("fromBuffer: negative dimension in shape");
      numel *= d;
    }
    size_t need = static_cast<size_t>(numel) * c10::elementSize(dt);
    if (need != ta.ByteLength()) {
      throw ArgError("fromBuffer: " + std::string(DTypeName(dt)) + " tensor of shape [" +
                     c10::Join(", ", shape) + "] needs " + std::to_string(need) + " bytes, got " +
                     std::to_string(ta.ByteLength()));
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dt));
    if (need > 0) {
      std::memcpy(t.data_ptr(), static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), need);
    }
    if (auto dev = a.OptDev(3); dev && !dev->is_cpu()) t = t.to(*dev);
    return ToJS(info.Env(), t);
  });
}

// The typed array a tensor's elements are read into (bfloat16/float16 become float32; complex
// elements come out as interleaved (real, imaginary) pairs), and the dtype of the host copy that
// matches it.
napi_typedarray_type HostArrayType(at::ScalarType& st, const char* fn) {
  if (st == at::kBFloat16 || st == at::kHalf) st = at::kFloat;
  if (st == at::kComplexHalf) st = at::kComplexFloat;
  if (st == at::kComplexFloat) return napi_float32_array;
  if (st == at::kComplexDouble) return napi_float64_array;
  switch (st) {
    case at::kFloat: return napi_float32_array;
    case at::kDouble: return napi_float64_array;
    case at::kLong: return napi_bigint64_array;
    case at::kInt: return napi_int32_array;
    case at::kShort: return napi_int16_array;
    case at::kChar: return napi_int8_array;
    case at::kByte: return napi_uint8_array;
    case at::kBool: return napi_uint8_array;
    case at::kUInt16: return napi_uint16_array;
    default: throw ArgError(std::string(fn) + ": unsupported dtype " + DTypeName(st));
  }
}

// A contiguous CPU copy of `t` in dtype `st`, complex as (real, imaginary) pairs (no copy when it
// already is one). Some backward formulas return storage-less "efficient zero" tensors, and lazy
// conjugate and negative views hold their bits unapplied: both are materialised.
at::Tensor HostCopy(const at::Tensor& t, at::ScalarType st) {
  at::Tensor h = t.detach().to(at::kCPU, st);
  if (h._is_zerotensor()) h = at::zeros(h.sizes(), h.options());
  if (h.is_conj() || h.is_neg()) h = h.resolve_conj().resolve_neg();
  if (h.is_complex()) h = at::view_as_real(h);
  return h.contiguous();
}

Napi::Value NewTypedArray(Napi::Env env, napi_typedarray_type tt, size_t n, Napi::ArrayBuffer buf) {
  napi_value out;
  if (napi_create_typedarray(env, tt, n, buf, 0, &out) != napi_ok) {
    throw Napi::Error::New(env, "toTypedArray: could not create the typed array");
  }
  return Napi::Value(env, out);
}

NATIVE(ToTypedArray) {
  BODY("toTypedArray") {
    Args a(info, "toTypedArray", "self");
    at::Tensor& t = a.T(0);
    at::ScalarType st = t.scalar_type();
    napi_typedarray_type tt = HostArrayType(st, "toTypedArray");
    at::Tensor host = HostCopy(t, st);
    size_t n = static_cast<size_t>(host.numel()), bytes = host.nbytes();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(info.Env(), bytes);
    if (bytes > 0) std::memcpy(buf.Data(), host.data_ptr(), bytes);
    return NewTypedArray(info.Env(), tt, n, buf);
  });
}

// An AsyncWorker that settles a promise: libtorch errors in Execute() (on the libuv thread) reject
// it with a TorchError. Subclasses implement Work() and OnOK().
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* fn)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fn_(fn) {}
  // Queues the worker (which deletes itself when done) and returns its promise.
  Napi::Value Start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }
  void Execute() override {
    try {
      Work();
    } catch (const c10::Error& e) {
      SetError(std::string(fn_) + ": " + e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(std::string(fn_) + ": " + e.what());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::Value err = e.Value();
    if (EnvData& d = Data(Env()); !d.torchError.IsEmpty()) err = d.torchError.New({Napi::String::New(Env(), e.Message())});
    deferred_.Reject(err);
    Done();
  }

 protected:
  virtual void Work() = 0;
  // Drops what the worker holds, once the promise is settled.
  virtual void Done() {}
  Napi::Promise::Deferred deferred_;

 private:
  const char* fn_;
};

// data(t): resolves to a typed array. The ArrayBuffer is allocated here, on the JS thread (large
// buffers are mapped lazily, so this costs microseconds); the device-to-host copy, the dtype
// conversion and the copy into the buffer all run on a libuv worker thread. The worker holds its
// own reference to the at::Tensor, so disposing the JS tensor meanwhile is safe.
class DataWorker : public PromiseWorker {
 public:
  DataWorker(Napi::Env env, at::Tensor t) : PromiseWorker(env, "data"), t_(std::move(t)) {
    st_ = t_.scalar_type();
    tt_ = HostArrayType(st_, "data");
    // A complex element is two typed-array elements (real, imaginary).
    n_ = static_cast<size_t>(t_.numel()) * (at::isComplexType(st_) ? 2 : 1);
    bytes_ = static_cast<size_t>(t_.numel()) * c10::elementSize(st_);
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes_);
    dst_ = buf.Data();
    buf_ = Napi::Persistent(buf);
  }
  void Work() override {
    at::Tensor host = HostCopy(t_, st_);
    if (bytes_ > 0) std::memcpy(dst_, host.data_ptr(), bytes_);
    t_.reset();
  }
  void OnOK() override {
    try {
      deferred_.Resolve(NewTypedArray(Env(), tt_, n_, buf_.Value()));
    } catch (const std::exception& e) {
      deferred_.Reject(Napi::Error::New(Env(), e.what()).Value());
    }
    Done();
  }
  void Done() override {
    t_.reset();
    buf_.Reset();
  }

 private:
  at::Tensor t_;
  at::ScalarType st_;
  napi_typedarray_type tt_;
  size_t n_ = 0, bytes_ = 0;
  void* dst_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> buf_;
};

NATIVE(DataAsync) {
  BODY("data") {
    Args a(info, "data", "self");
    return (new DataWorker(info.Env(), a.T(0)))->Start();
  });
}

// File I/O of a tensor's bytes for the asynchronous safetensors reader and writer: the copies and
// the system calls run on a libuv worker thread, and no JS Buffer is made over the tensor's memory
// (a Buffer of that size would make V8 collect garbage on the event loop). Each worker holds its
// own reference to the tensor, so disposing the JS tensor meanwhile is safe.

// A worker that moves one tensor's bytes to or from a file descriptor; resolves to undefined.
class TensorIOWorker : public PromiseWorker {
 public:
  TensorIOWorker(Napi::Env env, const char* fn, at::Tensor t, int fd) : PromiseWorker(env, fn), t_(std::move(t)), fd_(fd) {}
  void OnOK() override {
    deferred_.Resolve(Env().Undefined());
    Done();
  }
  void Done() override { t_.reset(); }

 protected:
  at::Tensor t_;
  int fd_;
};

// writeTensorTo(t, fd): writes t's elements (a contiguous host copy, made there) at fd's current
// position.
class WriteTensorWorker : public TensorIOWorker {
 public:
  WriteTensorWorker(Napi::Env env, at::Tensor t, int fd) : TensorIOWorker(env, "writeTensor", std::move(t), fd) {}
  void Work() override {
    at::Tensor host = t_.detach().to(at::kCPU).contiguous();
    const auto* p = static_cast<const char*>(host.data_ptr());
    size_t left = host.nbytes();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, std::min<size_t>(left, size_t{1} << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
};

// readTensorFrom(t, fd, position): fills the contiguous CPU tensor t with the bytes at position.
class ReadTensorWorker : public TensorIOWorker {
 public:
  ReadTensorWorker(Napi::Env env, at::Tensor t, int fd, int64_t pos)
      : TensorIOWorker(env, "readTensor", std::move(t), fd), pos_(pos) {}
  void Work() override {
    auto* p = static_cast<char*>(t_.data_ptr());
    const size_t total = t_.nbytes();
    size_t done = 0;
    while (done < total) {
      ssize_t n = ::pread(fd_, p + done, std::min<size_t>(total - done, size_t{1} << 30), static_cast<off_t>(pos_ + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(std::string("read failed: ") + std::strerror(errno));
      if (n == 0) {
        throw std::runtime_error("file is truncated: reading stopped at byte " + std::to_string(pos_ + done) +
                                 ", the tensor ends at byte " + std::to_string(pos_ + total));
      }
      done += static_cast<size_t>(n);
    }
  }

 private:
  int64_t pos_;
};

NATIVE(WriteTensorTo) {
  BODY("writeTensor") {
    Args a(info, "writeTensor", "self,fd");
    return (new WriteTensorWorker(info.Env(), a.T(0), static_cast<int>(a.I(1))))->Start();
  });
}

NATIVE(ReadTensorFrom) {
  BODY("readTensor") {
    Args a(info, "readTensor", "self,fd,position");
    at::Tensor& t = a.T(0);
    if (!t.device().is_cpu() || !t.is_contiguous()) throw ArgError("readTensor: the tensor must be a contiguous CPU tensor");
    return (new ReadTensorWorker(info.Env(), t, static_cast<int>(a.I(1)), a.I(2)))->Start();
  });
}

// bytes(t): a Buffer over the memory of a contiguous CPU tensor, no copy. The
// buffer holds a reference to the tensor's storage until it is collected.
NATIVE(Bytes) {
  BODY("bytes") {
    Args a(info, "bytes", "self");
    at::Tensor& t = a.T(0);
    if (!t.device().is_cpu()) throw ArgError("bytes: the tensor must be on the CPU (use .cpu() first)");
    if (!t.is_contiguous()) throw ArgError("bytes: the tensor must be contiguous (use .contiguous() first)");
    if (t._is_zerotensor()) throw ArgError("bytes: the tensor is a storage-less zero tensor (use .clone() first)");
    size_t n = t.nbytes();
    if (n == 0) return Napi::Buffer<uint8_t>::New(info.Env(), 0);
    auto* hold = new at::Tensor(t);
    return Napi::Buffer<uint8_t>::New(info.Env(), static_cast<uint8_t*>(t.data_ptr()), n,
                                      [](Napi::Env, uint8_t*, at::Tensor* h) { delete h; }, hold);
  });
}

NATIVE(Item) {
  BODY("item") {
    Args a(info, "item", "self,bigint");
    at::Tensor& t = a.T(0);
    if (t.numel() != 1) {
      throw ArgError("item: the tensor has " + std::to_string(t.numel()) + " elements; item() needs exactly one");
    }
    bool bigint = a.B(1, false);
    at::Scalar s = t.item();
    if (s.isBoolean()) return Napi::Boolean::New(info.Env(), s.toBool());
    if (s.isIntegral(false)) {
      int64_t v = s.toLong();
      if (bigint) return Napi::BigInt::New(info.Env(), v);
      // Beyond 2^53 a JS number cannot hold every integer: refuse rather than round.
      constexpr int64_t kSafe = (int64_t{1} << 53);
      if (v > kSafe || v < -kSafe) {
        throw ArgError("item: the " + std::string(DTypeName(t.scalar_type())) + " value " + std::to_string(v) +
                       " is beyond 2^53 and has no exact JS number; use item({ bigint: true })");
      }
      return Napi::Number::New(info.Env(), static_cast<double>(v));
    }
    return Napi::Number::New(info.Env(), s.toDouble());
  });
}

// --- properties
NATIVE(Shape) {
  BODY("shape") {
    Args a(info, "shape", "self");
    at::Tensor& t = a.T(0);
    auto sizes = t.sizes();
    Napi::Array arr = Napi::Array::New(info.Env(), sizes.size());
    for (size_t k = 0; k < sizes.size(); ++k) arr.Set(static_cast<uint32_t>(k), Napi::Number::New(info.Env(), static_cast<double>(sizes[k])));
    return arr;
  });
}
NATIVE(DTypeOf) { BODY("dtype") { Args a(info, "dtype", "self"); return Napi::String::New(info.Env(), DTypeName(a.T(0).scalar_type())); }); }
NATIVE(DeviceOf) { BODY("device") { Args a(info, "device", "self"); return Napi::String::New(info.Env(), DeviceName(a.T(0).device())); }); }
NATIVE(Ndim) { BODY("ndim") { Args a(info, "ndim", "self"); return Napi::Number::New(info.Env(), static_cast<double>(a.T(0).dim())); }); }
NATIVE(Numel) { BODY("numel") { Args a(info, "numel", "self"); return Napi::Number::New(info.Env(), static_cast<double>(a.T(0).numel())); }); }
NATIVE(RequiresGrad) { BODY("requiresGrad") { Args a(info, "requiresGrad", "self"); return Napi::Boolean::New(info.Env(), a.T(0).requires_grad()); }); }
NATIVE(SetRequiresGrad) {
  BODY("requiresGrad_") {
    Args a(info, "requiresGrad_", "self,requiresGrad");
    a.T(0).requires_grad_(a.B(1, true));
    return info[0];
  });
}
NATIVE(IsLeaf) { BODY("isLeaf") { Args a(info, "isLeaf", "self"); return Napi::Boolean::New(info.Env(), a.T(0).is_leaf()); }); }
NATIVE(GradOf) { BODY("grad") { Args a(info, "grad", "self"); return ToJS(info.Env(), a.T(0).grad()); }); }
NATIVE(SetGrad) {
  BODY("grad") {
    Args a(info, "grad", "self,grad");
    at::Tensor& t = a.T(0);
    if (a.Has(1)) {
      at::Tensor g = a.T(1);
      if (!g.sizes().equals(t.sizes())) throw ArgError("grad: the gradient's shape must equal the tensor's shape");
      t.mutable_grad() = g;
    } else {
      t.mutable_grad() = at::Tensor();
    }
    return info.Env().Undefined();
  });
}
NATIVE(GradFnName) {
  BODY("gradFn") {
    Args a(info, "gradFn", "self");
    auto fn = a.T(0).grad_fn();
    if (!fn) return info.Env().Null();
    // A custom node's name is its C++ type, "torch::autograd::CppNode<innerloop::(anonymous
    // namespace)::LinearFn>": the last name inside the brackets is what Python would show.
    std::string name = fn->name();
    const std::string prefix = "torch::autograd::CppNode<";
    if (name.rfind(prefix, 0) == 0 && name.back() == '>') {
      std::string inner = name.substr(prefix.size(), name.size() - prefix.size() - 1);
      size_t sep = inner.rfind("::");
      name = sep == std::string::npos ? inner : inner.substr(sep + 2);
    }
    return Napi::String::New(info.Env(), name);
  });
}
NATIVE(RetainGrad) { BODY("retainGrad") { Args a(info, "retainGrad", "self"); a.T(0).retain_grad(); return info[0]; }); }
NATIVE(IsContiguous) { BODY("isContiguous") { Args a(info, "isContiguous", "self"); return Napi::Boolean::New(info.Env(), a.T(0).is_contiguous()); }); }

// --- autograd
// backward(t, gradient?, retainGraph?, createGraph?)
NATIVE(Backward) {
  BODY("backward") {
    Args a(info, "backward", "self,gradient,retainGraph,createGraph");
    at::Tensor& t = a.T(0);
    std::optional<at::Tensor> g = a.OptT(1);
    if (!g && t.numel() != 1) {
      throw ArgError("backward: a gradient must be given for a tensor with more than one element");
    }
    std::optional<bool> retain;
    if (a.Has(2)) retain = a.B(2);
    t.backward(g.value_or(at::Tensor()), retain, a.B(3, false));
    return info.Env().Undefined();
  });
}

// grad(outputs, inputs, gradOutputs?, retainGraph?, createGraph?, allowUnused?)
NATIVE(AutogradGrad) {
  BODY("autograd.grad") {
    Args a(info, "autograd.grad", "outputs,inputs,gradOutputs,retainGraph,createGraph,allowUnused");
    std::vector<at::Tensor> outputs = a.TL(0), inputs = a.TL(1);
    std::vector<at::Tensor> gradOutputs;
    if (a.Has(2)) gradOutputs = a.TL(2);
    if (!gradOutputs.empty() && gradOutputs.size() != outputs.size()) {
      throw ArgError("autograd.grad: gradOutputs must have one tensor per output");
    }
    std::optional<bool> retain;
    if (a.Has(3)) retain = a.B(3);
    auto res = torch::autograd::grad(outputs, inputs, gradOutputs, retain, a.B(4, false), a.B(5, false));
    return ToJS(info.Env(), std::vector<at::Tensor>(res.begin(), res.end()));
  });
}

NATIVE(SetGradEnabled) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), prev);
}
NATIVE(IsGradEnabled) { return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled()); }

at::DeviceType AutocastDevice(Args& a) {
  std::string dev = a.S(0);
  if (dev == "cpu") return at::kCPU;
  if (dev.rfind("cuda", 0) == 0) return at::kCUDA;
  throw ArgError("autocast: device must be 'cpu' or 'cuda', got '" + dev + "'");
}

// autocastEnter(device, dtype) -> [previousEnabled, previousDtype]
NATIVE(AutocastEnter) {
  BODY("autocast") {
    Args a(info, "autocast", "deviceType,dtype");
    at::DeviceType dt = AutocastDevice(a);
    at::ScalarType want = a.DT(1);
    Napi::Array prev = Napi::Array::New(info.Env(), 2);
    prev.Set(0u, Napi::Boolean::New(info.Env(), at::autocast::is_autocast_enabled(dt)));
    prev.Set(1u, Napi::String::New(info.Env(), DTypeName(at::autocast::get_autocast_dtype(dt))));
    at::autocast::set_autocast_dtype(dt, want);
    at::autocast::set_autocast_enabled(dt, true);
    at::autocast::increment_nesting();
    return prev;
  });
}

// autocastExit(device, previousEnabled, previousDtype): restores the state and
// drops the cast-weight cache when the outermost region ends.
NATIVE(AutocastExit) {
  BODY("autocast") {
    Args a(info, "autocast");
    at::DeviceType dt = AutocastDevice(a);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dt, a.B(1, false));
    at::autocast::set_autocast_dtype(dt, a.DT(2));
    return info.Env().Undefined();
  });
}

NATIVE(SetFloat32MatmulPrecision) {
  BODY("setFloat32MatmulPrecision") {
    Args a(info, "setFloat32MatmulPrecision", "precision");
    std::string p = a.S(0);
    if (p != "highest" && p != "high" && p != "medium") {
      throw ArgError("setFloat32MatmulPrecision: precision must be 'highest', 'high' or 'medium', got '" + p + "'");
    }
    at::globalContext().setFloat32MatmulPrecision(p);
    at::globalContext().setAllowTF32CuDNN(p != "highest");
    return info.Env().Undefined();
  });
}

// --- RNG
NATIVE(ManualSeed) {
  BODY("manualSeed") {
    Args a(info, "manualSeed", "seed");
    int64_t s = a.I(0);
    if (s < 0) throw ArgError("manualSeed: the seed must be a non-negative integer");
    at::manual_seed(static_cast<uint64_t>(s));
    return info.Env().Undefined();
  });
}

at::Generator DefaultGenerator(const std::optional<at::Device>& d) {
  if (!d || d->is_cpu()) return at::detail::getDefaultCPUGenerator();
  return at::globalContext().defaultGenerator(*d);
}

NATIVE(GetRngState) {
  BODY("getRngState") {
    Args a(info, "getRngState", "device");
    at::Generator g = DefaultGenerator(a.OptDev(0));
    std::lock_guard<std::mutex> lock(g.mutex());
    return ToJS(info.Env(), g.get_state());
  });
}

NATIVE(SetRngState) {
  BODY("setRngState") {
    Args a(info, "setRngState", "newState,device");
    at::Tensor state = a.T(0);
    at::Generator g = DefaultGenerator(a.OptDev(1));
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(state);
    return info.Env().Undefined();
  });
}

NATIVE(SetNumThreads) {
  BODY("setNumThreads") {
    Args a(info, "setNumThreads", "n");
    int64_t n = a.I(0);
    if (n < 1) throw ArgError("setNumThreads: n must be a positive integer, got " + std::to_string(n));
    at::set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}
NATIVE(GetNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }
NATIVE(GemmBackendName) { BODY("gemmBackend") { return Napi::String::New(info.Env(), GemmBackend()); }); }

// --- CUDA
NATIVE(CudaIsAvailable) { return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); }
NATIVE(CudaDeviceCount) { return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count())); }
NATIVE(CudaSynchronize) {
  BODY("cuda.synchronize") {
    Args a(info, "cuda.synchronize", "device");
    if (torch::cuda::is_available()) torch::cuda::synchronize(a.I(0, -1));
    return info.Env().Undefined();
  });
}
NATIVE(CudaDeviceName) {
  BODY("cuda.deviceName") {
    Args a(info, "cuda.deviceName", "device");
#ifdef INNERLOOP_WITH_CUDA
    int64_t d = a.I(0, 0);
    if (!torch::cuda::is_available() || d < 0 || d >= static_cast<int64_t>(torch::cuda::device_count())) {
      throw ArgError("cuda.deviceName: no CUDA device " + std::to_string(d));
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, static_cast<int>(d)) != cudaSuccess) {
      throw ArgError("cuda.deviceName: could not query device " + std::to_string(d));
    }
    return Napi::String::New(info.Env(), prop.name);
#else
    (void)a;
    throw ArgError("cuda.deviceName: this build of innerloop has no CUDA support");
#endif
  });
}
NATIVE(CudaEmptyCache) {
#ifdef INNERLOOP_WITH_CUDA
  if (torch::cuda::is_available()) {
    try {
      c10::cuda::CUDACachingAllocator::emptyCache();
    } catch (const c10::Error&) {
      // Nothing is cached before CUDA is initialised; a capture under way refuses to release.
    }
  }
#endif
  return info.Env().Undefined();
}
// cudaMemoryStats(device) -> { allocated, reserved, maxAllocated, maxReserved }
NATIVE(CudaMemoryStats) {
  BODY("cuda.memoryStats") {
    Args a(info, "cuda.memoryStats", "device");
    Napi::Object o = Napi::Object::New(info.Env());
    double allocated = 0, reserved = 0, maxAllocated = 0, maxReserved = 0;
#ifdef INNERLOOP_WITH_CUDA
    if (torch::cuda::is_available()) {
      auto stats = CudaStats(static_cast<c10::DeviceIndex>(a.I(0, 0)));
      allocated = static_cast<double>(stats.allocated_bytes[0].current);
      reserved = static_cast<double>(stats.reserved_bytes[0].current);
      maxAllocated = static_cast<double>(stats.allocated_bytes[0].peak);
      maxReserved = static_cast<double>(stats.reserved_bytes[0].peak);
    }
#else
    (void)a;
#endif
    o.Set("allocated", allocated);
    o.Set("reserved", reserved);
    o.Set("maxAllocated", maxAllocated);
    o.Set("maxReserved", maxReserved);
    return o;
  });
}
NATIVE(CudaResetPeakMemoryStats) {
  BODY("cuda.resetPeakMemoryStats") {
    Args a(info, "cuda.resetPeakMemoryStats", "device");
#ifdef INNERLOOP_WITH_CUDA
    if (torch::cuda::is_available()) {
      try {
        c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(a.I(0, 0)));
      } catch (const c10::Error&) {
        // No statistics exist before CUDA is initialised.
      }
    }
#else
    (void)a;
#endif
    return info.Env().Undefined();
  });
}

// --- build information
NATIVE(BuildInfo) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("libtorch", Napi::String::New(env, TORCH_VERSION));
  o.Set("torchLibDir", Napi::String::New(env, INNERLOOP_TORCH_LIBDIR));
#ifdef INNERLOOP_WITH_CUDA
  o.Set("cuda", Napi::String::New(env, std::to_string(CUDART_VERSION / 1000) + "." + std::to_string((CUDART_VERSION % 1000) / 10)));
#else
  o.Set("cuda", env.Null());
#endif
  // The libtorch actually loaded (it can differ from the one found at build time
  // when LD_LIBRARY_PATH points elsewhere).
  Dl_info dl;
  if (dladdr(reinterpret_cast<void*>(&at::globalContext), &dl) != 0 && dl.dli_fname) {
    o.Set("loadedLibrary", Napi::String::New(env, dl.dli_fname));
  }
  o.Set("cxx11abi", Napi::Boolean::New(env, _GLIBCXX_USE_CXX11_ABI != 0));
  return o;
}

#undef BODY
#undef NATIVE

}  // namespace

}  // namespace innerloop

// ---------------------------------------------------------------------------
// Module init

namespace innerloop {
namespace {

// Runs when the environment shuts down (a worker exits or is terminated, or the main thread
// ends), before N-API finalizes the tensors still alive there: JS handles are dropped now, and
// the finalizers that follow free the tensors without calling into V8. The EnvData itself goes
// last, with the instance data, after every finalizer has run.
void CleanupEnv(void* arg) {
  auto* d = static_cast<EnvData*>(arg);
  d->closing = true;
  d->createHook.Reset();
  d->torchError.Reset();
  d->oomError.Reset();
  d->tensorCtor.Reset();
  while (d->scope != nullptr) {
    Scope* s = d->scope;
    d->scope = s->parent;
    while (s->head != nullptr) s->head->Unlink();
    delete s;
  }
  d->distributed.reset();
}

}  // namespace
}  // namespace innerloop

// The addon is loaded once per environment (the main thread and each worker_thread); every
// load gets its own EnvData.
static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace innerloop;
  auto* data = new EnvData();
  env.SetInstanceData<EnvData>(data);
  napi_add_env_cleanup_hook(env, CleanupEnv, data);
  exports.Set("Tensor", TensorWrap::Init(env));
  struct Entry {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  const Entry entries[] = {
      {"initErrors", InitErrors}, {"setCreateHook", SetCreateHook},
      {"scopeBegin", ScopeBegin}, {"scopeEnd", ScopeEnd}, {"keep", Keep}, {"track", Track},
      {"dispose", Dispose}, {"isDisposed", IsDisposed}, {"isTensor", IsTensor}, {"tensorList", MakeTensorList}, {"memory", Memory},
      {"zeros", Zeros}, {"ones", Ones}, {"empty", Empty}, {"full", Full}, {"randn", Randn},
      {"rand", Rand}, {"randint", Randint}, {"arange", Arange}, {"linspace", Linspace}, {"eye", Eye},
      {"zerosLike", ZerosLike}, {"onesLike", OnesLike}, {"emptyLike", EmptyLike}, {"randnLike", RandnLike},
      {"fromTypedArray", FromTypedArray}, {"fromBuffer", FromBuffer}, {"toTypedArray", ToTypedArray},
      {"data", DataAsync}, {"writeTensorTo", WriteTensorTo}, {"readTensorFrom", ReadTensorFrom}, {"bytes", Bytes}, {"item", Item},
      {"shape", Shape}, {"dtype", DTypeOf}, {"device", DeviceOf}, {"ndim", Ndim}, {"numel", Numel},
      {"requiresGrad", RequiresGrad}, {"requiresGrad_", SetRequiresGrad}, {"isLeaf", IsLeaf},
      {"grad", GradOf}, {"setGrad", SetGrad}, {"gradFn", GradFnName}, {"retainGrad", RetainGrad},
      {"isContiguous", IsContiguous},
      {"backward", Backward}, {"autogradGrad", AutogradGrad},
      {"setGradEnabled", SetGradEnabled}, {"isGradEnabled", IsGradEnabled}, {"autocastEnter", AutocastEnter}, {"autocastExit", AutocastExit},
      {"setFloat32MatmulPrecision", SetFloat32MatmulPrecision},
      {"manualSeed", ManualSeed}, {"getRngState", GetRngState}, {"setRngState", SetRngState},
      {"setNumThreads", SetNumThreads}, {"getNumThreads", GetNumThreads}, {"gemmBackend", GemmBackendName},
      {"cudaIsAvailable", CudaIsAvailable}, {"cudaDeviceCount", CudaDeviceCount},
      {"cudaSynchronize", CudaSynchronize}, {"cudaDeviceName", CudaDeviceName},
      {"cudaEmptyCache", CudaEmptyCache}, {"cudaMemoryStats", CudaMemoryStats},
      {"cudaResetPeakMemoryStats", CudaResetPeakMemoryStats}, {"buildInfo", BuildInfo},
  };
  for (const Entry& e : entries) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  RegisterOps(env, exports);
  RegisterOptim(env, exports);
  RegisterDistributed(env, exports);
  RegisterFused(env, exports);
  RegisterCpuAllocator(env, exports);
  RegisterCudaGraph(env, exports);
  RegisterAten(env, exports);
  return exports;
}

NODE_API_MODULE(innerloop, InitAddon)
