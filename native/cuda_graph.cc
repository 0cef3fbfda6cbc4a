// CUDA graphs: record a sequence of kernel launches once and replay it with a single launch
// (at::cuda::CUDAGraph, what torch.cuda.CUDAGraph wraps). For a training step whose kernels are
// short, the host's launch overhead is what bounds the step; a replayed graph removes it.
//
// Graphs are kept here and named by small integer handles. Capture runs on a side stream (CUDA
// refuses to capture the legacy default stream), with autocast's cast-weight cache off (cached
// casts would be captured once and never refreshed) and the default generator registered (the
// graph advances its random offsets on every replay, so dropout draws new masks). A capture that
// fails, because an op synchronised with the host or the JS callback threw, is ended and
// discarded here, so that the stream, the autocast cache and the allocator are as before.
#include "binding.h"

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>

#ifdef INNERLOOP_WITH_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace innerloop {
namespace {

#define NATIVE_FN(name) Napi::Value name(const Napi::CallbackInfo& info)

#ifdef INNERLOOP_WITH_CUDA

struct Graph {
  std::unique_ptr<at::cuda::CUDAGraph> graph = std::make_unique<at::cuda::CUDAGraph>();
  c10::DeviceIndex device = 0;
  bool capturing = false;
  bool captured = false;
  // What capture replaced, restored when it ends.
  std::optional<c10::cuda::CUDAStream> previousStream;
  bool previousCacheEnabled = true;
};

std::map<int64_t, Graph> gGraphs;
int64_t gNextGraph = 1;

Graph& GetGraph(Args& a, size_t i) {
  auto it = gGraphs.find(a.I(i));
  if (it == gGraphs.end()) throw ArgError(std::string(a.fn()) + ": the CUDA graph was disposed or never created");
  return it->second;
}

// Puts back what captureBegin changed (stream, autocast cache); the graph itself is left alone.
void RestoreAfterCapture(Graph& g) {
  if (g.previousStream) {
    // Work queued on the original stream after this point must see the captured stream's work
    // (none ran: capture only records, but the warm-up allocations may be pending).
    c10::cuda::setCurrentCUDAStream(*g.previousStream);
    g.previousStream.reset();
  }
  at::autocast::set_autocast_cache_enabled(g.previousCacheEnabled);
  g.capturing = false;
}

NATIVE_FN(CudaGraphCreate) {
  return Guarded(info, "cuda.CudaGraph", [&]() -> Napi::Value {
    Args a(info, "cuda.CudaGraph", "device");
    if (!torch::cuda::is_available()) {
      throw std::runtime_error("CUDA graphs need a CUDA device, and none is available on this machine");
    }
    const int64_t d = a.I(0, 0);
    if (d < 0 || d >= static_cast<int64_t>(torch::cuda::device_count())) {
      throw ArgError("cuda.CudaGraph: no CUDA device " + std::to_string(d));
    }
    const int64_t h = gNextGraph++;
    gGraphs[h].device = static_cast<c10::DeviceIndex>(d);
    return Napi::Number::New(info.Env(), static_cast<double>(h));
  });
}

// captureBegin(handle): from here until captureEnd, kernels are recorded into the graph, not run.
NATIVE_FN(CudaGraphCaptureBegin) {
  return Guarded(info, "cuda.CudaGraph.capture", [&]() -> Napi::Value {
    Args a(info, "cuda.CudaGraph.capture", "graph");
    Graph& g = GetGraph(a, 0);
    if (g.capturing) throw ArgError("cuda.CudaGraph.capture: this graph is already capturing");
    if (g.captured) throw ArgError("cuda.CudaGraph.capture: this graph already holds a capture (reset() it first)");
    c10::cuda::CUDAGuard guard(g.device);
    // As torch.cuda.graph: start from an idle device, so that nothing queued before the capture
    // runs concurrently with the captured stream's first replay.
    torch::cuda::synchronize(g.device);
    g.previousStream = c10::cuda::getCurrentCUDAStream(g.device);
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, g.device));
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
    Args a(info, "cuda.CudaGraph.capture", "graph,abort");
    Graph& g = GetGraph(a, 0);
    if (!g.capturing) throw ArgError("cuda.CudaGraph.capture: this graph is not capturing");
    const bool abort = a.B(1, false);
    c10::cuda::CUDAGuard guard(g.device);
    const c10::cuda::CUDAStream captureStream = c10::cuda::getCurrentCUDAStream(g.device);
    try {
      g.graph->capture_end();
    } catch (...) {
      // An op that was not capturable (a host synchronisation, an allocation the capture cannot
      // make) invalidates the capture: clean up and report the first error.
      RestoreAfterCapture(g);
      g.graph = std::make_unique<at::cuda::CUDAGraph>();
      if (abort) return info.Env().Undefined();
      throw;
    }
    RestoreAfterCapture(g);
    c10::cuda::getCurrentCUDAStream(g.device).synchronize();
    captureStream.synchronize();
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
    Args a(info, "cuda.CudaGraph.dispose", "graph");
    auto it = gGraphs.find(a.I(0));
    if (it == gGraphs.end()) return info.Env().Undefined();
    if (it->second.capturing) throw ArgError("cuda.CudaGraph.dispose: the graph is capturing; end the capture first");
    c10::cuda::CUDAGuard guard(it->second.device);
    gGraphs.erase(it);
    return info.Env().Undefined();
  });
}

// isCapturing(): whether the current stream is being captured (an op that waits for the device
// would break the capture).
NATIVE_FN(CudaIsCapturing) {
  return Guarded(info, "cuda.isCapturing", [&]() -> Napi::Value {
    bool capturing = false;
    for (const auto& [h, g] : gGraphs) capturing = capturing || g.capturing;
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
NATIVE_FN(CudaGraphCaptureBegin) { return NoCuda(info); }
NATIVE_FN(CudaGraphCaptureEnd) { return NoCuda(info); }
NATIVE_FN(CudaGraphReplay) { return NoCuda(info); }
NATIVE_FN(CudaGraphDispose) { return info.Env().Undefined(); }
NATIVE_FN(CudaIsCapturing) { return Napi::Boolean::New(info.Env(), false); }

#endif

}  // namespace

void RegisterCudaGraph(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaGraphCreate", Napi::Function::New(env, CudaGraphCreate, "cudaGraphCreate"));
  exports.Set("cudaGraphCaptureBegin", Napi::Function::New(env, CudaGraphCaptureBegin, "cudaGraphCaptureBegin"));
  exports.Set("cudaGraphCaptureEnd", Napi::Function::New(env, CudaGraphCaptureEnd, "cudaGraphCaptureEnd"));
  exports.Set("cudaGraphReplay", Napi::Function::New(env, CudaGraphReplay, "cudaGraphReplay"));
  exports.Set("cudaGraphDispose", Napi::Function::New(env, CudaGraphDispose, "cudaGraphDispose"));
  exports.Set("cudaIsCapturing", Napi::Function::New(env, CudaIsCapturing, "cudaIsCapturing"));
}

}  // namespace innerloop
