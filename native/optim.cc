// Optimizer steps and gradient utilities done natively over all parameters at
// once: one call from JS per step instead of several ops per parameter.
#include <ATen/Parallel.h>

#include <cmath>
#include <unordered_set>

#include "binding.h"

namespace innerloop {
namespace {

// ---------------------------------------------------------------------------
// CPU float32 fast paths. For a small model the optimizer's kernels are cheap and what costs is
// dispatching them once per parameter (libtorch's fused AdamW and foreach norms loop over the
// tensors and dispatch each); these loops walk every parameter's memory directly in one call.
// The arithmetic is that of libtorch's fused CPU AdamW kernel (FusedAdamKernel.cpp), in the same
// order and precision except that sqrt(v) / sqrt(1 - beta2^t) is a multiplication by the
// reciprocal (one division fewer per element; the loop is bound by its divisions and square
// roots), and PyTorch's clip_grad_norm_ (coefficient computed in float32).

constexpr int64_t kGrain = 1 << 16;

// One AdamW update of n float32 elements. lerpSmall selects the lerp form libtorch uses for
// exp_avg.lerp_(grad, 1 - beta1).
template <bool lerpSmall>
inline void AdamWLoop(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                      int64_t n, float decay, float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2,
                      float invBc2Sqrt, float eps, float stepSize) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float pi = p[i] * decay;
    const float mi = lerpSmall ? m[i] + oneMinusBeta1 * (gi - m[i]) : gi - (gi - m[i]) * beta1;
    const float vi = v[i] * beta2 + oneMinusBeta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - stepSize * mi / (std::sqrt(vi) * invBc2Sqrt + eps);
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void AdamWF32(float* p, const float* g, float* m, float* v, int64_t n, float decay, float beta1, float beta2,
              float bc2Sqrt, float eps, float stepSize) {
  const float oneMinusBeta1 = 1 - beta1, oneMinusBeta2 = 1 - beta2;
  if (std::abs(oneMinusBeta1) < 0.5f) {
    AdamWLoop<true>(p, g, m, v, n, decay, beta1, oneMinusBeta1, beta2, oneMinusBeta2, 1 / bc2Sqrt, eps, stepSize);
  } else {
    AdamWLoop<false>(p, g, m, v, n, decay, beta1, oneMinusBeta1, beta2, oneMinusBeta2, 1 / bc2Sqrt, eps, stepSize);
  }
}

// Sum of squares in 16 independent float lanes (vectorizable without reassociating a single
// sum), reduced in double.
__attribute__((target_clones("avx512f", "avx2", "default")))
double SumSquaresF32(const float* x, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j] * x[i + j];
  }
  double s = 0;
  for (; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  for (float a : acc) s += a;
  return s;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void ScaleF32(float* x, int64_t n, float c) {
  for (int64_t i = 0; i < n; ++i) x[i] *= c;
}

bool CpuF32Contiguous(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_sparse();
}

// Groups tensors by (device, dtype): the fused kernels need uniform lists.
struct Group {
  std::vector<at::Tensor> params, grads, expAvgs, expAvgSqs, steps;
};

// Adds 1 to every distinct step tensor of the parameters being updated (a tensor shared by
// several parameters counts once): CPU float32 scalars directly, the others with one foreach add.
void IncrementSteps(std::map<std::pair<std::string, int>, Group>& groups) {
  std::unordered_set<const c10::TensorImpl*> seen;
  std::vector<at::Tensor> onDevice;
  for (auto& [key, g] : groups) {
    for (auto& s : g.steps) {
      if (!seen.insert(s.unsafeGetTensorImpl()).second) continue;
      if (CpuF32Contiguous(s) && s.numel() == 1) {
        *s.data_ptr<float>() += 1;
      } else {
        onDevice.push_back(s);
      }
    }
  }
  if (!onDevice.empty()) at::_foreach_add_(onDevice, 1);
}

// fusedAdamW(params, expAvgs, expAvgSqs, steps, lr, beta1, beta2, eps, weightDecay, incrementSteps)
// Parameters without a gradient are skipped. `steps` are float32 scalar tensors on the parameter's
// device. Without incrementSteps the caller has already counted this step in them (as torch.optim
// does before calling the kernel); with it they are incremented here, on the device, which is what
// a step captured into a CUDA graph needs (a count read on the host would be frozen into the
// graph). `lr` is a number or a 0-dim tensor; a tensor on the device is read by the kernel when it
// runs, so a captured step follows a learning-rate schedule that refills it between replays.
Napi::Value FusedAdamW(const Napi::CallbackInfo& info) {
  return Guarded(info, "adamw", [&]() -> Napi::Value {
    Args a(info, "adamw", "params,expAvgs,expAvgSqs,stateSteps,lr,beta1,beta2,eps,weightDecay,incrementSteps");
    std::vector<at::Tensor> params = a.TL(0), expAvgs = a.TL(1), expAvgSqs = a.TL(2), steps;
    // One count for every parameter (the usual case) comes as a number: no tensor per step.
    std::optional<double> sharedStep;
    if (info.Length() > 3 && info[3].IsNumber()) {
      sharedStep = a.D(3);
      if (!(*sharedStep >= 1) || std::floor(*sharedStep) != *sharedStep) a.Fail(3, "a step count of at least 1");
    } else {
      steps = a.TL(3);
    }
    std::optional<at::Tensor> lrTensor;
    double lr = 0;
    if (a.Has(4) && !info[4].IsNumber()) {
      lrTensor = a.T(4);
      if (lrTensor->dim() != 0 || !at::isFloatingType(lrTensor->scalar_type())) {
        a.Fail(4, "a number or a 0-dim floating-point tensor");
      }
    } else {
      lr = a.D(4);
    }
    double beta1 = a.D(5), beta2 = a.D(6), eps = a.D(7), wd = a.D(8);
    const bool increment = a.B(9, false);
    if (sharedStep && increment) throw ArgError("adamw: incrementSteps needs step tensors, not a number");
    if (expAvgs.size() != params.size() || expAvgSqs.size() != params.size() ||
        (!sharedStep && steps.size() != params.size())) {
      throw ArgError("adamw: state lists must have one entry per parameter");
    }
    // The shared count as one float32 scalar per device, made only where a kernel needs a tensor.
    std::map<std::string, at::Tensor> sharedStepTensors;
    auto stepFor = [&](const at::Tensor& p) -> at::Tensor {
      at::Tensor& t = sharedStepTensors[p.device().str()];
      if (!t.defined()) t = at::full({}, *sharedStep, at::TensorOptions().dtype(at::kFloat).device(p.device()));
      return t;
    };
    std::map<std::pair<std::string, int>, Group> groups;
    for (size_t k = 0; k < params.size(); ++k) {
      const at::Tensor& g = params[k].grad();
      if (!g.defined()) continue;
      auto key = std::make_pair(params[k].device().str(), static_cast<int>(params[k].scalar_type()));
      Group& grp = groups[key];
      grp.params.push_back(params[k]);
      grp.grads.push_back(g);
      grp.expAvgs.push_back(expAvgs[k]);
      grp.expAvgSqs.push_back(expAvgSqs[k]);
      if (!sharedStep) grp.steps.push_back(steps[k]);
    }
    c10::InferenceMode guard(false);
    at::NoGradGuard noGrad;
    if (increment) IncrementSteps(groups);
    if (lrTensor && groups.count(std::make_pair(std::string("cpu"), static_cast<int>(at::kFloat))) != 0) {
      lr = lrTensor->item<double>();  // the CPU loop below takes the rate as a number
    }
    auto cpuKey = std::make_pair(std::string("cpu"), static_cast<int>(at::kFloat));
    auto cpu = groups.find(cpuKey);
    if (cpu != groups.end()) {
      Group& g = cpu->second;
      bool fast = true;
      for (size_t k = 0; fast && k < g.params.size(); ++k) {
        fast = CpuF32Contiguous(g.params[k]) && CpuF32Contiguous(g.grads[k]) && CpuF32Contiguous(g.expAvgs[k]) &&
               CpuF32Contiguous(g.expAvgSqs[k]) && g.grads[k].numel() == g.params[k].numel() &&
               g.expAvgs[k].numel() == g.params[k].numel() && g.expAvgSqs[k].numel() == g.params[k].numel() &&
               (sharedStep || (CpuF32Contiguous(g.steps[k]) && g.steps[k].numel() == 1));
      }
      if (fast) {
        for (size_t k = 0; k < g.params.size(); ++k) {
          // As libtorch's kernel: the step count is read as float, the corrections in double.
          const double step = sharedStep ? static_cast<double>(static_cast<float>(*sharedStep))
                                         : *g.steps[k].data_ptr<float>();
          const double bc1 = 1 - std::pow(beta1, step), bc2 = 1 - std::pow(beta2, step);
          float* p = g.params[k].data_ptr<float>();
          const float* gr = g.grads[k].data_ptr<float>();
          float* m = g.expAvgs[k].data_ptr<float>();
          float* v = g.expAvgSqs[k].data_ptr<float>();
          const float decay = static_cast<float>(1 - lr * wd);
          at::parallel_for(0, g.params[k].numel(), kGrain, [&](int64_t b, int64_t e) {
            AdamWF32(p + b, gr + b, m + b, v + b, e - b, decay, static_cast<float>(beta1), static_cast<float>(beta2),
                     static_cast<float>(std::sqrt(bc2)), static_cast<float>(eps), static_cast<float>(lr / bc1));
          });
        }
        groups.erase(cpu);
      }
    }
    for (auto& [key, g] : groups) {
      if (sharedStep) {
        for (const at::Tensor& p : g.params) g.steps.push_back(stepFor(p));
      }
      if (lrTensor) {
        // libtorch's CUDA kernel reads the rate as a float32 on the parameters' device (to() is a
        // no-op when it already is one); its CPU kernel reads any CPU tensor's value.
        const at::Device dev = g.params.front().device();
        const at::Tensor onDevice = dev.is_cpu() && lrTensor->is_cpu() ? *lrTensor : lrTensor->to(dev, at::kFloat);
        at::_fused_adamw_(g.params, g.grads, g.expAvgs, g.expAvgSqs, {}, g.steps, onDevice, beta1, beta2, wd, eps,
                          /*amsgrad=*/false, /*maximize=*/false);
      } else {
        at::_fused_adamw_(g.params, g.grads, g.expAvgs, g.expAvgSqs, {}, g.steps, lr, beta1, beta2, wd, eps,
                          /*amsgrad=*/false, /*maximize=*/false);
      }
    }
    return info.Env().Undefined();
  });
}

// sgd(params, momentumBuffers|null, lr, momentum, dampening, weightDecay, nesterov, firstStep)
Napi::Value Sgd(const Napi::CallbackInfo& info) {
  return Guarded(info, "sgd", [&]() -> Napi::Value {
    Args a(info, "sgd", "params,momentumBuffers,lr,momentum,dampening,weightDecay,nesterov,firstStep");
    std::vector<at::Tensor> params = a.TL(0);
    std::vector<at::Tensor> bufs;
    if (a.Has(1)) bufs = a.TL(1);
    double lr = a.D(2), momentum = a.D(3), dampening = a.D(4), wd = a.D(5);
    bool nesterov = a.B(6, false), first = a.B(7, false);
    at::NoGradGuard noGrad;
    for (size_t k = 0; k < params.size(); ++k) {
      at::Tensor p = params[k];
      at::Tensor g = p.grad();
      if (!g.defined()) continue;
      if (wd != 0) g = g.add(p, wd);
      if (momentum != 0) {
        at::Tensor& b = bufs.at(k);
        if (first) b.copy_(g); else b.mul_(momentum).add_(g, 1 - dampening);
        g = nesterov ? g.add(b, momentum) : b;
      }
      p.add_(g, -lr);
    }
    return info.Env().Undefined();
  });
}

// clipGradNorm(params, maxNorm, normType=2) -> total norm (a 0-dim tensor, not
// read back, so no host synchronisation is forced).
Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  return Guarded(info, "clipGradNorm", [&]() -> Napi::Value {
    Args a(info, "clipGradNorm", "parameters,maxNorm,normType");
    std::vector<at::Tensor> params = a.TL(0);
    double maxNorm = a.D(1);
    double normType = a.D(2, 2.0);
    std::map<std::pair<std::string, int>, std::vector<at::Tensor>> groups;
    for (auto& p : params) {
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;
      groups[std::make_pair(g.device().str(), static_cast<int>(g.scalar_type()))].push_back(g);
    }
    at::NoGradGuard noGrad;
    if (groups.empty()) return ToJS(info.Env(), at::zeros({}, at::kFloat));
    if (normType == 2.0 && groups.size() == 1 && groups.begin()->first.first == "cpu" &&
        groups.begin()->first.second == static_cast<int>(at::kFloat)) {
      std::vector<at::Tensor>& grads = groups.begin()->second;
      bool fast = true;
      for (auto& g : grads) fast = fast && CpuF32Contiguous(g);
      if (fast) {
        double sum = 0;
        for (auto& g : grads) sum += SumSquaresF32(g.data_ptr<float>(), g.numel());
        const float total = static_cast<float>(std::sqrt(sum));
        if (std::isfinite(maxNorm) && maxNorm > 0) {
          // PyTorch: grads *= clamp_max(maxNorm / (total + 1e-6), 1), in float32; a factor of 1
          // changes nothing, so only smaller (or NaN) factors are applied.
          const float coef = static_cast<float>(maxNorm) / (total + 1e-6f);
          if (!(coef >= 1.0f)) {
            for (auto& g : grads) ScaleF32(g.data_ptr<float>(), g.numel(), coef);
          }
        }
        return ToJS(info.Env(), at::scalar_tensor(total, at::kFloat));
      }
    }
    std::vector<at::Tensor> norms;
    at::Device dev = groups.begin()->second.front().device();
    for (auto& [key, grads] : groups) {
      for (auto& n : at::_foreach_norm(grads, normType)) norms.push_back(n.to(dev, at::kFloat));
    }
    at::Tensor total = at::linalg_vector_norm(at::stack(norms), normType);
    if (std::isfinite(maxNorm) && maxNorm > 0) {
      at::Tensor coef = at::clamp_max(maxNorm / (total + 1e-6), 1.0);
      for (auto& [key, grads] : groups) at::_foreach_mul_(grads, coef.to(grads.front().device()));
    }
    return ToJS(info.Env(), total);
  });
}

// zeroGrad(params): drops every gradient (PyTorch's set_to_none=True).
Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
  return Guarded(info, "zeroGrad", [&]() -> Napi::Value {
    Args a(info, "zeroGrad", "params");
    for (auto& p : a.TL(0)) p.mutable_grad() = at::Tensor();
    return info.Env().Undefined();
  });
}

// hasGrads(params) -> boolean[]: which parameters have a gradient, without
// making a JS wrapper for each gradient.
Napi::Value HasGrads(const Napi::CallbackInfo& info) {
  return Guarded(info, "hasGrads", [&]() -> Napi::Value {
    Args a(info, "hasGrads", "params");
    std::vector<at::Tensor> params = a.TL(0);
    Napi::Array out = Napi::Array::New(info.Env(), params.size());
    for (size_t k = 0; k < params.size(); ++k) {
      out.Set(static_cast<uint32_t>(k), Napi::Boolean::New(info.Env(), params[k].grad().defined()));
    }
    return out;
  });
}

}  // namespace

void RegisterOptim(Napi::Env env, Napi::Object exports) {
  exports.Set("fusedAdamW", Napi::Function::New(env, FusedAdamW, "fusedAdamW"));
  exports.Set("sgd", Napi::Function::New(env, Sgd, "sgd"));
  exports.Set("clipGradNorm", Napi::Function::New(env, ClipGradNorm, "clipGradNorm"));
  exports.Set("zeroGrad", Napi::Function::New(env, ZeroGrad, "zeroGrad"));
  exports.Set("hasGrads", Napi::Function::New(env, HasGrads, "hasGrads"));
}

}  // namespace innerloop
