// Elementwise functions the fused GPT-2 block needs on raw CPU buffers, vectorized with SLEEF's
// exponential (the one libtorch's own kernels use): GELU with the tanh approximation, forward and
// backward, and exp. Shared by the fused block (fused.cc) and its small-size path (small_gpt2.cc).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace innerloop {

// y[i] = gelu_tanh(x[i]) on the calling thread; float32 through a vector exponential where the CPU
// and libtorch have one.
void GeluTanhRaw(const float* x, float* y, int64_t n);
void GeluTanhRaw(const double* x, double* y, int64_t n);
// dx[i] = dy[i] * gelu_tanh'(x[i]), from the saved input x and output y, on the calling thread.
void GeluTanhBackwardRaw(const float* dy, const float* x, const float* y, float* dx, int64_t n);
void GeluTanhBackwardRaw(const double* dy, const double* x, const double* y, double* dx, int64_t n);

// x[i] = exp(x[i]) on the calling thread.
void ExpInPlace(float* x, int64_t n);
void ExpInPlace(double* x, int64_t n);

// GELU on tensors (x, y contiguous CPU float32/float64), split over libtorch's threads.
at::Tensor GeluTanh(const at::Tensor& x);
at::Tensor GeluTanhBackward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& y);

}  // namespace innerloop
