// The floor for the benchmark's GPT-2 training step on the CPU: the same ATen ops as the innerloop
// model and the PyTorch reference (learned positions, pre-LN blocks, causal SDPA, tanh-GELU MLP,
// tied output layer, cross-entropy; backward; clipping to 1.0 with foreach norms; fused AdamW with
// decay on matrices only; gradients set to none), composed directly in C++: no binding, no Python,
// no JavaScript. What innerloop pays above this is its own overhead.
//
// Build and run (see BENCHMARKS.md):
//   TP=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
//   g++ -O2 -std=c++17 -w scripts/bench/aten_floor.cc -o /tmp/aten_floor -I$TP/include \
//     -I$TP/include/torch/csrc/api/include -L$TP/lib -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -Wl,-rpath,$TP/lib
//   FL=2 FC=64 /tmp/aten_floor T B STEPS      (FL layers, FC width; micro: T 8 B 1, tiny: T 64 B 8)
// Prints the median CPU time per step (one thread) and per phase.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

using at::Tensor;

static double cpuMs() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  const int L = getenv("FL") ? atoi(getenv("FL")) : 2;
  const int C = getenv("FC") ? atoi(getenv("FC")) : 64;
  const int T = argc > 1 ? atoi(argv[1]) : 8;
  const int B = argc > 2 ? atoi(argv[2]) : 1;
  const int steps = argc > 3 ? atoi(argv[3]) : 300;
  const int V = 256, H = 4;
  // OUT_IN=1: nn.Linear's [out, in] weights (the PyTorch reference's layout) instead of Conv1D's [in, out].
  const bool outIn = getenv("OUT_IN") && atoi(getenv("OUT_IN")) == 1;
  at::set_num_threads(1);
  torch::manual_seed(0);
  auto P = [](std::vector<int64_t> s, double std) { return (torch::randn(s) * std).requires_grad_(); };
  auto Ones = [](int64_t n) { return torch::ones({n}).requires_grad_(); };
  auto Zeros = [](int64_t n) { return torch::zeros({n}).requires_grad_(); };
  Tensor wte = P({V, C}, 0.02), wpe = P({T, C}, 0.02);
  struct Block { Tensor ln1w, ln1b, attw, attb, projw, projb, ln2w, ln2b, fcw, fcb, mpw, mpb; };
  std::vector<Block> blocks;
  for (int l = 0; l < L; l++) {
    // Conv1D layout [in, out], as the Hugging Face GPT-2 weights innerloop keeps.
    auto W = [&](int64_t in, int64_t out, double std) { return outIn ? P({out, in}, std) : P({in, out}, std); };
    blocks.push_back({Ones(C), Zeros(C), W(C, 3 * C, 0.02), Zeros(3 * C), W(C, C, 0.01), Zeros(C), Ones(C), Zeros(C),
                      W(C, 4 * C, 0.02), Zeros(4 * C), W(4 * C, C, 0.01), Zeros(C)});
  }
  Tensor lnfw = Ones(C), lnfb = Zeros(C);
  std::vector<Tensor> decay{wte, wpe}, noDecay{lnfw, lnfb};
  for (auto& b : blocks) {
    decay.insert(decay.end(), {b.attw, b.projw, b.fcw, b.mpw});
    noDecay.insert(noDecay.end(), {b.ln1w, b.ln1b, b.attb, b.projb, b.ln2w, b.ln2b, b.fcb, b.mpb});
  }
  std::vector<Tensor> all = decay;
  all.insert(all.end(), noDecay.begin(), noDecay.end());
  auto zerosLike = [](std::vector<Tensor>& v) {
    std::vector<Tensor> o;
    for (auto& t : v) o.push_back(torch::zeros_like(t));
    return o;
  };
  auto m1 = zerosLike(decay), v1 = zerosLike(decay), m2 = zerosLike(noDecay), v2 = zerosLike(noDecay);
  Tensor x = torch::randint(V, {B, T}), y = torch::randint(V, {B, T});
  std::vector<double> total, fw, bw, opt;
  for (int it = 0; it < steps; it++) {
    const double c0 = cpuMs();
    Tensor h = at::embedding(wte, x) + wpe.narrow(0, 0, T);
    auto lin = [&](const Tensor& in, const Tensor& w, const Tensor& b) { return at::linear(in, outIn ? w : w.t(), b); };
    for (auto& b : blocks) {
      auto qkv = lin(at::layer_norm(h, {C}, b.ln1w, b.ln1b), b.attw, b.attb).split(C, 2);
      auto heads = [&](const Tensor& t) { return t.view({B, T, H, C / H}).transpose(1, 2); };
      auto att = at::scaled_dot_product_attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), {}, 0.0, true);
      h = h + lin(att.transpose(1, 2).reshape({B, T, C}), b.projw, b.projb);
      h = h + lin(at::gelu(lin(at::layer_norm(h, {C}, b.ln2w, b.ln2b), b.fcw, b.fcb), "tanh"), b.mpw, b.mpb);
    }
    auto logits = at::linear(at::layer_norm(h, {C}, lnfw, lnfb), wte);
    auto loss = at::cross_entropy_loss(logits.flatten(0, 1), y.flatten());
    const double c1 = cpuMs();
    loss.backward();
    const double c2 = cpuMs();
    {
      at::NoGradGuard noGrad;
      std::vector<Tensor> grads, g1, g2;
      for (auto& p : all) grads.push_back(p.grad());
      auto totalNorm = at::linalg_vector_norm(at::stack(at::_foreach_norm(grads, 2)), 2);
      at::_foreach_mul_(grads, at::clamp_max(1.0 / (totalNorm + 1e-6), 1.0));
      Tensor step = torch::full({}, static_cast<double>(it + 1));
      std::vector<Tensor> s1(decay.size(), step), s2(noDecay.size(), step);
      for (auto& p : decay) g1.push_back(p.grad());
      for (auto& p : noDecay) g2.push_back(p.grad());
      at::_fused_adamw_(decay, g1, m1, v1, {}, s1, 6e-4, 0.9, 0.95, 0.1, 1e-8, false, false);
      at::_fused_adamw_(noDecay, g2, m2, v2, {}, s2, 6e-4, 0.9, 0.95, 0.0, 1e-8, false, false);
      for (auto& p : all) p.mutable_grad() = Tensor();
    }
    const double c3 = cpuMs();
    if (it >= std::min(20, steps / 5)) {
      total.push_back(c3 - c0);
      fw.push_back(c1 - c0);
      bw.push_back(c2 - c1);
      opt.push_back(c3 - c2);
    }
  }
  printf("ATen floor (%s weights) L=%d C=%d T=%d B=%d: median %.3f ms per step (CPU time, 1 thread); forward+loss %.3f, backward %.3f, clip+AdamW+zero %.3f\n",
         outIn ? "[out, in]" : "[in, out]", L, C, T, B, median(total), median(fw), median(bw), median(opt));
}
