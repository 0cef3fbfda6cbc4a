// CUDA graphs: record a sequence of kernel launches once and replay it with a single launch
// (at::cuda::CUDAGraph, what torch.cuda.CUDAGraph wraps). For a training step whose kernels are
// short, the host's launch overhead is what bounds the step; a replayed graph removes it.
//
// Graphs are kept here and named by small integer handles. Each graph has a stream of its own
// (CUDA refuses to capture the legacy default stream) on which its warm-up and its capture run;
// capture runs with autocast's cast-weight cache off (cached casts would be captured once and
// never refreshed). Random number generators used inside a capture register with the graph, which
// advances their offsets on every replay, so dropout draws new masks. A capture that fails,
// because an op synchronised with the host or the JS callback threw, is ended and discarded here,
// so that the current stream and the autocast cache are as before.
#include "binding.h"

#include <mutex>

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>

#ifdef INNERLOOP_WITH_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#include <torch/version.h>
#endif

namespace innerloop {
namespace {

#define NATIVE_FN(name) Napi::Value name(const Napi::CallbackInfo& info)

#ifdef INNERLOOP_WITH_CUDA

// Before libtorch 2.14 a capture that fails (cudaStreamEndCapture reports it invalidated) throws
// before the allocator stops routing the capture's allocations into the graph's pool, and the
// graph's destructor does not release that pool; destroying the graph would leave the allocator
// holding a filter that points into it. There, a failed graph is kept (leaked) instead: its pool
// stays reserved until the process ends. 2.14 ends the routing first and releases the pool.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 14)
constexpr bool kFailedCaptureIsReleasable = true;
#else
constexpr bool kFailedCaptureIsReleasable = false;
#endif

struct Graph {
  std::unique_ptr<at::cuda::CUDAGraph> graph = std::make_unique<at::cuda::CUDAGraph>();
  c10::DeviceIndex device = 0;
  // The graph's own stream: its warm-up steps and its capture run there, so that everything the
  // warm-up sets up lazily per stream (cuBLAS workspaces, autograd's stream bookkeeping) belongs
  // to the stream the capture records (as PyTorch's recipe does).
  std::optional<c10::cuda::CUDAStream> stream;
  int onStream = 0;  // nesting of streamEnter (warm-up) or capture
  bool capturing = false;
  bool captured = false;
  // What entering the graph's stream replaced, restored when it ends.
  std::optional<c10::cuda::CUDAStream> previousStream;
  bool previousCacheEnabled = true;
};

// The graphs are process-wide (CUDA state, no JS handles), used from the main thread and from
// worker_threads alike: every entry point holds this lock while it looks a graph up or changes
// the map. Recursive, so that nothing deadlocks should an entry point be reached from inside
// another on the same thread.
std::recursive_mutex& GraphsMutex() {
  static auto* mu = new std::recursive_mutex();
  return *mu;
}

// Never destroyed: at process exit the CUDA runtime may already be gone when static destructors
// run, and a graph's destructor calls into it.
std::map<int64_t, Graph>& Graphs() {
  static auto* graphs = new std::map<int64_t, Graph>();
  return *graphs;
}
int64_t gNextGraph = 1;

Graph& GetGraph(Args& a, size_t i) {
  auto it = Graphs().find(a.I(i));
  if (it == Graphs().end()) throw ArgError(std::string(a.fn()) + ": the CUDA graph was disposed or never created");
  return it->second;
}

// Makes the graph's stream current; it first waits for the work queued on the current stream.
void EnterStream(Graph& g) {
  const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(g.device);
  at::cuda::CUDAEvent ready;
  ready.record(current);
  ready.block(*g.stream);
  g.previousStream = current;
  c10::cuda::setCurrentCUDAStream(*g.stream);
  g.onStream = 1;
}

// Makes the previous stream current again; it waits for the work queued on the graph's stream.
void LeaveStream(Graph& g) {
  if (g.previousStream) {
    at::cuda::CUDAEvent done;
    done.record(*g.stream);
    done.block(*g.previousStream);
    c10::cuda::setCurrentCUDAStream(*g.previousStream);
    g.previousStream.reset();
  }
  g.onStream = 0;
}

// Puts back what captureBegin changed (stream, autocast cache); the graph itself is left alone.
void RestoreAfterCapture(Graph& g) {
  if (g.previousStream) {
    c10::cuda::setCurrentCUDAStream(*g.previousStream);
    g.previousStream.reset();
  }
  g.onStream = 0;
  at::autocast::set_autocast_cache_enabled(g.previousCacheEnabled);
  g.capturing = false;
}

// A capture that failed: its graph cannot be replayed; make room for a new one (see above).
void DiscardFailedCapture(Graph& g) {
  if (!kFailedCaptureIsReleasable) (void)g.graph.release();
  g.graph = std::make_unique<at::cuda::CUDAGraph>();
}

NATIVE_FN(CudaGraphCreate) {
  return Guarded(info, "cuda.CudaGraph", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    Args a(info, "cuda.CudaGraph", "device");
    if (!torch::cuda::is_available()) {
      throw std::runtime_error("CUDA graphs need a CUDA device, and none is available on this machine");
    }
    const int64_t d = a.I(0, 0);
    if (d < 0 || d >= static_cast<int64_t>(torch::cuda::device_count())) {
      throw ArgError("cuda.CudaGraph: no CUDA device " + std::to_string(d));
    }
    const int64_t h = gNextGraph++;
    Graph& g = Graphs()[h];
    g.device = static_cast<c10::DeviceIndex>(d);
    g.stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, g.device);
    return Napi::Number::New(info.Env(), static_cast<double>(h));
  });
}

// streamEnter(handle) / streamLeave(handle): run eager work (the warm-up steps) on the graph's
// stream, ordered after and before the work of the current stream.
NATIVE_FN(CudaGraphStreamEnter) {
  return Guarded(info, "cuda.CudaGraph.onStream", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    Args a(info, "cuda.CudaGraph.onStream", "graph");
    Graph& g = GetGraph(a, 0);
    if (g.onStream != 0) throw ArgError("cuda.CudaGraph.onStream: already on the graph's stream");
    c10::cuda::CUDAGuard guard(g.device);
    EnterStream(g);
    return info.Env().Undefined();
  });
}
NATIVE_FN(CudaGraphStreamLeave) {
  return Guarded(info, "cuda.CudaGraph.onStream", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    Args a(info, "cuda.CudaGraph.onStream", "graph");
    Graph& g = GetGraph(a, 0);
    if (g.capturing) throw ArgError("cuda.CudaGraph.onStream: the graph is capturing");
    c10::cuda::CUDAGuard guard(g.device);
    LeaveStream(g);
    return info.Env().Undefined();
  });
}

// captureBegin(handle): from here until captureEnd, kernels are recorded into the graph, not run.
NATIVE_FN(CudaGraphCaptureBegin) {
  return Guarded(info, "cuda.CudaGraph.capture", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    Args a(info, "cuda.CudaGraph.capture", "graph");
    Graph& g = GetGraph(a, 0);
    if (g.capturing) throw ArgError("cuda.CudaGraph.capture: this graph is already capturing");
    if (g.onStream != 0) throw ArgError("cuda.CudaGraph.capture: not inside onStream()");
    if (g.captured) throw ArgError("cuda.CudaGraph.capture: this graph already holds a capture (dispose it and make another)");
    c10::cuda::CUDAGuard guard(g.device);
    // As torch.cuda.graph: start from an idle device, so that nothing queued before the capture
    // runs concurrently with the captured stream's first replay.
    torch::cuda::synchronize(g.device);
    g.previousStream = c10::cuda::getCurrentCUDAStream(g.device);
    c10::cuda::setCurrentCUDAStream(*g.stream);
    g.onStream = 1;
    g.previousCacheEnabled = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    g.capturing = true;
    try {
      g.graph->capture_begin();
    } catch (...) {
      RestoreAfterCapture(g);
      throw;
    }
    return info.Env().Undefined();
  });
}

// captureEnd(handle, abort): ends the capture. With abort (the callback threw), the partial
// graph is discarded and the graph can capture again.
NATIVE_FN(CudaGraphCaptureEnd) {
  return Guarded(info, "cuda.CudaGraph.capture", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    Args a(info, "cuda.CudaGraph.capture", "graph,abort");
    Graph& g = GetGraph(a, 0);
    if (!g.capturing) throw ArgError("cuda.CudaGraph.capture: this graph is not capturing");
    const bool abort = a.B(1, false);
    c10::cuda::CUDAGuard guard(g.device);
    try {
      g.graph->capture_end();
    } catch (...) {
      // An op that was not capturable (a host synchronisation, an allocation the capture cannot
      // make) invalidated the capture: clean up and report the first error.
      RestoreAfterCapture(g);
      DiscardFailedCapture(g);
      if (abort) return info.Env().Undefined();
      throw;
    }
    RestoreAfterCapture(g);
    g.stream->synchronize();
    if (abort) {
      g.graph = std::make_unique<at::cuda::CUDAGraph>();
      return info.Env().Undefined();
    }
    g.captured = true;
    return info.Env().Undefined();
  });
}

// replay(handle): launches the captured work on the current stream; returns without waiting.
NATIVE_FN(CudaGraphReplay) {
  return Guarded(info, "cuda.CudaGraph.replay", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    Args a(info, "cuda.CudaGraph.replay", "graph");
    Graph& g = GetGraph(a, 0);
    if (g.capturing) throw ArgError("cuda.CudaGraph.replay: the graph is still capturing");
    if (!g.captured) throw ArgError("cuda.CudaGraph.replay: nothing was captured");
    c10::cuda::CUDAGuard guard(g.device);
    g.graph->replay();
    return info.Env().Undefined();
  });
}

// dispose(handle): frees the graph and returns its private memory pool to the allocator.
NATIVE_FN(CudaGraphDispose) {
  return Guarded(info, "cuda.CudaGraph.dispose", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    Args a(info, "cuda.CudaGraph.dispose", "graph");
    auto it = Graphs().find(a.I(0));
    if (it == Graphs().end()) return info.Env().Undefined();
    if (it->second.capturing) throw ArgError("cuda.CudaGraph.dispose: the graph is capturing; end the capture first");
    c10::cuda::CUDAGuard guard(it->second.device);
    if (it->second.onStream != 0) LeaveStream(it->second);
    Graphs().erase(it);
    return info.Env().Undefined();
  });
}

// isCapturing(): whether a graph is capturing now (an op that waits for the device would break
// the capture).
NATIVE_FN(CudaIsCapturing) {
  return Guarded(info, "cuda.isCapturing", [&]() -> Napi::Value {
    std::lock_guard<std::recursive_mutex> lock(GraphsMutex());
    bool capturing = false;
    for (const auto& [h, g] : Graphs()) capturing = capturing || g.capturing;
    return Napi::Boolean::New(info.Env(), capturing);
  });
}

#else  // no CUDA in this build

Napi::Value NoCuda(const Napi::CallbackInfo& info) {
  return Guarded(info, "cuda.CudaGraph", [&]() -> Napi::Value {
    throw std::runtime_error(
        "CUDA graphs need a CUDA device, and this build of innerloop has no CUDA support "
        "(it was built against a CPU-only libtorch)");
  });
}
NATIVE_FN(CudaGraphCreate) { return NoCuda(info); }
NATIVE_FN(CudaGraphStreamEnter) { return NoCuda(info); }
NATIVE_FN(CudaGraphStreamLeave) { return NoCuda(info); }
NATIVE_FN(CudaGraphCaptureBegin) { return NoCuda(info); }
NATIVE_FN(CudaGraphCaptureEnd) { return NoCuda(info); }
NATIVE_FN(CudaGraphReplay) { return NoCuda(info); }
NATIVE_FN(CudaGraphDispose) { return info.Env().Undefined(); }
NATIVE_FN(CudaIsCapturing) { return Napi::Boolean::New(info.Env(), false); }

#endif

}  // namespace

void RegisterCudaGraph(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaGraphCreate", Napi::Function::New(env, CudaGraphCreate, "cudaGraphCreate"));
  exports.Set("cudaGraphStreamEnter", Napi::Function::New(env, CudaGraphStreamEnter, "cudaGraphStreamEnter"));
  exports.Set("cudaGraphStreamLeave", Napi::Function::New(env, CudaGraphStreamLeave, "cudaGraphStreamLeave"));
  exports.Set("cudaGraphCaptureBegin", Napi::Function::New(env, CudaGraphCaptureBegin, "cudaGraphCaptureBegin"));
  exports.Set("cudaGraphCaptureEnd", Napi::Function::New(env, CudaGraphCaptureEnd, "cudaGraphCaptureEnd"));
  exports.Set("cudaGraphReplay", Napi::Function::New(env, CudaGraphReplay, "cudaGraphReplay"));
  exports.Set("cudaGraphDispose", Napi::Function::New(env, CudaGraphDispose, "cudaGraphDispose"));
  exports.Set("cudaIsCapturing", Napi::Function::New(env, CudaIsCapturing, "cudaIsCapturing"));
}

}  // namespace innerloop
