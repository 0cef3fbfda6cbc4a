// Optimizer steps and gradient utilities done natively over all parameters at
// once: one call from JS per step instead of several ops per parameter.
#include "binding.h"

namespace innerloop {
namespace {

// Groups tensors by (device, dtype): the fused kernels need uniform lists.
struct Group {
  std::vector<at::Tensor> params, grads, expAvgs, expAvgSqs, steps;
};

// fusedAdamW(params, expAvgs, expAvgSqs, steps, lr, beta1, beta2, eps, weightDecay)
// Parameters without a gradient are skipped. `steps` are float32 scalar tensors
// on the parameter's device, incremented by the kernel.
Napi::Value FusedAdamW(const Napi::CallbackInfo& info) {
  return Guarded(info, "adamw", [&]() -> Napi::Value {
    Args a(info, "adamw", "params,expAvgs,expAvgSqs,stateSteps,lr,beta1,beta2,eps,weightDecay");
    std::vector<at::Tensor> params = a.TL(0), expAvgs = a.TL(1), expAvgSqs = a.TL(2), steps = a.TL(3);
    double lr = a.D(4), beta1 = a.D(5), beta2 = a.D(6), eps = a.D(7), wd = a.D(8);
    if (expAvgs.size() != params.size() || expAvgSqs.size() != params.size() || steps.size() != params.size()) {
      throw ArgError("adamw: state lists must have one entry per parameter");
    }
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
      grp.steps.push_back(steps[k]);
    }
    c10::InferenceMode guard(false);
    at::NoGradGuard noGrad;
    for (auto& [key, g] : groups) {
      at::_fused_adamw_(g.params, g.grads, g.expAvgs, g.expAvgSqs, {}, g.steps, lr, beta1, beta2, wd, eps,
                        /*amsgrad=*/false, /*maximize=*/false);
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
