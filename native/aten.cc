// The generic operator caller behind `torch.aten.<name>` and `torch.ops.<ns>.<name>`.
//
// Every operator registered with the c10 dispatcher (all of ATen, and whatever an extension
// library adds with TORCH_LIBRARY) is reached by name: the overloads of a name are listed in
// the order Python's `torch.ops` tries them, each call converts the JS arguments to IValues
// following the overload's FunctionSchema, the first overload whose schema accepts them is
// called boxed, and the returned IValues become JS values. One translation unit covers every
// operator of any libtorch version; nothing here is generated.
#include <ATen/core/dispatch/Dispatcher.h>
#include <dlfcn.h>
#include <torch/csrc/jit/runtime/operator.h>

#include <cmath>
#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "binding.h"

namespace innerloop {
namespace {

// What JS value an argument takes; decided once per overload from its schema.
enum class Kind {
  Tensor, Int, Float, Bool, Scalar, Complex, Str, ScalarType, Layout, MemoryFormat, Device, Generator,
  IntList, FloatList, BoolList, TensorList, OptTensorList, ScalarList, StrList, Unsupported,
};

struct ArgSpec {
  std::string name;
  Kind kind = Kind::Unsupported;
  bool optional = false;
  bool kwargOnly = false;
  std::optional<int32_t> n;  // the N of int[N]: a bare number is repeated N times
  std::optional<c10::IValue> dflt;
  std::string typeName;      // as the schema prints it, for messages
};

struct Overload {
  c10::OperatorHandle handle;
  std::string signature;  // the schema as text, for messages
  std::vector<ArgSpec> args;
  size_t positional = 0;  // arguments that may be given by position
  std::vector<Kind> returns;
};

using OverloadList = std::vector<Overload>;

// The overloads of one operator name, in Python's order. Rebuilt when a library loaded
// later may have added overloads (`generation`); a rebuild swaps in a new list, so a call on
// another thread keeps using the list it took.
struct Packet {
  std::string name;   // qualified, "aten::add"
  std::string label;  // as JS spells it, for messages: "torch.aten.add"
  std::shared_ptr<const OverloadList> overloads;
  uint64_t generation = 0;
};

// Worker threads share these: gMutex guards the tables and every packet's list and generation.
std::mutex gMutex;
std::atomic<uint64_t> gGeneration{1};
std::unordered_map<std::string, std::unique_ptr<Packet>> gPackets;
std::unordered_set<const Packet*> gPacketSet;

Kind KindOf(const c10::TypePtr& t) {
  switch (t->kind()) {
    case c10::TypeKind::TensorType: return Kind::Tensor;
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: return Kind::Int;
    case c10::TypeKind::FloatType:
    case c10::TypeKind::SymFloatType: return Kind::Float;
    case c10::TypeKind::BoolType:
    case c10::TypeKind::SymBoolType: return Kind::Bool;
    case c10::TypeKind::NumberType: return Kind::Scalar;
    case c10::TypeKind::ComplexType: return Kind::Complex;
    case c10::TypeKind::StringType: return Kind::Str;
    case c10::TypeKind::ScalarTypeType: return Kind::ScalarType;
    case c10::TypeKind::LayoutType: return Kind::Layout;
    case c10::TypeKind::MemoryFormatType: return Kind::MemoryFormat;
    case c10::TypeKind::DeviceObjType: return Kind::Device;
    case c10::TypeKind::GeneratorType: return Kind::Generator;
    case c10::TypeKind::ListType: {
      const c10::TypePtr& e = t->castRaw<c10::ListType>()->getElementType();
      if (e->kind() == c10::TypeKind::OptionalType) {
        const c10::TypePtr& inner = e->castRaw<c10::OptionalType>()->getElementType();
        return inner->kind() == c10::TypeKind::TensorType ? Kind::OptTensorList : Kind::Unsupported;
      }
      switch (KindOf(e)) {
        case Kind::Int: return Kind::IntList;
        case Kind::Float: return Kind::FloatList;
        case Kind::Bool: return Kind::BoolList;
        case Kind::Tensor: return Kind::TensorList;
        case Kind::Scalar: return Kind::ScalarList;
        case Kind::Str: return Kind::StrList;
        default: return Kind::Unsupported;
      }
    }
    default: return Kind::Unsupported;
  }
}

Overload MakeOverload(const c10::OperatorHandle& h) {
  const c10::FunctionSchema& s = h.schema();
  Overload o{h, c10::toString(s), {}, 0, {}};
  for (const c10::Argument& a : s.arguments()) {
    ArgSpec spec;
    spec.name = a.name();
    c10::TypePtr t = a.real_type();
    spec.typeName = t->str();
    if (t->kind() == c10::TypeKind::OptionalType) {
      spec.optional = true;
      t = t->castRaw<c10::OptionalType>()->getElementType();
    }
    spec.kind = KindOf(t);
    spec.kwargOnly = a.kwarg_only();
    spec.n = a.N();
    spec.dflt = a.default_value();
    if (!spec.kwargOnly) ++o.positional;
    o.args.push_back(std::move(spec));
  }
  for (const c10::Argument& r : s.returns()) o.returns.push_back(KindOf(r.real_type()));
  return o;
}

void Fill(Packet& p) {
  auto list = std::make_shared<OverloadList>();
  for (const auto& op : torch::jit::getAllSortedOperatorsFor(c10::Symbol::fromQualString(p.name))) {
    // Operators that only the TorchScript interpreter knows (list and string helpers) have no
    // dispatcher entry and are left out.
    if (!op->isC10Op()) continue;
    auto h = c10::Dispatcher::singleton().findSchema(op->schema().operator_name());
    if (h) list->push_back(MakeOverload(*h));
  }
  p.overloads = std::move(list);
  p.generation = gGeneration;
}

// A qualified name "ns::op": the namespace and the operator are plain identifiers.
bool ValidName(const std::string& q) {
  size_t sep = q.find("::");
  if (sep == std::string::npos || sep == 0 || sep + 2 >= q.size()) return false;
  for (size_t k = 0; k < q.size(); ++k) {
    if (k == sep || k == sep + 1) continue;
    char c = q[k];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

std::string Label(const std::string& q);

// The current overload list of `p`, or null when `p` is not a packet of this addon.
std::shared_ptr<const OverloadList> Snapshot(const Packet* p) {
  std::lock_guard<std::mutex> lock(gMutex);
  if (gPacketSet.count(p) == 0) return nullptr;
  auto* q = const_cast<Packet*>(p);
  if (q->generation != gGeneration) Fill(*q);
  return q->overloads;
}

Packet* Resolve(const std::string& q) {
  std::lock_guard<std::mutex> lock(gMutex);
  auto it = gPackets.find(q);
  if (it != gPackets.end()) {
    if (it->second->generation != gGeneration) Fill(*it->second);
    return it->second->overloads->empty() ? nullptr : it->second.get();
  }
  if (!ValidName(q)) return nullptr;
  auto p = std::make_unique<Packet>();
  p->name = q;
  p->label = Label(q);
  Fill(*p);
  if (p->overloads->empty()) return nullptr;  // not cached: a library loaded later may add it
  Packet* raw = p.get();
  gPacketSet.insert(raw);
  gPackets.emplace(q, std::move(p));
  return raw;
}

bool IsInteger(double d) { return std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.007199254740992e15; }

c10::IValue NumberScalar(double d) {
  return IsInteger(d) ? c10::IValue(static_cast<int64_t>(d)) : c10::IValue(d);
}

std::optional<at::Layout> ParseLayout(const std::string& s) {
  if (s == "strided") return at::kStrided;
  if (s == "sparse_coo") return at::kSparse;
  if (s == "sparse_csr") return at::kSparseCsr;
  if (s == "sparse_csc") return at::kSparseCsc;
  if (s == "sparse_bsr") return at::kSparseBsr;
  if (s == "sparse_bsc") return at::kSparseBsc;
  if (s == "mkldnn") return at::kMkldnn;
  if (s == "jagged") return at::kJagged;
  return std::nullopt;
}

const char* LayoutName(at::Layout l) {
  switch (l) {
    case at::kStrided: return "strided";
    case at::kSparse: return "sparse_coo";
    case at::kSparseCsr: return "sparse_csr";
    case at::kSparseCsc: return "sparse_csc";
    case at::kSparseBsr: return "sparse_bsr";
    case at::kSparseBsc: return "sparse_bsc";
    case at::kMkldnn: return "mkldnn";
    case at::kJagged: return "jagged";
    default: return "unknown";
  }
}

std::optional<at::MemoryFormat> ParseMemoryFormat(const std::string& s) {
  if (s == "contiguous_format") return at::MemoryFormat::Contiguous;
  if (s == "preserve_format") return at::MemoryFormat::Preserve;
  if (s == "channels_last") return at::MemoryFormat::ChannelsLast;
  if (s == "channels_last_3d") return at::MemoryFormat::ChannelsLast3d;
  return std::nullopt;
}

const char* MemoryFormatName(at::MemoryFormat m) {
  switch (m) {
    case at::MemoryFormat::Contiguous: return "contiguous_format";
    case at::MemoryFormat::Preserve: return "preserve_format";
    case at::MemoryFormat::ChannelsLast: return "channels_last";
    case at::MemoryFormat::ChannelsLast3d: return "channels_last_3d";
    default: return "unknown";
  }
}

// A failed conversion: what the argument should have been (and, for elements, which one).
struct Mismatch {
  const char* expected = nullptr;
  std::string detail;  // extra words, e.g. "element 2 is a string"
};

// Converts one JS value for `spec`; returns false and fills `why` when the value does not fit.
// null/undefined were handled by the caller (None or the default).
bool ToIValue(const ArgSpec& spec, const Napi::Value& v, c10::IValue& out, Mismatch& why) {
  auto fail = [&](const char* expected, std::string detail = {}) {
    why.expected = expected;
    why.detail = std::move(detail);
    return false;
  };
  auto intList = [&](bool allowBare) -> bool {
    if (allowBare && v.IsNumber()) {
      double d = v.As<Napi::Number>().DoubleValue();
      if (!IsInteger(d)) return fail("an array of integers");
      out = std::vector<int64_t>(static_cast<size_t>(*spec.n), static_cast<int64_t>(d));
      return true;
    }
    if (!v.IsArray()) return fail(allowBare ? "an integer or an array of integers" : "an array of integers");
    Napi::Array arr = v.As<Napi::Array>();
    uint32_t len = arr.Length();
    std::vector<int64_t> xs(len);
    for (uint32_t k = 0; k < len; ++k) {
      Napi::Value e = arr.Get(k);
      if (!e.IsNumber() || !IsInteger(e.As<Napi::Number>().DoubleValue())) {
        return fail("an array of integers", "element " + std::to_string(k) + " is " + TypeName(e));
      }
      xs[k] = static_cast<int64_t>(e.As<Napi::Number>().DoubleValue());
    }
    out = std::move(xs);
    return true;
  };
  switch (spec.kind) {
    case Kind::Tensor: {
      TensorWrap* w = TensorWrap::Unwrap(v);
      if (w == nullptr) return fail("a Tensor");
      if (w->disposed()) return fail("a Tensor", "it was disposed");
      out = w->tensor();
      return true;
    }
    case Kind::Int: {
      if (!v.IsNumber()) return fail("an integer");
      double d = v.As<Napi::Number>().DoubleValue();
      if (!IsInteger(d)) return fail("an integer");
      out = static_cast<int64_t>(d);
      return true;
    }
    case Kind::Float:
      if (!v.IsNumber()) return fail("a number");
      out = v.As<Napi::Number>().DoubleValue();
      return true;
    case Kind::Complex:
      if (!v.IsNumber()) return fail("a number");
      out = c10::complex<double>(v.As<Napi::Number>().DoubleValue(), 0.0);
      return true;
    case Kind::Bool:
      if (!v.IsBoolean()) return fail("a boolean");
      out = v.As<Napi::Boolean>().Value();
      return true;
    case Kind::Scalar:
      if (v.IsNumber()) {
        out = NumberScalar(v.As<Napi::Number>().DoubleValue());
        return true;
      }
      if (v.IsBoolean()) {
        out = v.As<Napi::Boolean>().Value();
        return true;
      }
      return fail("a number or a boolean");
    case Kind::Str:
      if (!v.IsString()) return fail("a string");
      out = v.As<Napi::String>().Utf8Value();
      return true;
    case Kind::ScalarType: {
      if (!v.IsString()) return fail("a dtype name");
      std::string s = v.As<Napi::String>().Utf8Value();
      try {
        out = ParseDType(s);
      } catch (const ArgError&) {
        return fail("a dtype name", "unknown dtype '" + s + "'");
      }
      return true;
    }
    case Kind::Layout: {
      if (!v.IsString()) return fail("a layout name");
      std::string s = v.As<Napi::String>().Utf8Value();
      auto l = ParseLayout(s);
      if (!l) return fail("a layout name", "unknown layout '" + s + "'");
      out = *l;
      return true;
    }
    case Kind::MemoryFormat: {
      if (!v.IsString()) return fail("a memory format name");
      std::string s = v.As<Napi::String>().Utf8Value();
      auto m = ParseMemoryFormat(s);
      if (!m) return fail("a memory format name", "unknown memory format '" + s + "'");
      out = *m;
      return true;
    }
    case Kind::Device: {
      if (!v.IsString()) return fail("a device string");
      std::string s = v.As<Napi::String>().Utf8Value();
      try {
        out = ParseDevice(s);
      } catch (const ArgError&) {
        return fail("a device string", "unknown device '" + s + "'");
      }
      return true;
    }
    case Kind::Generator: return fail("null (generators cannot be passed from JS)");
    case Kind::IntList: return intList(spec.n.has_value());
    case Kind::FloatList:
    case Kind::BoolList:
    case Kind::ScalarList:
    case Kind::StrList: {
      bool isFloat = spec.kind == Kind::FloatList;
      const char* expected = isFloat ? "an array of numbers"
                             : spec.kind == Kind::BoolList ? "an array of booleans"
                             : spec.kind == Kind::ScalarList ? "an array of numbers or booleans"
                                                              : "an array of strings";
      if (isFloat && spec.n && v.IsNumber()) {
        out = std::vector<double>(static_cast<size_t>(*spec.n), v.As<Napi::Number>().DoubleValue());
        return true;
      }
      if (!v.IsArray()) return fail(expected);
      Napi::Array arr = v.As<Napi::Array>();
      uint32_t len = arr.Length();
      if (spec.kind == Kind::FloatList) {
        std::vector<double> xs(len);
        for (uint32_t k = 0; k < len; ++k) {
          Napi::Value e = arr.Get(k);
          if (!e.IsNumber()) return fail(expected, "element " + std::to_string(k) + " is " + TypeName(e));
          xs[k] = e.As<Napi::Number>().DoubleValue();
        }
        out = std::move(xs);
        return true;
      }
      if (spec.kind == Kind::BoolList) {
        c10::List<bool> xs;
        for (uint32_t k = 0; k < len; ++k) {
          Napi::Value e = arr.Get(k);
          if (!e.IsBoolean()) return fail(expected, "element " + std::to_string(k) + " is " + TypeName(e));
          xs.push_back(e.As<Napi::Boolean>().Value());
        }
        out = std::move(xs);
        return true;
      }
      if (spec.kind == Kind::StrList) {
        c10::List<std::string> xs;
        for (uint32_t k = 0; k < len; ++k) {
          Napi::Value e = arr.Get(k);
          if (!e.IsString()) return fail(expected, "element " + std::to_string(k) + " is " + TypeName(e));
          xs.push_back(e.As<Napi::String>().Utf8Value());
        }
        out = std::move(xs);
        return true;
      }
      c10::impl::GenericList gl(c10::NumberType::get());
      for (uint32_t k = 0; k < len; ++k) {
        Napi::Value e = arr.Get(k);
        if (e.IsNumber()) gl.push_back(NumberScalar(e.As<Napi::Number>().DoubleValue()));
        else if (e.IsBoolean()) gl.push_back(c10::IValue(e.As<Napi::Boolean>().Value()));
        else return fail(expected, "element " + std::to_string(k) + " is " + TypeName(e));
      }
      out = std::move(gl);
      return true;
    }
    case Kind::TensorList:
    case Kind::OptTensorList: {
      bool opt = spec.kind == Kind::OptTensorList;
      const char* expected = opt ? "an array of Tensors or nulls" : "an array of Tensors";
      if (!v.IsArray()) return fail(expected);
      Napi::Array arr = v.As<Napi::Array>();
      uint32_t len = arr.Length();
      std::vector<at::Tensor> ts;
      c10::List<std::optional<at::Tensor>> os;
      if (!opt) ts.reserve(len);
      for (uint32_t k = 0; k < len; ++k) {
        Napi::Value e = arr.Get(k);
        if (opt && (e.IsNull() || e.IsUndefined())) {
          os.push_back(std::nullopt);
          continue;
        }
        TensorWrap* w = TensorWrap::Unwrap(e);
        if (w == nullptr || w->disposed()) {
          return fail(expected, "element " + std::to_string(k) + " is " + TypeName(e));
        }
        if (opt) os.push_back(w->tensor());
        else ts.push_back(w->tensor());
      }
      if (opt) out = std::move(os);
      else out = std::move(ts);
      return true;
    }
    case Kind::Unsupported: return fail("a value of a type innerloop cannot pass");
  }
  return fail("a supported value");
}

bool IsKwargs(const Napi::Value& v) {
  return v.IsObject() && !v.IsArray() && !v.IsFunction() && TensorWrap::Unwrap(v) == nullptr;
}

// Builds the stack for `o` from the call's arguments (positional from `first`, keywords from
// `kw`); when they do not fit, returns false and, if `why` is given, the explanation. Calls
// bind without explanations first: building them for every overload tried before the one that
// fits cost more than the call itself (`aten.add(a, 2)` tries add.Tensor first).
// Keyword arguments, read from the JS object once per call (not once per overload tried).
using Kwargs = std::vector<std::pair<std::string, Napi::Value>>;

const Napi::Value* FindKw(const Kwargs* kw, const std::string& name) {
  if (kw == nullptr) return nullptr;
  for (const auto& [k, v] : *kw) {
    if (k == name) return &v;
  }
  return nullptr;
}

bool Bind(const Overload& o, const Napi::CallbackInfo& info, size_t first, size_t npos, const Kwargs* kw,
          c10::Stack& stack, std::string* why) {
  // Returns false, with the explanation only where one was asked for.
  auto refuse = [why](auto&& explain) {
    if (why != nullptr) *why = explain();
    return false;
  };
  stack.clear();
  if (npos > o.positional) {
    return refuse([&] { return "takes at most " + std::to_string(o.positional) + " positional arguments, got " + std::to_string(npos); });
  }
  for (size_t i = 0; i < o.args.size(); ++i) {
    const ArgSpec& spec = o.args[i];
    Napi::Value v;
    bool given = false;
    if (i < npos) {
      v = info[first + i];
      given = true;
      if (FindKw(kw, spec.name) != nullptr) {
        return refuse([&] { return "got argument '" + spec.name + "' both by position and by name"; });
      }
    } else if (const Napi::Value* kv = FindKw(kw, spec.name); kv != nullptr && !kv->IsUndefined()) {
      v = *kv;
      given = true;
    }
    if (!given || v.IsUndefined()) {
      if (spec.dflt) stack.push_back(*spec.dflt);
      else if (spec.optional) stack.emplace_back();
      else {
        return refuse([&] { return "missing argument '" + spec.name + "' (" + spec.typeName + ")"; });
      }
      continue;
    }
    if (v.IsNull()) {
      if (!spec.optional) {
        return refuse([&] { return "argument '" + spec.name + "' (" + spec.typeName + ") may not be null"; });
      }
      stack.emplace_back();
      continue;
    }
    c10::IValue iv;
    Mismatch m;
    if (!ToIValue(spec, v, iv, m)) {
      return refuse([&] {
        return "argument '" + spec.name + "' (" + spec.typeName + ") must be " + m.expected + ", got " + TypeName(v) +
               (m.detail.empty() ? std::string() : " (" + m.detail + ")");
      });
    }
    stack.push_back(std::move(iv));
  }
  if (kw) {
    // Every keyword must name an argument not already given by position (those were refused above).
    for (const auto& entry : *kw) {
      bool known = false;
      for (size_t i = npos; i < o.args.size() && !known; ++i) known = o.args[i].name == entry.first;
      if (!known) {
        return refuse([&] { return "unexpected keyword argument '" + entry.first + "'"; });
      }
    }
  }
  return true;
}

Napi::Value FromIValue(Napi::Env env, const c10::IValue& v, Kind kind);

Napi::Value ListToJS(Napi::Env env, const c10::IValue& v) {
  auto list = v.toListRef();
  Napi::Array arr = Napi::Array::New(env, list.size());
  for (size_t k = 0; k < list.size(); ++k) arr.Set(static_cast<uint32_t>(k), FromIValue(env, list[k], Kind::Unsupported));
  return arr;
}

// `kind` is the declared return type where it changes the meaning of an int (dtype, layout...).
Napi::Value FromIValue(Napi::Env env, const c10::IValue& v, Kind kind) {
  if (v.isNone()) return env.Null();
  if (v.isTensor()) return TensorWrap::Wrap(env, v.toTensor());
  if (v.isInt()) {
    int64_t i = v.toInt();
    if (kind == Kind::ScalarType) return Napi::String::New(env, DTypeName(static_cast<at::ScalarType>(i)));
    if (kind == Kind::Layout) return Napi::String::New(env, LayoutName(static_cast<at::Layout>(i)));
    if (kind == Kind::MemoryFormat) return Napi::String::New(env, MemoryFormatName(static_cast<at::MemoryFormat>(i)));
    return Napi::Number::New(env, static_cast<double>(i));
  }
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isDevice()) return Napi::String::New(env, DeviceName(v.toDevice()));
  if (v.isSymInt()) return Napi::Number::New(env, static_cast<double>(v.toSymInt().guard_int(__FILE__, __LINE__)));
  if (v.isSymFloat()) return Napi::Number::New(env, v.toSymFloat().guard_float(__FILE__, __LINE__));
  if (v.isComplexDouble()) {
    c10::complex<double> c = v.toComplexDouble();
    Napi::Array arr = Napi::Array::New(env, 2);
    arr.Set(0u, Napi::Number::New(env, c.real()));
    arr.Set(1u, Napi::Number::New(env, c.imag()));
    return arr;
  }
  if (v.isList()) return ListToJS(env, v);
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    Napi::Array arr = Napi::Array::New(env, elems.size());
    for (size_t k = 0; k < elems.size(); ++k) arr.Set(static_cast<uint32_t>(k), FromIValue(env, elems[k], Kind::Unsupported));
    return arr;
  }
  throw std::runtime_error(std::string("returned a value of type ") + v.tagKind() + " that cannot be converted to JS");
}

// "aten::add" -> "torch.aten.add"; other namespaces -> "torch.ops.ns.op".
std::string Label(const std::string& q) {
  size_t sep = q.find("::");
  std::string ns = q.substr(0, sep), op = q.substr(sep + 2);
  return ns == "aten" ? "torch.aten." + op : "torch.ops." + ns + "." + op;
}

std::string Describe(const Napi::CallbackInfo& info, size_t first, size_t npos, const Kwargs* kw) {
  std::string s = "(";
  for (size_t i = 0; i < npos; ++i) s += std::string(i ? ", " : "") + TypeName(info[first + i]);
  if (kw) {
    s += std::string(npos ? ", " : "") + "{";
    for (size_t k = 0; k < kw->size(); ++k) s += std::string(k ? ", " : "") + (*kw)[k].first;
    s += "}";
  }
  return s + ")";
}

// The overload lists this thread used last, by packet: a repeated call finds its list here
// without taking gMutex; an entry is good while no library was loaded since (gGeneration).
struct ListCacheEntry {
  const Packet* packet = nullptr;
  uint64_t generation = 0;
  std::shared_ptr<const OverloadList> list;
};
thread_local ListCacheEntry tListCache[64];

// Snapshot(p) through the cache. The caller holds its own reference for the call: a nested call
// may replace the cache entry.
std::shared_ptr<const OverloadList> CachedSnapshot(const Packet* p) {
  ListCacheEntry& e = tListCache[(reinterpret_cast<uintptr_t>(p) >> 4) & 63];
  const uint64_t gen = gGeneration.load(std::memory_order_acquire);
  if (e.packet != p || e.generation != gen) {
    auto list = Snapshot(p);
    if (!list) return nullptr;
    e.packet = p;
    e.generation = gen;
    e.list = std::move(list);
  }
  return e.list;
}

// A stack per thread, reused by calls that do not nest (an operator called from JS that runs while
// a result is being wrapped, from a scope hook, gets a stack of its own): one heap allocation less
// per call.
thread_local c10::Stack tStack;
thread_local bool tStackBusy = false;

struct StackLease {
  c10::Stack own;
  c10::Stack* stack;
  bool shared;
  StackLease() : shared(!tStackBusy) {
    stack = shared ? &tStack : &own;
    if (shared) tStackBusy = true;
    stack->reserve(8);
  }
  ~StackLease() {
    if (shared) {
      tStack.clear();
      tStackBusy = false;
    }
  }
  StackLease(const StackLease&) = delete;
  StackLease& operator=(const StackLease&) = delete;
};

// atenCall(handle, ...args, kwargs?)
Napi::Value AtenCall(const Napi::CallbackInfo& info) {
  const Packet* p = nullptr;
  std::shared_ptr<const OverloadList> list;
  if (info.Length() >= 1 && info[0].IsExternal()) {
    p = static_cast<const Packet*>(info[0].As<Napi::External<void>>().Data());
    list = CachedSnapshot(p);
    if (!list) p = nullptr;
  }
  return Guarded(info, p ? p->label.c_str() : "torch.aten", [&]() -> Napi::Value {
    if (p == nullptr) throw ArgError("atenCall: argument 0 must be an operator handle from atenResolve");
    const OverloadList& overloads = *list;
    size_t first = 1;
    size_t n = info.Length() - first;
    Kwargs kw;
    bool hasKw = n > 0 && IsKwargs(info[info.Length() - 1]);
    if (hasKw) {
      Napi::Object obj = info[info.Length() - 1].As<Napi::Object>();
      // Own enumerable string keys, as Python's **kwargs sees a dict: napi_get_property_names
      // would also walk the prototype chain, for nothing, on every call.
      napi_value rawKeys;
      NAPI_THROW_IF_FAILED(info.Env(),
                           napi_get_all_property_names(info.Env(), obj, napi_key_own_only,
                                                       static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
                                                       napi_key_numbers_to_strings, &rawKeys),
                           Napi::Value());
      Napi::Array keys(info.Env(), rawKeys);
      uint32_t nkeys = keys.Length();
      kw.reserve(nkeys);
      for (uint32_t k = 0; k < nkeys; ++k) {
        Napi::Value key = keys.Get(k);
        kw.emplace_back(key.As<Napi::String>().Utf8Value(), obj.Get(key));
      }
      --n;
    }
    const Kwargs* kwp = hasKw ? &kw : nullptr;
    StackLease lease;
    c10::Stack& stack = *lease.stack;
    const Overload* chosen = nullptr;
    for (const Overload& o : overloads) {
      if (Bind(o, info, first, n, kwp, stack, nullptr)) {
        chosen = &o;
        break;
      }
    }
    if (chosen == nullptr) {
      std::string msg = p->label + ": no overload of " + p->name + " accepts the arguments " +
                        Describe(info, first, n, kwp) + "; tried:";
      for (const Overload& o : overloads) {
        std::string why;
        Bind(o, info, first, n, kwp, stack, &why);
        msg += "\n  " + o.signature + "\n    -> " + why;
      }
      throw ArgError(msg);
    }
    chosen->handle.callBoxed(stack);
    Napi::Env env = info.Env();
    const size_t nret = chosen->returns.size();
    if (nret == 0) return env.Undefined();
    if (stack.size() != nret) {
      throw std::runtime_error("returned " + std::to_string(stack.size()) + " values, expected " + std::to_string(nret));
    }
    if (nret == 1) return FromIValue(env, stack[0], chosen->returns[0]);
    Napi::Array arr = Napi::Array::New(env, nret);
    for (size_t k = 0; k < nret; ++k) arr.Set(static_cast<uint32_t>(k), FromIValue(env, stack[k], chosen->returns[k]));
    return arr;
  });
}

std::string QualifiedArg(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsString()) {
    throw ArgError(std::string(fn) + ": argument 0 (name) must be a string like 'aten::add'");
  }
  return info[0].As<Napi::String>().Utf8Value();
}

// atenResolve("ns::op") -> handle, or null when no operator has that name.
Napi::Value AtenResolve(const Napi::CallbackInfo& info) {
  return Guarded(info, "torch.ops", [&]() -> Napi::Value {
    Packet* p = Resolve(QualifiedArg(info, "torch.ops"));
    if (p == nullptr) return info.Env().Null();
    return Napi::External<void>::New(info.Env(), p);
  });
}

// atenSchemas("ns::op") -> the schemas of its overloads, in the order they are tried.
Napi::Value AtenSchemas(const Napi::CallbackInfo& info) {
  return Guarded(info, "torch.ops", [&]() -> Napi::Value {
    Packet* p = Resolve(QualifiedArg(info, "torch.ops"));
    Napi::Array arr = Napi::Array::New(info.Env());
    if (p == nullptr) return arr;
    auto list = Snapshot(p);
    for (size_t k = 0; k < list->size(); ++k) arr.Set(static_cast<uint32_t>(k), (*list)[k].signature);
    return arr;
  });
}

// atenOpNames("ns") -> the operator names (without overload) registered in that namespace.
Napi::Value AtenOpNames(const Napi::CallbackInfo& info) {
  return Guarded(info, "torch.ops", [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw ArgError("torch.ops: argument 0 (namespace) must be a string");
    std::string prefix = info[0].As<Napi::String>().Utf8Value() + "::";
    std::set<std::string> names;
    for (const c10::OperatorName& n : c10::Dispatcher::singleton().getAllOpNames()) {
      if (n.name.rfind(prefix, 0) == 0) names.insert(n.name.substr(prefix.size()));
    }
    Napi::Array arr = Napi::Array::New(info.Env(), names.size());
    uint32_t k = 0;
    for (const std::string& s : names) arr.Set(k++, s);
    return arr;
  });
}

// loadLibrary(path): dlopen a shared library that registers operators (TORCH_LIBRARY).
Napi::Value LoadLibrary(const Napi::CallbackInfo& info) {
  return Guarded(info, "torch.ops.loadLibrary", [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw ArgError("torch.ops.loadLibrary: argument 0 (path) must be a string");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    if (path.empty()) throw ArgError("torch.ops.loadLibrary: argument 0 (path) is empty");
    // RTLD_GLOBAL as torch.ops.load_library does, so that libraries may use each other's symbols.
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (h == nullptr) {
      const char* err = dlerror();
      throw ArgError("torch.ops.loadLibrary: cannot load '" + path + "': " + (err ? err : "unknown error"));
    }
    ++gGeneration;  // resolved names may have gained overloads
    return info.Env().Undefined();
  });
}

}  // namespace

void RegisterAten(Napi::Env env, Napi::Object exports) {
  exports.Set("atenCall", Napi::Function::New(env, AtenCall, "atenCall"));
  exports.Set("atenResolve", Napi::Function::New(env, AtenResolve, "atenResolve"));
  exports.Set("atenSchemas", Napi::Function::New(env, AtenSchemas, "atenSchemas"));
  exports.Set("atenOpNames", Napi::Function::New(env, AtenOpNames, "atenOpNames"));
  exports.Set("loadLibrary", Napi::Function::New(env, LoadLibrary, "loadLibrary"));
}

}  // namespace innerloop
