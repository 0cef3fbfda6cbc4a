// torch.distributed for Node: rendezvous through c10d's TCPStore, process
// groups on Gloo (CPU) or NCCL (CUDA), and the collectives data-parallel
// training needs. Groups are kept here and named by small integer handles.
#include "binding.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef INNERLOOP_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <map>

namespace innerloop {
namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int rank = 0;
  int size = 1;
};

std::map<int64_t, Group> gGroups;
int64_t gNextGroup = 1;

Group& GetGroup(Args& a, size_t i) {
  auto it = gGroups.find(a.I(i));
  if (it == gGroups.end()) throw ArgError(std::string(a.fn()) + ": the process group was destroyed or never created");
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
#else
      throw ArgError("distributed.init: this build of innerloop has no NCCL support (it needs libtorch with CUDA and nccl.h at build time)");
#endif
    } else {
      throw ArgError("distributed.init: backend must be 'gloo' or 'nccl', got '" + backend + "'");
    }
    int64_t id = gNextGroup++;
    gGroups.emplace(id, std::move(g));
    return Napi::Number::New(info.Env(), static_cast<double>(id));
  });
}

Napi::Value Destroy(const Napi::CallbackInfo& info) {
  return Guarded(info, "distributed.destroy", [&]() -> Napi::Value {
    Args a(info, "distributed.destroy");
    gGroups.erase(a.I(0));
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

}  // namespace

void RegisterDistributed(Napi::Env env, Napi::Object exports) {
  Napi::Object d = Napi::Object::New(env);
  d.Set("init", Napi::Function::New(env, Init, "init"));
  d.Set("destroy", Napi::Function::New(env, Destroy, "destroy"));
  d.Set("allReduce", Napi::Function::New(env, AllReduce, "allReduce"));
  d.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  d.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  d.Set("averageGradients", Napi::Function::New(env, AverageGradients, "averageGradients"));
#ifdef INNERLOOP_WITH_NCCL
  d.Set("hasNccl", Napi::Boolean::New(env, true));
#else
  d.Set("hasNccl", Napi::Boolean::New(env, false));
#endif
  exports.Set("distributed", d);
}

}  // namespace innerloop
