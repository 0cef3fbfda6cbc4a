// Matrix products for float32 on the CPU through oneDNN where it is faster than the BLAS that
// at::mm calls (gemm.cc says when and why), with at::mm as the fallback everywhere else.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace innerloop {

// a [m, k] @ b [k, n]; a and b may be transposed views.
at::Tensor Mm(const at::Tensor& a, const at::Tensor& b);
// bias [n] + a [m, k] @ b [k, n].
at::Tensor Addmm(const at::Tensor& bias, const at::Tensor& a, const at::Tensor& b);
// x [..., k] @ w [n, k]^T (+ b [n]), differentiable (its own autograd node when it uses oneDNN).
at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b);

// Which library products go to: "onednn" where it applies, or "blas" (INNERLOOP_GEMM=blas, or a
// CPU without the instructions oneDNN's float32 path needs).
const char* GemmBackend();

}  // namespace innerloop
