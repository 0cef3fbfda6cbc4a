// torch.distributed for Node: rendezvous through c10d's TCPStore, process
// groups on Gloo (CPU) or NCCL (CUDA), the collectives data-parallel training
// needs, and c10d's Reducer (the engine of PyTorch's DistributedDataParallel)
// to average gradients in buckets while the backward pass runs. Groups and
// reducers are kept here and named by small integer handles.
#include "binding.h"

#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef INNERLOOP_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

namespace innerloop {
namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  bool nccl = false;
  int rank = 0;
  int size = 1;
  // The backend wrapped as a c10d::ProcessGroup (what the Reducer talks to), made on first use.
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
};

struct Overlap;
void RemoveHooks(Overlap& o);

// This environment's process groups and gradient reducers, by handle. A worker thread that
// exits takes its own with it; the main thread's are not touched.
struct DistributedState {
  std::map<int64_t, Group> groups;
  int64_t nextGroup = 1;
  std::map<int64_t, std::unique_ptr<Overlap>> overlaps;
  int64_t nextOverlap = 1;
  ~DistributedState();
};

DistributedState& State(napi_env env) { return EnvSlot<DistributedState>(Data(env).distributed); }

Group& GetGroup(Args& a, size_t i) {
  auto& groups = State(a.env()).groups;
  auto it = groups.find(a.I(i));
  if (it == groups.end()) throw ArgError(std::string(a.fn()) + ": the process group was destroyed or never created");
  return it->second;
}

c10d::ReduceOp ParseReduceOp(const std::string& op) {
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "avg") return c10d::ReduceOp::AVG;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  throw ArgError("allReduce: op must be 'sum', 'avg', 'max', 'min' or 'product', got '" + op + "'");
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// init(backend, rank, worldSize, masterAddr, masterPort, timeoutMs) -> handle.
// Blocks until every rank has joined the store, or the timeout passes.
Napi::Value Init(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.init", [&]() -> Napi::Value {
    Args a(info, "distributed.init");
    std::string backend = a.S(0);
    int64_t rank = a.I(1), size = a.I(2);
    std::string host = a.S(3);
    int64_t port = a.I(4);
    auto timeout = std::chrono::milliseconds(a.I(5));
    if (size < 1 || rank < 0 || rank >= size) {
      throw ArgError("distributed.init: need 0 <= rank < worldSize, got rank " + std::to_string(rank) +
                     " and worldSize " + std::to_string(size));
    }
    if (port < 1 || port > 65535) throw ArgError("distributed.init: masterPort must be in 1..65535");

    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = static_cast<size_t>(size);
    opts.waitWorkers = true;
    opts.timeout = timeout;
    Group g;
    g.rank = static_cast<int>(rank);
    g.size = static_cast<int>(size);
    g.store = c10::make_intrusive<c10d::TCPStore>(host, opts);

    if (backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      o->devices.push_back(IsLoopback(host) ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                            : c10d::ProcessGroupGloo::createDefaultDevice());
      g.backend = c10::make_intrusive<c10d::ProcessGroupGloo>(g.store, g.rank, g.size, o);
    } else if (backend == "nccl") {
#ifdef INNERLOOP_WITH_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      g.backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(g.store, g.rank, g.size, o);
      g.nccl = true;
#else
      throw ArgError("distributed.init: this build of innerloop has no NCCL support (it needs libtorch with CUDA and nccl.h at build time)");
#endif
    } else {
      throw ArgError("distributed.init: backend must be 'gloo' or 'nccl', got '" + backend + "'");
    }
    DistributedState& st = State(info.Env());
    int64_t id = st.nextGroup++;
    st.groups.emplace(id, std::move(g));
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.destroy", [&]() -> Napi::Value {
    Args a(info, "distributed.destroy");
    State(info.Env()).groups.erase(a.I(0));
    return info.Env().Undefined();
  });
}

// allReduce(handle, tensors, op): in place on every tensor.
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.allReduce", [&]() -> Napi::Value {
    Args a(info, "distributed.allReduce");
    Group& g = GetGroup(a, 0);
    std::vector<at::Tensor> ts = a.TL(1);
    c10d::AllreduceOptions o;
    o.reduceOp = ParseReduceOp(a.Has(2) ? a.S(2) : std::string("sum"));
    for (auto& t : ts) {
      std::vector<at::Tensor> one{t};
      g.backend->allreduce(one, o)->wait();
    }
    return info.Env().Undefined();
  });
}

// broadcast(handle, tensors, root): in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.broadcast", [&]() -> Napi::Value {
    Args a(info, "distributed.broadcast");
    Group& g = GetGroup(a, 0);
    std::vector<at::Tensor> ts = a.TL(1);
    c10d::BroadcastOptions o;
    o.rootRank = a.I(2, 0);
    for (auto& t : ts) {
      std::vector<at::Tensor> one{t};
      g.backend->broadcast(one, o)->wait();
    }
    return info.Env().Undefined();
  });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.barrier", [&]() -> Napi::Value {
    Args a(info, "distributed.barrier");
    Group& g = GetGroup(a, 0);
    g.backend->barrier()->wait();
    return info.Env().Undefined();
  });
}

// averageGradients(handle, params, bucketBytes): data-parallel gradient sync.
// Gradients are packed into flat buckets of at most bucketBytes (per device and
// dtype), every bucket's all-reduce is launched before any is waited for, then
// the means are copied back. Parameters without a gradient get zeros first, so
// every rank reduces the same buckets.
Napi::Value AverageGradients(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.averageGradients", [&]() -> Napi::Value {
    Args a(info, "distributed.averageGradients");
    Group& g = GetGroup(a, 0);
    std::vector<at::Tensor> params = a.TL(1);
    int64_t cap = a.I(2, 25 * 1024 * 1024);
    at::NoGradGuard noGrad;
    std::vector<std::vector<at::Tensor>> buckets;
    int64_t bytes = 0;
    for (auto& p : params) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      const at::Tensor& gr = p.grad();
      bool fresh = buckets.empty() || bytes + static_cast<int64_t>(gr.nbytes()) > cap ||
                   buckets.back().front().scalar_type() != gr.scalar_type() ||
                   buckets.back().front().device() != gr.device();
      if (fresh) {
        buckets.emplace_back();
        bytes = 0;
      }
      buckets.back().push_back(gr);
      bytes += static_cast<int64_t>(gr.nbytes());
    }
    std::vector<at::Tensor> flats;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& b : buckets) {
      std::vector<at::Tensor> views;
      for (auto& gr : b) views.push_back(gr.reshape({-1}));
      std::vector<at::Tensor> one{at::cat(views)};
      flats.push_back(one[0]);
      works.push_back(g.backend->allreduce(one));
    }
    for (size_t k = 0; k < buckets.size(); ++k) {
      works[k]->wait();
      at::Tensor flat = flats[k].div_(g.size);
      int64_t offset = 0;
      for (auto& gr : buckets[k]) {
        gr.copy_(flat.narrow(0, offset, gr.numel()).view_as(gr));
        offset += gr.numel();
      }
    }
    return info.Env().Undefined();
  });
}


// ---------------------------------------------------------------------------
// Gradient averaging overlapped with the backward pass: c10d::Reducer, the
// engine of PyTorch's DistributedDataParallel. Gradients are packed into
// buckets (c10d::compute_bucket_assignment_by_size: a small first bucket, then
// bucketBytes each, in reverse parameter order, the order in which backward
// produces them); a bucket's all-reduce starts as soon as its last gradient
// has been accumulated, in bucket order on every rank, while the backward pass
// goes on; at the end of the pass the Reducer waits for them and writes the
// means into the gradients. After the first reducing pass the buckets are
// rebuilt in the order the gradients actually arrived on rank 0.
//
// The Reducer only reduces in a backward pass it was prepared for. A step of
// `backwardsPerStep` passes (gradient accumulation) reduces in its last pass:
// a post hook on every parameter's gradient accumulator, registered before the
// Reducer's own, sees the first gradient of each pass, counts the passes and
// prepares the Reducer at the start of the last one. The earlier passes only
// accumulate (PyTorch's no_sync). A parameter used twice in the forward pass
// (tied embeddings) has one accumulator that runs once per pass, after both
// contributions are summed. Hooks run on the thread that runs the backward
// pass (the caller's on CPU, the device thread on CUDA); the counters are
// guarded by a mutex.

// The constructor's parameter list changed across libtorch releases; the one
// this libtorch has is chosen at compile time. Where none matches, `hasReducer`
// is false and gradients are averaged after backward instead.
template <typename R>
struct ReducerSignatures {
  using Ts = std::vector<at::Tensor>;
  using Bi = std::vector<std::vector<size_t>>;
  using Pg = c10::intrusive_ptr<c10d::ProcessGroup>;
  using Sp = std::vector<bool>;
  using Names = std::unordered_map<size_t, std::string>;
  // (params, buckets, pg, sparse, cap, findUnused, gradAsBucketView, names, firstCap, skipAllReduceUnused, usePythonReducer, capList)
  static constexpr bool k12 = std::is_constructible_v<R, Ts, Bi, Pg, Sp, int64_t, bool, bool, Names, int64_t, bool, bool, std::vector<int64_t>>;
  static constexpr bool k11 = std::is_constructible_v<R, Ts, Bi, Pg, Sp, int64_t, bool, bool, Names, int64_t, bool, bool>;
  static constexpr bool k10 = std::is_constructible_v<R, Ts, Bi, Pg, Sp, int64_t, bool, bool, Names, int64_t, bool>;
  static constexpr bool k9 = std::is_constructible_v<R, Ts, Bi, Pg, Sp, int64_t, bool, bool, Names, int64_t>;
  // Older: per-bucket size limits after the bucket indices.
  static constexpr bool kLimits = std::is_constructible_v<R, Ts, Bi, std::vector<size_t>, Pg, Sp, int64_t, bool, bool, Names, int64_t>;
  static constexpr bool any = k12 || k11 || k10 || k9 || kLimits;
};

template <typename R>
std::unique_ptr<R> MakeReducer(const std::vector<at::Tensor>& params, const std::vector<std::vector<size_t>>& buckets,
                               const std::vector<size_t>& limits, const c10::intrusive_ptr<c10d::ProcessGroup>& pg,
                               int64_t cap, int64_t firstCap) {
  using S = ReducerSignatures<R>;
  using Names = typename S::Names;
  typename S::Sp sparse(params.size(), false);
  if constexpr (S::k12) {
    return std::make_unique<R>(params, buckets, pg, sparse, cap, false, false, Names{}, firstCap, false, false, std::vector<int64_t>{});
  } else if constexpr (S::k11) {
    return std::make_unique<R>(params, buckets, pg, sparse, cap, false, false, Names{}, firstCap, false, false);
  } else if constexpr (S::k10) {
    return std::make_unique<R>(params, buckets, pg, sparse, cap, false, false, Names{}, firstCap, false);
  } else if constexpr (S::k9) {
    return std::make_unique<R>(params, buckets, pg, sparse, cap, false, false, Names{}, firstCap);
  } else if constexpr (S::kLimits) {
    return std::make_unique<R>(params, buckets, limits, pg, sparse, cap, false, false, Names{}, firstCap);
  } else {
    return nullptr;
  }
}

// c10d::ProcessGroup's constructors changed too: (store, rank, size) where it exists, else (rank, size).
template <typename P>
c10::intrusive_ptr<P> MakeProcessGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size) {
  if constexpr (std::is_constructible_v<P, c10::intrusive_ptr<c10d::Store>, int, int>) {
    return c10::make_intrusive<P>(store, rank, size);
  } else {
    return c10::make_intrusive<P>(rank, size);
  }
}

c10::intrusive_ptr<c10d::ProcessGroup> GroupAsProcessGroup(Group& g) {
  if (!g.pg) {
    auto pg = MakeProcessGroup<c10d::ProcessGroup>(g.store, g.rank, g.size);
    auto type = g.nccl ? c10d::ProcessGroup::BackendType::NCCL : c10d::ProcessGroup::BackendType::GLOO;
    pg->setBackend(g.nccl ? c10::DeviceType::CUDA : c10::DeviceType::CPU, type, g.backend);
    pg->setDefaultBackend(type);
    g.pg = pg;
  }
  return g.pg;
}

using AccumulatorPtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

struct Overlap {
  std::vector<at::Tensor> params;
  std::vector<std::string> names;
  std::vector<AccumulatorPtr> accumulators;
  std::vector<uintptr_t> hookKeys;
  std::unique_ptr<c10d::Reducer> reducer;

  std::mutex mu;
  bool inBackward = false;       // between the first gradient of a pass and the pass's end
  int64_t backwards = 0;         // backward passes since the last Finish
  int64_t backwardsPerStep = 0;  // the pass (1-based) that reduces; 0: none
  bool armed = false;            // the Reducer was prepared in this step
  std::vector<char> arrived;     // gradients that reached the Reducer in the reducing pass
  int64_t stepsReduced = 0;
  int64_t stepsNotReduced = 0;

  void OnGradient(size_t index) {
    std::lock_guard<std::mutex> lock(mu);
    if (!inBackward) {
      inBackward = true;
      ++backwards;
      torch::autograd::Engine::get_default_engine().queue_callback([this] {
        std::lock_guard<std::mutex> l(mu);
        inBackward = false;
      });
      if (backwardsPerStep > 0 && backwards == backwardsPerStep) {
        std::fill(arrived.begin(), arrived.end(), 0);
        reducer->prepare_for_backward({});
        armed = true;
      }
    }
    if (armed && backwards == backwardsPerStep) arrived[index] = 1;
  }
};

// Runs after a parameter's gradient accumulator, i.e. once its .grad holds this pass's contribution.
struct GradientArrived : torch::autograd::FunctionPostHook {
  GradientArrived(Overlap* o, size_t i) : overlap(o), index(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    overlap->OnGradient(index);
    return outputs;
  }
  Overlap* overlap;
  size_t index;
};

Overlap& GetOverlap(Args& a, size_t i) {
  auto& overlaps = State(a.env()).overlaps;
  auto it = overlaps.find(a.I(i));
  if (it == overlaps.end()) throw ArgError(std::string(a.fn()) + ": the gradient reducer was destroyed or never created");
  return *it->second;
}

std::string ShapeText(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

void RemoveHooks(Overlap& o) {
  for (size_t i = 0; i < o.hookKeys.size(); ++i) o.accumulators[i]->del_post_hook(o.hookKeys[i]);
  o.hookKeys.clear();
}

// reducer(group, params, names, bucketBytes, firstBucketBytes) -> handle.
Napi::Value ReducerCreate(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.reducer", [&]() -> Napi::Value {
    Args a(info, "distributed.reducer");
    Group& g = GetGroup(a, 0);
    std::vector<at::Tensor> params = a.TL(1);
    int64_t cap = a.I(3, c10d::kDefaultBucketBytesCap);
    int64_t firstCap = a.I(4, c10d::kDefaultFirstBucketBytes);
    if (params.empty()) throw ArgError("distributed.reducer: no parameters");
    if (cap < 1 || firstCap < 1) throw ArgError("distributed.reducer: bucket sizes must be positive");
    auto o = std::make_unique<Overlap>();
    std::unordered_set<const c10::TensorImpl*> seen;
    for (size_t i = 0; i < params.size(); ++i) {
      const at::Tensor& p = params[i];
      std::string name = "parameter " + std::to_string(i) + " (shape " + ShapeText(p) + ")";
      if (a.Has(2) && info[2].IsArray()) {
        Napi::Array arr = info[2].As<Napi::Array>();
        if (i < arr.Length() && arr.Get(static_cast<uint32_t>(i)).IsString()) name = arr.Get(static_cast<uint32_t>(i)).As<Napi::String>().Utf8Value();
      }
      if (!p.requires_grad() || !p.is_leaf()) throw ArgError("distributed.reducer: " + name + " is not a leaf tensor that requires grad");
      if (!seen.insert(p.unsafeGetTensorImpl()).second) throw ArgError("distributed.reducer: " + name + " is listed twice (list shared parameters once)");
      if (p.is_cuda() != g.nccl) throw ArgError("distributed.reducer: " + name + " is on " + DeviceName(p.device()) + ", but the process group is " + (g.nccl ? "NCCL (CUDA tensors)" : "Gloo (CPU tensors)"));
      o->names.push_back(std::move(name));
    }
    o->params = params;
    o->arrived.assign(params.size(), 0);
    // Our hooks first: on each accumulator they must run before the Reducer's.
    for (size_t i = 0; i < params.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(params[i]);
      o->hookKeys.push_back(acc->add_post_hook(std::make_unique<GradientArrived>(o.get(), i)));
      o->accumulators.push_back(std::move(acc));
    }
    try {
      // Reverse parameter order approximates the order in which backward produces the gradients.
      std::vector<at::Tensor> reversed(params.rbegin(), params.rend());
      std::vector<int64_t> indices;
      for (size_t i = params.size(); i-- > 0;) indices.push_back(static_cast<int64_t>(i));
      auto assigned = c10d::compute_bucket_assignment_by_size(
          reversed, {static_cast<size_t>(firstCap), static_cast<size_t>(cap)}, std::vector<bool>(params.size(), false), indices);
      o->reducer = MakeReducer<c10d::Reducer>(params, std::get<0>(assigned), std::get<1>(assigned), GroupAsProcessGroup(g), cap, firstCap);
      if (!o->reducer) {
        throw std::runtime_error("distributed.reducer: this libtorch's c10d::Reducer has a constructor innerloop does not know "
                                 "(distributed.hasReducer is false); average gradients after backward instead");
      }
    } catch (...) {
      RemoveHooks(*o);
      throw;
    }
    DistributedState& st = State(info.Env());
    int64_t id = st.nextOverlap++;
    st.overlaps.emplace(id, std::move(o));
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

// reducerSetBackwardsPerStep(handle, n): the n-th backward pass of each step reduces; 0: none.
Napi::Value ReducerSetBackwardsPerStep(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.reducerSetBackwardsPerStep", [&]() -> Napi::Value {
    Args a(info, "distributed.reducerSetBackwardsPerStep");
    Overlap& o = GetOverlap(a, 0);
    int64_t n = a.I(1);
    if (n < 0) throw ArgError("distributed.reducerSetBackwardsPerStep: the number of backward passes must be >= 0");
    std::lock_guard<std::mutex> lock(o.mu);
    if (o.backwards != 0) throw ArgError("distributed.reducerSetBackwardsPerStep: a step is under way; call it before the step's first backward pass");
    o.backwardsPerStep = n;
    return info.Env().Undefined();
  });
}

// reducerFinish(handle) -> { reduced, backwards }: ends a step. `reduced`: the
// gradients now hold their means over ranks. Otherwise (no pass of this step
// was the reducing one) they are untouched and the caller averages them.
Napi::Value ReducerFinish(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.reducerFinish", [&]() -> Napi::Value {
    Args a(info, "distributed.reducerFinish");
    Overlap& o = GetOverlap(a, 0);
    int64_t n;
    bool armed;
    {
      std::lock_guard<std::mutex> lock(o.mu);
      n = o.backwards;
      armed = o.armed;
      o.backwards = 0;
      o.armed = false;
      o.inBackward = false;
      if (!armed) ++o.stepsNotReduced;
    }
    if (armed) {
      if (n > o.backwardsPerStep) {
        throw std::runtime_error("distributed: the gradients were averaged over ranks in backward pass " + std::to_string(o.backwardsPerStep) +
                                 " of this step, but " + std::to_string(n) + " passes ran before the optimizer step (the later ones were not averaged); " +
                                 "set the number of backward passes per step to the number of micro-batches");
      }
      std::string missing;
      size_t count = 0;
      for (size_t i = 0; i < o.arrived.size(); ++i) {
        if (o.arrived[i]) continue;
        if (count++ < 5) missing += (missing.empty() ? "" : ", ") + o.names[i];
      }
      if (count > 0) {
        throw std::runtime_error("distributed: " + std::to_string(count) + " parameter" + (count == 1 ? "" : "s") + " got no gradient in the backward pass that averages them (" +
                                 missing + (count > 5 ? ", ..." : "") + "); data-parallel training with overlapped averaging needs every parameter in the loss");
      }
      // After the first reducing pass: buckets in the order gradients arrived on rank 0 (a broadcast; every rank calls it).
      o.reducer->rebuild_buckets();
      ++o.stepsReduced;
    }
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("reduced", Napi::Boolean::New(info.Env(), armed));
    r.Set("backwards", Napi::Number::New(info.Env(), static_cast<double>(n)));
    return r;
  });
}

// reducerStats(handle) -> { stepsReduced, stepsNotReduced, backwardsPerStep, bucketBytes }.
Napi::Value ReducerStats(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.reducerStats", [&]() -> Napi::Value {
    Args a(info, "distributed.reducerStats");
    Overlap& o = GetOverlap(a, 0);
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    Napi::Array sizes = Napi::Array::New(env);
    {
      at::NoGradGuard noGrad;
      auto buckets = o.reducer->get_grad_buckets(/*return_zero_tensors=*/true);
      for (size_t i = 0; i < buckets.size(); ++i) {
        sizes.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(buckets[i].getBuffer().nbytes())));
      }
    }
    std::lock_guard<std::mutex> lock(o.mu);
    r.Set("stepsReduced", Napi::Number::New(env, static_cast<double>(o.stepsReduced)));
    r.Set("stepsNotReduced", Napi::Number::New(env, static_cast<double>(o.stepsNotReduced)));
    r.Set("backwardsPerStep", Napi::Number::New(env, static_cast<double>(o.backwardsPerStep)));
    r.Set("bucketBytes", sizes);
    return r;
  });
}

Napi::Value ReducerDestroy(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.reducerDestroy", [&]() -> Napi::Value {
    Args a(info, "distributed.reducerDestroy");
    auto& overlaps = State(info.Env()).overlaps;
    auto it = overlaps.find(a.I(0));
    if (it != overlaps.end()) {
      RemoveHooks(*it->second);
      overlaps.erase(it);  // the Reducer's destructor removes its own hooks
    }
    return info.Env().Undefined();
  });
}

DistributedState::~DistributedState() {
  // Reducers go before the groups they talk to, each with its hooks off the parameters.
  for (auto& [id, o] : overlaps) RemoveHooks(*o);
  overlaps.clear();
}

}  // namespace

void RegisterDistributed(Napi::Env env, Napi::Object exports) {
  Napi::Object d = Napi::Object::New(env);
  d.Set("init", Napi::Function::New(env, Init, "init"));
  d.Set("destroy", Napi::Function::New(env, Destroy, "destroy"));
  d.Set("allReduce", Napi::Function::New(env, AllReduce, "allReduce"));
  d.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  d.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  d.Set("averageGradients", Napi::Function::New(env, AverageGradients, "averageGradients"));
  d.Set("reducer", Napi::Function::New(env, ReducerCreate, "reducer"));
  d.Set("reducerSetBackwardsPerStep", Napi::Function::New(env, ReducerSetBackwardsPerStep, "reducerSetBackwardsPerStep"));
  d.Set("reducerFinish", Napi::Function::New(env, ReducerFinish, "reducerFinish"));
  d.Set("reducerStats", Napi::Function::New(env, ReducerStats, "reducerStats"));
  d.Set("reducerDestroy", Napi::Function::New(env, ReducerDestroy, "reducerDestroy"));
  d.Set("hasReducer", Napi::Boolean::New(env, ReducerSignatures<c10d::Reducer>::any));
#ifdef INNERLOOP_WITH_NCCL
  d.Set("hasNccl", Napi::Boolean::New(env, true));
#else
  d.Set("hasNccl", Napi::Boolean::New(env, false));
#endif
  exports.Set("distributed", d);
}

}  // namespace innerloop
