// GELU, tanh approximation: y = 0.5 x (1 + tanh(k (x + a x^3))), k = sqrt(2/pi), a = 0.044715,
// and exp, on raw buffers. Hand-written because the fused GPT-2 block is faster with this GELU than
// with at::gelu and its backward (see the notes at each function), and its small-size path
// (small_gpt2.cc) calls them on buffers, not tensors.
#include "vector_math.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <immintrin.h>

#include <cmath>

namespace innerloop {
namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kGeluCubic = 0.044715;

// d gelu_tanh(x)/dx from x and y = gelu_tanh(x) = 0.5 x (1 + t), t = tanh(k (x + a x^3)):
// with r = y / x = (1 + t) / 2, 1 - t^2 = 4 r (1 - r), so
//   dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 a x^2) = r + 2 x r (1 - r) k (1 + 3 a x^2),
// and r = 1/2 at x = 0. No transcendental function: the loop vectorizes.
template <typename T>
inline void GeluTanhBackwardLoop(const T* __restrict dy, const T* __restrict x, const T* __restrict y,
                                 T* __restrict dx, int64_t n) {
  const T k = static_cast<T>(kSqrt2OverPi);
  const T a3 = static_cast<T>(3 * kGeluCubic);
  for (int64_t i = 0; i < n; ++i) {
    const T xi = x[i];
    const bool zero = xi == T(0);
    const T r = zero ? T(0.5) : y[i] / (zero ? T(1) : xi);
    dx[i] = dy[i] * (r + T(2) * xi * r * (T(1) - r) * k * (T(1) + a3 * xi * xi));
  }
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void GeluTanhBackwardF32(const float* dy, const float* x, const float* y, float* dx, int64_t n) {
  GeluTanhBackwardLoop<float>(dy, x, y, dx, n);
}

void GeluTanhBackwardF64(const double* dy, const double* x, const double* y, double* dx, int64_t n) {
  GeluTanhBackwardLoop<double>(dy, x, y, dx, n);
}

// GELU (tanh approximation) forward as y = x * sigmoid(2u) = x / (1 + exp(-2u)), u = k (x + a x^3):
// the same function as 0.5 x (1 + tanh(u)), with one exponential instead of a tanh (about twice
// as fast), and accurate where 1 + tanh(u) cancels (large negative x). The vector exponential is
// SLEEF's, the one libtorch's own kernels use, looked up at run time so that a libtorch without it
// only costs speed.
using ExpF16 = __m512 (*)(__m512);
using ExpF8 = __m256 (*)(__m256);

template <typename T>
inline T GeluTanhScalar(T x) {
  const T z = x * (T(-2 * kSqrt2OverPi) + T(-2 * kSqrt2OverPi * kGeluCubic) * x * x);
  return x / (T(1) + std::exp(z));
}

__attribute__((target("avx512f"))) void GeluTanhF32Avx512(const float* x, float* y, int64_t n, ExpF16 exp16) {
  const __m512 c1 = _mm512_set1_ps(static_cast<float>(-2 * kSqrt2OverPi));
  const __m512 c3 = _mm512_set1_ps(static_cast<float>(-2 * kSqrt2OverPi * kGeluCubic));
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    const __m512 z = _mm512_mul_ps(xv, _mm512_fmadd_ps(c3, _mm512_mul_ps(xv, xv), c1));
    _mm512_storeu_ps(y + i, _mm512_div_ps(xv, _mm512_add_ps(one, exp16(z))));
  }
  for (; i < n; ++i) y[i] = GeluTanhScalar(x[i]);
}

__attribute__((target("avx2,fma"))) void GeluTanhF32Avx2(const float* x, float* y, int64_t n, ExpF8 exp8) {
  const __m256 c1 = _mm256_set1_ps(static_cast<float>(-2 * kSqrt2OverPi));
  const __m256 c3 = _mm256_set1_ps(static_cast<float>(-2 * kSqrt2OverPi * kGeluCubic));
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 z = _mm256_mul_ps(xv, _mm256_fmadd_ps(c3, _mm256_mul_ps(xv, xv), c1));
    _mm256_storeu_ps(y + i, _mm256_div_ps(xv, _mm256_add_ps(one, exp8(z))));
  }
  for (; i < n; ++i) y[i] = GeluTanhScalar(x[i]);
}

struct VectorExp {
  ExpF16 exp16 = nullptr;
  ExpF8 exp8 = nullptr;
};

const VectorExp& Sleef() {
  static const VectorExp v = [] {
    VectorExp e;
    if (__builtin_cpu_supports("avx512f")) e.exp16 = reinterpret_cast<ExpF16>(dlsym(RTLD_DEFAULT, "Sleef_expf16_u10avx512f"));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      e.exp8 = reinterpret_cast<ExpF8>(dlsym(RTLD_DEFAULT, "Sleef_expf8_u10avx2"));
    }
    return e;
  }();
  return v;
}

}  // namespace

void GeluTanhRaw(const float* x, float* y, int64_t n) {
  const VectorExp& e = Sleef();
  if (e.exp16 != nullptr) GeluTanhF32Avx512(x, y, n, e.exp16);
  else if (e.exp8 != nullptr) GeluTanhF32Avx2(x, y, n, e.exp8);
  else for (int64_t i = 0; i < n; ++i) y[i] = GeluTanhScalar(x[i]);
}

void GeluTanhRaw(const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = GeluTanhScalar(x[i]);
}

void GeluTanhBackwardRaw(const float* dy, const float* x, const float* y, float* dx, int64_t n) {
  GeluTanhBackwardF32(dy, x, y, dx, n);
}

void GeluTanhBackwardRaw(const double* dy, const double* x, const double* y, double* dx, int64_t n) {
  GeluTanhBackwardF64(dy, x, y, dx, n);
}

namespace {

__attribute__((target("avx512f"))) void ExpF32Avx512(float* x, int64_t n, ExpF16 exp16) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

__attribute__((target("avx2,fma"))) void ExpF32Avx2(float* x, int64_t n, ExpF8 exp8) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = std::exp(x[i]);
}

}  // namespace

void ExpInPlace(float* x, int64_t n) {
  const VectorExp& e = Sleef();
  if (e.exp16 != nullptr) ExpF32Avx512(x, n, e.exp16);
  else if (e.exp8 != nullptr) ExpF32Avx2(x, n, e.exp8);
  else for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

void ExpInPlace(double* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

// gelu(x, approximate='tanh'); float32 through the vector path where the CPU and libtorch have it.
at::Tensor GeluTanh(const at::Tensor& x) {
  const VectorExp& e = Sleef();
  if (x.scalar_type() != at::kFloat || !x.is_contiguous() || (e.exp16 == nullptr && e.exp8 == nullptr)) {
    return at::gelu(x, "tanh");
  }
  at::Tensor y = at::empty_like(x);
  const float* px = x.data_ptr<float>();
  float* py = y.data_ptr<float>();
  at::parallel_for(0, x.numel(), 32768, [&](int64_t b, int64_t end) { GeluTanhRaw(px + b, py + b, end - b); });
  return y;
}

at::Tensor GeluTanhBackward(const at::Tensor& dy_, const at::Tensor& x, const at::Tensor& y) {
  at::Tensor dy = dy_.contiguous();
  at::Tensor dx = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "GeluTanhBackward", [&] {
    const scalar_t *pdy = dy.data_ptr<scalar_t>(), *px = x.data_ptr<scalar_t>(), *py = y.data_ptr<scalar_t>();
    scalar_t* pdx = dx.data_ptr<scalar_t>();
    at::parallel_for(0, x.numel(), 32768, [&](int64_t b, int64_t e) { GeluTanhBackwardRaw(pdy + b, px + b, py + b, pdx + b, e - b); });
  });
  return dx;
}

}  // namespace innerloop
