// Why: libtorch sends float32 matrix products on the CPU to MKL's sgemm, which on AMD processors
// runs its generic AVX2 kernels. oneDNN, also inside libtorch, has AVX-512 kernels for float32
// and was 1.1-2.0x faster on the products of this package's models on a 2-core AMD EPYC
// (BENCHMARKS.md, "oneDNN matrix products"): GPT-2 124M's attention input 1.26-1.30x, the logit
// lens's [rows, 768] @ [768, 50257] 1.5-1.6x, the mid benchmark's block products 1.1-2.0x. It is
// the same float32 arithmetic in another order (differences of about 1e-6 relative, as between
// two BLAS libraries). Small products keep at::mm: oneDNN's per-call setup (about 15 us) is more
// than such a product costs.
//
// oneDNN is reached through at::native::mkldnn_matmul, which libtorch exports but whose header it
// does not ship: it is looked up by its symbol when first needed, so that a libtorch without it
// still loads the addon (and multiplies with at::mm). Its float32 path needs AVX-512 (BW, VL, DQ)
// and refuses otherwise, which the first eligible call finds out once. INNERLOOP_GEMM=blas keeps every product on at::mm (to
// compare, or to get bit-identical results with a PyTorch script).
#include "gemm.h"

#include <ATen/Config.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include <dlfcn.h>

namespace innerloop {
namespace {

// Below this many multiply-adds (m·k·n) at::mm is as fast or faster (measured: 512x64x256,
// 2^23, was 0.90-1.03x with oneDNN; 512x128x256 1.07-1.32x).
constexpr int64_t kMinMacs = int64_t{1} << 24;

enum State : int { kUnknown, kOn, kOff };
std::atomic<int> gState{kUnknown};

// at::native::mkldnn_matmul(mat1, mat2, result, beta, alpha): result = beta * result + alpha *
// (mat1 @ mat2), 2-D operands contiguous or transposed.
using MatmulFn = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float, float);
std::atomic<MatmulFn> gMatmul{nullptr};

bool EnvAllows() {
  const char* v = std::getenv("INNERLOOP_GEMM");
  return v == nullptr || std::strcmp(v, "blas") != 0;
}

// Contiguous, or the transpose of a contiguous matrix: what oneDNN takes without a copy.
bool PlainOrTransposed(const at::Tensor& t) {
  if (t.stride(1) == 1 && t.stride(0) >= t.size(1)) return true;
  return t.stride(0) == 1 && t.stride(1) >= t.size(0);
}

bool Eligible(const at::Tensor& a, const at::Tensor& b) {
  if (gState.load(std::memory_order_relaxed) == kOff) return false;
  if (!a.device().is_cpu() || a.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat) return false;
  if (a.dim() != 2 || b.dim() != 2 || !b.device().is_cpu() || a.size(1) != b.size(0)) return false;
  if (a.size(0) * a.size(1) * b.size(1) < kMinMacs) return false;
  // Autograd must see a differentiable op: outside a node's forward or backward, at::mm.
  if (at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad())) return false;
  if (!PlainOrTransposed(a) || !PlainOrTransposed(b)) return false;
  if (gState.load(std::memory_order_relaxed) == kUnknown) {
    int next = kOff;
    MatmulFn fn = AT_MKLDNN_ENABLED() && EnvAllows()
                      ? reinterpret_cast<MatmulFn>(dlsym(RTLD_DEFAULT, "_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff"))
                      : nullptr;
    gMatmul.store(fn);
    if (fn != nullptr) {
      try {
        at::Tensor x = at::ones({4, 4});
        at::Tensor r = at::empty({4, 4});
        fn(x, x, r, 0.f, 1.f);
        next = r.eq(4).all().item<bool>() ? kOn : kOff;
      } catch (const c10::Error&) {
        next = kOff;  // no AVX-512 here: libtorch's check refused
      }
    }
    gState.store(next);
  }
  return gState.load(std::memory_order_acquire) == kOn;
}

at::Tensor OneDnnMm(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor r = at::empty({a.size(0), b.size(1)}, a.options());
  gMatmul.load(std::memory_order_relaxed)(a, b, r, 0.f, 1.f);
  return r;
}

// y = x W^T (+ b) with the products through Mm, for inputs autograd tracks. Two nodes, with and
// without the bias: a custom node's inputs must all be defined tensors.
at::Tensor LinearForward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const int64_t k = x.size(-1);
  at::Tensor y = Mm(x.reshape({-1, k}), w.t());
  if (b.defined()) y.add_(b);
  auto shape = x.sizes().vec();
  shape.back() = w.size(0);
  return y.view(shape);
}

void LinearGrads(torch::autograd::AutogradContext* ctx, const at::Tensor& gy, at::Tensor& dx, at::Tensor& dw, at::Tensor* db) {
  auto saved = ctx->get_saved_variables();
  const at::Tensor& x = saved[0];
  const at::Tensor& w = saved[1];
  at::Tensor dy = gy.reshape({-1, w.size(0)});
  if (ctx->needs_input_grad(0)) dx = Mm(dy, w).view(x.sizes());
  if (ctx->needs_input_grad(1)) dw = Mm(dy.t(), x.reshape({-1, x.size(-1)}));
  if (db != nullptr && ctx->needs_input_grad(2)) *db = dy.sum(0);
}

struct LinearBackward : public torch::autograd::Function<LinearBackward> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    ctx->save_for_backward({x, w});
    return LinearForward(x, w, at::Tensor());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list g) {
    at::Tensor dx, dw;
    LinearGrads(ctx, g[0], dx, dw, nullptr);
    return {dx, dw};
  }
};

struct LinearBiasBackward : public torch::autograd::Function<LinearBiasBackward> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    ctx->save_for_backward({x, w});
    return LinearForward(x, w, b);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list g) {
    at::Tensor dx, dw, db;
    LinearGrads(ctx, g[0], dx, dw, &db);
    return {dx, dw, db};
  }
};

}  // namespace

at::Tensor Mm(const at::Tensor& a, const at::Tensor& b) {
  return Eligible(a, b) ? OneDnnMm(a, b) : at::mm(a, b);
}

at::Tensor Addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b) {
  if (!Eligible(a, b) || (at::GradMode::is_enabled() && bias.requires_grad())) return at::addmm(bias, a, b);
  return OneDnnMm(a, b).add_(bias);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
  const at::Tensor bias = b.has_value() ? *b : at::Tensor();
  // The shapes and dtypes at::linear accepts, decided as it would; only plain float32 CPU
  // products of at least kMinMacs take the other route.
  if (x.dim() < 1 || w.dim() != 2 || x.size(-1) != w.size(1) || (bias.defined() && (bias.dim() != 1 || bias.size(0) != w.size(0))) ||
      (bias.defined() && (bias.scalar_type() != at::kFloat || !bias.device().is_cpu()))) {
    return at::linear(x, w, b);
  }
  const int64_t rows = x.numel() / std::max<int64_t>(x.size(-1), 1);
  at::Tensor x2 = x.dim() == 2 ? x : x.reshape({rows, x.size(-1)});
  bool eligible;
  {
    at::NoGradGuard probe;  // only asks whether the shapes, dtypes and layouts qualify
    eligible = Eligible(x2, w.t());
  }
  if (!eligible) return at::linear(x, w, b);
  const bool tracked = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (bias.defined() && bias.requires_grad()));
  if (tracked) return bias.defined() ? LinearBiasBackward::apply(x, w, bias) : LinearBackward::apply(x, w);
  return LinearForward(x, w, bias);
}

const char* GemmBackend() {
  if (gState.load() == kUnknown) {
    at::NoGradGuard g;
    Eligible(at::empty({256, 256}), at::empty({256, 256}));
  }
  return gState.load() == kOn ? "onednn" : "blas";
}

}  // namespace innerloop
