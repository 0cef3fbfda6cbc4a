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
// and refuses otherwise, which the first product large enough finds out once. INNERLOOP_GEMM=blas
// keeps every product on at::mm (to compare, or to get bit-identical results with a PyTorch script).
#include "gemm.h"

#include <ATen/Config.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdlib>
#include <cstring>

#include <dlfcn.h>

namespace innerloop {
namespace {

// Below this many multiply-adds (m·k·n) at::mm is as fast or faster (measured: 512x64x256,
// 2^23, was 0.90-1.03x with oneDNN; 512x128x256 1.07-1.32x).
constexpr int64_t kMinMacs = int64_t{1} << 24;

// at::native::mkldnn_matmul(mat1, mat2, result, beta, alpha): result = beta * result + alpha *
// (mat1 @ mat2), 2-D operands contiguous or transposed.
using MatmulFn = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float, float);

// oneDNN's product, or null where it is not to be used: found and tried once per process.
MatmulFn OneDnn() {
  static const MatmulFn fn = []() -> MatmulFn {
    const char* env = std::getenv("INNERLOOP_GEMM");
    if (!AT_MKLDNN_ENABLED() || (env != nullptr && std::strcmp(env, "blas") == 0)) return nullptr;
    auto f = reinterpret_cast<MatmulFn>(dlsym(RTLD_DEFAULT, "_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff"));
    if (f == nullptr) return nullptr;
    try {
      at::Tensor x = at::ones({4, 4});
      at::Tensor r = at::empty({4, 4});
      f(x, x, r, 0.f, 1.f);
      return r.eq(4).all().item<bool>() ? f : nullptr;
    } catch (const c10::Error&) {
      return nullptr;  // no AVX-512 here: libtorch's check refused
    }
  }();
  return fn;
}

// Whether autograd records an op on `t`: such products keep libtorch's differentiable ops.
bool Recorded(const at::Tensor& t) { return t.defined() && t.requires_grad() && at::GradMode::is_enabled(); }

// Whether an [m, k] @ [k, n] product of a and b is one for oneDNN: float32 on the CPU, large
// enough, and oneDNN usable here.
bool Worth(const at::Tensor& a, const at::Tensor& b, int64_t m, int64_t k, int64_t n) {
  return a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
         m * k * n >= kMinMacs && OneDnn() != nullptr;
}

// Contiguous, or the transpose of a contiguous matrix: what oneDNN takes without a copy.
bool PlainOrTransposed(const at::Tensor& t) {
  if (t.stride(1) == 1 && t.stride(0) >= t.size(1)) return true;
  return t.stride(0) == 1 && t.stride(1) >= t.size(0);
}

bool OneDnnFits(const at::Tensor& a, const at::Tensor& b) {
  return a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0) && Worth(a, b, a.size(0), a.size(1), b.size(1)) &&
         !Recorded(a) && !Recorded(b) && PlainOrTransposed(a) && PlainOrTransposed(b);
}

at::Tensor OneDnnMm(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor r = at::empty({a.size(0), b.size(1)}, a.options());
  OneDnn()(a, b, r, 0.f, 1.f);
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
  return OneDnnFits(a, b) ? OneDnnMm(a, b) : at::mm(a, b);
}

at::Tensor Addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b) {
  return OneDnnFits(a, b) && !Recorded(bias) ? OneDnnMm(a, b).add_(bias) : at::addmm(bias, a, b);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
  const at::Tensor bias = b.has_value() ? *b : at::Tensor();
  // What at::linear would refuse or treat otherwise goes to it; the products themselves go
  // through Mm, which decides per product (layouts included).
  const bool plain = x.dim() >= 1 && w.dim() == 2 && x.size(-1) == w.size(1) && x.size(-1) > 0 &&
                     (!bias.defined() || (bias.dim() == 1 && bias.size(0) == w.size(0) && bias.scalar_type() == at::kFloat &&
                                          bias.device().is_cpu()));
  if (!plain || !Worth(x, w, x.numel() / x.size(-1), x.size(-1), w.size(0))) return at::linear(x, w, b);
  if (Recorded(x) || Recorded(w) || Recorded(bias)) {
    return bias.defined() ? LinearBiasBackward::apply(x, w, bias) : LinearBackward::apply(x, w);
  }
  return LinearForward(x, w, bias);
}

const char* GemmBackend() { return OneDnn() != nullptr ? "onednn" : "blas"; }

}  // namespace innerloop
