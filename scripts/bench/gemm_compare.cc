// The float32 matrix products of this package's models, timed with libtorch's at::mm (MKL's sgemm)
// and with oneDNN (at::native::mkldnn_matmul, what native/gemm.cc calls), in the same process, with
// the largest relative difference between the two results. Why native/gemm.cc routes products of
// at least 2^24 multiply-adds to oneDNN (BENCHMARKS.md, "oneDNN matrix products").
//
// Build and run:
//   TP=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
//   g++ -O2 -std=c++17 -w scripts/bench/gemm_compare.cc -o /tmp/gemm_compare -I$TP/include \
//     -I$TP/include/torch/csrc/api/include -L$TP/lib -ltorch_cpu -lc10 -Wl,-rpath,$TP/lib
//   /tmp/gemm_compare THREADS
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor&, const at::Tensor&, const at::Tensor&, float beta, float alpha);
}

template <class F>
double MsPerCall(F f, int n) {
  for (int i = 0; i < 2; i++) f();
  auto t = std::chrono::steady_clock::now();
  for (int i = 0; i < n; i++) f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count() / n;
}

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 1);
  struct Shape {
    int64_t m, k, n;
    bool ta, tb;  // operand stored transposed
    const char* what;
  } shapes[] = {
      {2048, 128, 384, false, true, "mid: attention input x W^T"},
      {2048, 384, 128, false, false, "mid: its input gradient dy W"},
      {128, 2048, 384, true, false, "mid: its weight gradient x^T dy"},
      {2048, 128, 512, false, true, "mid: MLP input"},
      {2048, 512, 128, false, true, "mid: MLP output"},
      {512, 2048, 128, true, false, "mid: MLP output weight gradient"},
      {512, 128, 256, false, true, "tiny: output layer"},
      {512, 64, 256, false, true, "tiny: MLP input"},
      {8, 64, 256, false, true, "micro: MLP input"},
      {2048, 768, 2304, false, true, "124M: attention input"},
      {333, 768, 50257, false, true, "124M: logit lens, 333 rows"},
      {2048, 768, 50257, false, true, "124M: output layer"},
      {2048, 50257, 768, false, false, "124M: output layer input gradient"},
  };
  std::printf("%-36s %5s %5s %6s  %10s %10s  %6s  %s\n", "product", "m", "k", "n", "at::mm", "oneDNN", "ratio", "max rel diff");
  for (const Shape& s : shapes) {
    at::Tensor a = s.ta ? at::randn({s.k, s.m}).t() : at::randn({s.m, s.k});
    at::Tensor b = s.tb ? at::randn({s.n, s.k}).t() : at::randn({s.k, s.n});
    const int n = std::max(1, static_cast<int>(2e9 / (2.0 * s.m * s.n * s.k)));
    const double mkl = MsPerCall([&] { at::mm(a, b); }, n);
    const double dnn = MsPerCall([&] {
      at::Tensor r = at::empty({s.m, s.n});
      at::native::mkldnn_matmul(a, b, r, 0.f, 1.f);
    }, n);
    at::Tensor r = at::empty({s.m, s.n});
    at::native::mkldnn_matmul(a, b, r, 0.f, 1.f);
    const at::Tensor ref = at::mm(a, b);
    const double diff = (r - ref).abs().max().item<double>() / ref.abs().max().item<double>();
    const double gflop = 2.0 * s.m * s.n * s.k / 1e6;
    std::printf("%-36s %5ld %5ld %6ld  %6.2f ms %6.2f ms  %5.2fx  %.1e   (%.0f / %.0f GFLOP/s)\n", s.what, (long)s.m, (long)s.k,
                (long)s.n, mkl, dnn, mkl / dnn, diff, gflop / mkl, gflop / dnn);
  }
}
