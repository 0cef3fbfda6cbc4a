// Why: at the sizes of the `micro` benchmark (2 x 64, T 8, batch 1) a GPT-2 block's arithmetic is
// a few microseconds, but the fused block on libtorch's kernels (fused.cc) took about 46 us
// forward and 100 us backward, nearly all of it in its 40-odd kernel calls: the dispatcher, tensor
// allocation, views, and kernels that prepare for sizes this block never has. Here the block, and
// the head with its loss, run as plain loops over one buffer, with the matrix products in a small
// AVX-512 kernel of this file (or the BLAS, MKL's sgemm_/dgemm_ in libtorch's builds, found by its
// symbol) and nothing else from libtorch. It is the same arithmetic as the libtorch path in
// another order: results agree to rounding (test/small-paths.test.ts and test/fused.test.ts check
// both against the block composed of ordinary ops).
//
// Where it applies (SmallBlockFits, SmallHeadFits): float32/float64, up to kSmallWork and
// kSmallHeadWork. Above that libtorch's kernels (flash attention's blocking, its vectorized layer
// norm, MKL over many rows) win; the limits come from timing the block's forward and backward
// both ways (BENCHMARKS.md, "Small path"; scripts/bench/small-path.mjs). INNERLOOP_SMALL_PATH=0 turns it off,
// =all takes it at every size, to compare.
#include "small_gpt2.h"

#include <dlfcn.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "vector_math.h"

namespace innerloop {
namespace {

// Rows x width x width (B·T·C·C) up to which the small path runs the block: `micro` is 2^15,
// `tiny` 2^21, `mid` 2^25. And rows x width x vocabulary (B·T·C·V) up to which it runs the head:
// `micro` is 2^17, `tiny` 2^23.
constexpr int64_t kSmallWork = int64_t{1} << 18;
constexpr int64_t kSmallHeadWork = int64_t{1} << 22;
// The most attention probabilities (B·H·T·T) the block keeps for its backward: 4 MiB of float32.
constexpr int64_t kMaxAttentionProbs = int64_t{1} << 20;

// The Fortran BLAS interface with 32-bit integers (LP64), as MKL and OpenBLAS export it.
template <typename T>
using GemmFn = void (*)(const char*, const char*, const int*, const int*, const int*, const T*, const T*, const int*,
                        const T*, const int*, const T*, T*, const int*);

struct Blas {
  GemmFn<float> s = nullptr;
  GemmFn<double> d = nullptr;
  // INNERLOOP_SMALL_PATH=all: every size takes the path (to time it where it is not the default).
  bool everySize = false;
};

// The BLAS, null where none is found or INNERLOOP_SMALL_PATH=0 turns the path off.
const Blas& FindBlas() {
  static const Blas b = [] {
    Blas r;
    const char* env = std::getenv("INNERLOOP_SMALL_PATH");
    if (env != nullptr && std::strcmp(env, "0") == 0) return r;
    r.everySize = env != nullptr && std::strcmp(env, "all") == 0;
    r.s = reinterpret_cast<GemmFn<float>>(dlsym(RTLD_DEFAULT, "sgemm_"));
    r.d = reinterpret_cast<GemmFn<double>>(dlsym(RTLD_DEFAULT, "dgemm_"));
    return r;
  }();
  return b;
}

GemmFn<float> BlasGemm(float*) { return FindBlas().s; }
GemmFn<double> BlasGemm(double*) { return FindBlas().d; }

// C[M, N] = op(A) @ B + beta C for float32 on AVX-512, row-major, op(A) = A [M, K] or (TA) the
// transpose of A stored [K, M]: blocks of 4 rows x 64 columns of C held in 16 registers, each k
// adding a broadcast element of A times a row of B. Without MKL's packing of B and its dispatch,
// it ran the block's [8, 64] @ [64, 192]-sized products at 97-102 GFLOP/s where sgemm_ ran at
// 59-66 (one core of the AMD EPYC in BENCHMARKS.md). Products with B transposed stay with the BLAS:
// a row of B^T is a strided column of B, and transposing B costs what packing does.
template <bool TA>
__attribute__((target("avx512f"))) void GemmF32Avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  auto a = [&](int64_t i, int64_t k) { return TA ? A[k * lda + i] : A[i * lda + k]; };
  for (int64_t j0 = 0; j0 < N; j0 += 64) {
    const int64_t nj = std::min<int64_t>(64, N - j0);
    __mmask16 mk[4];
    for (int v = 0; v < 4; ++v) {
      const int64_t rem = nj - 16 * v;
      mk[v] = rem >= 16 ? __mmask16(0xFFFF) : rem <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << rem) - 1);
    }
#define load(p, v) _mm512_maskz_loadu_ps(mk[v], (p) + 16 * (v))
    int64_t i0 = 0;
    for (; i0 + 4 <= M; i0 += 4) {
      __m512 acc[4][4];
      for (int r = 0; r < 4; ++r) {
        for (int v = 0; v < 4; ++v) {
          acc[r][v] = beta != 0 ? _mm512_mul_ps(_mm512_set1_ps(beta), load(C + (i0 + r) * ldc + j0, v)) : _mm512_setzero_ps();
        }
      }
      for (int64_t k = 0; k < K; ++k) {
        const float* b = B + k * ldb + j0;
        const __m512 b0 = load(b, 0), b1 = load(b, 1), b2 = load(b, 2), b3 = load(b, 3);
        for (int r = 0; r < 4; ++r) {
          const __m512 ar = _mm512_set1_ps(a(i0 + r, k));
          acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
          acc[r][2] = _mm512_fmadd_ps(ar, b2, acc[r][2]);
          acc[r][3] = _mm512_fmadd_ps(ar, b3, acc[r][3]);
        }
      }
      for (int r = 0; r < 4; ++r) {
        for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(C + (i0 + r) * ldc + j0 + 16 * v, mk[v], acc[r][v]);
      }
    }
    for (; i0 < M; ++i0) {
      __m512 acc[4];
      for (int v = 0; v < 4; ++v) {
        acc[v] = beta != 0 ? _mm512_mul_ps(_mm512_set1_ps(beta), load(C + i0 * ldc + j0, v)) : _mm512_setzero_ps();
      }
      for (int64_t k = 0; k < K; ++k) {
        const __m512 ar = _mm512_set1_ps(a(i0, k));
        for (int v = 0; v < 4; ++v) acc[v] = _mm512_fmadd_ps(ar, load(B + k * ldb + j0, v), acc[v]);
      }
      for (int v = 0; v < 4; ++v) _mm512_mask_storeu_ps(C + i0 * ldc + j0 + 16 * v, mk[v], acc[v]);
    }
#undef load
  }
}

bool HasAvx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

// Row-major C[M, N] = op(A) @ op(B) + beta C, op(A) [M, K] and op(B) [K, N]; A is stored [M, K]
// (or [K, M] when ta) with row stride lda, B [K, N] (or [N, K] when tb) with row stride ldb. The
// BLAS is column-major: a row-major matrix is its transpose, so it computes C^T = op(B)^T op(A)^T.
template <typename T>
void Gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
          T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    if (!tb && HasAvx512()) {
      if (ta) GemmF32Avx512<true>(M, N, K, A, lda, B, ldb, beta, C, ldc);
      else GemmF32Avx512<false>(M, N, K, A, lda, B, ldb, beta, C, ldc);
      return;
    }
  }
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
  const T one = 1;
  const char opa = tb ? 'T' : 'N', opb = ta ? 'T' : 'N';
  BlasGemm(static_cast<T*>(nullptr))(&opa, &opb, &m, &n, &k, &one, B, &la, A, &lb, &beta, C, &lc);
}

// Sum of term(i) for i in [0, n) in kLanes independent partial sums, so that the compiler
// vectorizes it without reassociating a single sum (which it may not do without -ffast-math).
template <typename T, typename F>
__attribute__((always_inline)) inline T LaneSum(int64_t n, F term) {
  constexpr int kLanes = 64 / sizeof(T);
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  }
  T s = 0;
  for (; i < n; ++i) s += term(i);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

// LayerNorm of N rows of width C: y = (x - mean) rstd w + b, keeping mean and rstd per row.
template <typename T>
__attribute__((always_inline)) inline void LayerNormRowsT(const T* __restrict x, const T* __restrict w,
                                                          const T* __restrict b, T* __restrict y, T* __restrict mean,
                                                          T* __restrict rstd, int64_t N, int64_t C, T eps) {
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * C;
    T* yr = y + i * C;
    const T m = LaneSum<T>(C, [&](int64_t c) { return xr[c]; }) / static_cast<T>(C);
    const T var = LaneSum<T>(C, [&](int64_t c) { return (xr[c] - m) * (xr[c] - m); }) / static_cast<T>(C);
    const T r = T(1) / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - m) * r * w[c] + b[c];
    mean[i] = m;
    rstd[i] = r;
  }
}

// LayerNorm's backward for upstream dy: dx = rstd (w dy - mean(w dy) - xhat mean(w dy xhat)) + add
// (the residual stream's gradient; none where add is null; dx not computed where it is null), and
// dw += dy xhat, db += dy where they are not null.
template <typename T>
__attribute__((always_inline)) inline void LayerNormBackwardRowsT(const T* __restrict dy, const T* __restrict x,
                                                                  const T* __restrict mean, const T* __restrict rstd,
                                                                  const T* __restrict w, const T* __restrict add,
                                                                  T* __restrict dx, T* __restrict dw, T* __restrict db,
                                                                  int64_t N, int64_t C) {
  const T invC = T(1) / static_cast<T>(C);
  for (int64_t i = 0; i < N; ++i) {
    const T *dyr = dy + i * C, *xr = x + i * C;
    const T m = mean[i], r = rstd[i];
    if (dx != nullptr) {
      T* dxr = dx + i * C;
      const T c1 = LaneSum<T>(C, [&](int64_t c) { return w[c] * dyr[c] * (xr[c] - m) * r; }) * invC;
      const T c2 = LaneSum<T>(C, [&](int64_t c) { return w[c] * dyr[c]; }) * invC;
      for (int64_t c = 0; c < C; ++c) dxr[c] = r * (w[c] * dyr[c] - c2 - (xr[c] - m) * r * c1);
      if (add != nullptr) {
        const T* ar = add + i * C;
        for (int64_t c = 0; c < C; ++c) dxr[c] += ar[c];
      }
    }
    if (dw != nullptr) {
      for (int64_t c = 0; c < C; ++c) dw[c] += dyr[c] * (xr[c] - m) * r;
    }
    if (db != nullptr) {
      for (int64_t c = 0; c < C; ++c) db[c] += dyr[c];
    }
  }
}

// out[j] = sum over the N rows of d[i, j] (a bias's gradient).
template <typename T>
__attribute__((always_inline)) inline void ColumnSumsT(const T* __restrict d, int64_t N, int64_t n, T* __restrict out) {
  std::fill(out, out + n, T(0));
  for (int64_t i = 0; i < N; ++i) {
    const T* dr = d + i * n;
    for (int64_t j = 0; j < n; ++j) out[j] += dr[j];
  }
}

// Each of the N rows of y (width n) set to base's row plus bias (base null: the bias alone): the
// starting value of a product accumulated onto it.
template <typename T>
__attribute__((always_inline)) inline void RowsPlusBiasT(const T* __restrict base, const T* __restrict bias,
                                                         T* __restrict y, int64_t N, int64_t n) {
  for (int64_t i = 0; i < N; ++i) {
    T* yr = y + i * n;
    if (base == nullptr) {
      for (int64_t j = 0; j < n; ++j) yr[j] = bias[j];
    } else {
      const T* br = base + i * n;
      for (int64_t j = 0; j < n; ++j) yr[j] = br[j] + bias[j];
    }
  }
}

// The shapes the attention loops need: B windows of T tokens, H heads of width D, C = H·D;
// q, k, v of token t in head h are at qkv[t, {0, C, 2C} + h·D] (c_attn's output layout).
struct AttnShape {
  int64_t B, T, H, D, C;
};

// Causal softmax attention, for each window and head: P = softmax(scale q k^T) over keys s <= t,
// y = P v. P is kept ([B, H, T, T], zero above the diagonal) for the backward pass. kt is scratch
// for one head's keys, transposed to [D, T] so that a query's scores are a vectorized loop over
// keys.
template <typename T>
__attribute__((always_inline)) inline void AttentionT(const T* __restrict qkv, T* __restrict y, T* __restrict P,
                                                      T* __restrict kt, const AttnShape& s, T scale) {
  const int64_t Tn = s.T, D = s.D, C = s.C, row = 3 * C;
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t h = 0; h < s.H; ++h) {
      const T* base = qkv + b * Tn * row + h * D;
      for (int64_t j = 0; j < Tn; ++j) {
        for (int64_t d = 0; d < D; ++d) kt[d * Tn + j] = base[j * row + C + d];
      }
      T* Ph = P + (b * s.H + h) * Tn * Tn;
      for (int64_t t = 0; t < Tn; ++t) {
        const T* q = base + t * row;
        T* p = Ph + t * Tn;
        const int64_t n = t + 1;
        std::fill(p, p + Tn, T(0));
        for (int64_t d = 0; d < D; ++d) {
          const T qd = q[d] * scale;
          const T* kd = kt + d * Tn;
          for (int64_t j = 0; j < n; ++j) p[j] += qd * kd[j];
        }
        T mx = p[0];
        for (int64_t j = 1; j < n; ++j) mx = std::max(mx, p[j]);
        for (int64_t j = 0; j < n; ++j) p[j] -= mx;
        ExpInPlace(p, n);
        const T inv = T(1) / LaneSum<T>(n, [&](int64_t j) { return p[j]; });
        for (int64_t j = 0; j < n; ++j) p[j] *= inv;
        T* yr = y + (b * Tn + t) * C + h * D;
        std::fill(yr, yr + D, T(0));
        for (int64_t j = 0; j < n; ++j) {
          const T pj = p[j];
          const T* v = base + j * row + 2 * C;
          for (int64_t d = 0; d < D; ++d) yr[d] += pj * v[d];
        }
      }
    }
  }
}

// The backward pass of AttentionT for upstream dy [B·T, C]: with dP = dy v^T and
// dS = P (dP - rowsum(P dP)), dq = scale dS k, dk = scale dS^T q, dv = P^T dy, written into dqkv in
// qkv's layout. vt and dp are scratch ([D, T] and [T]).
template <typename T>
__attribute__((always_inline)) inline void AttentionBackwardT(const T* __restrict qkv, const T* __restrict P,
                                                              const T* __restrict dy, T* __restrict dqkv,
                                                              T* __restrict vt, T* __restrict dp, const AttnShape& s,
                                                              T scale) {
  const int64_t Tn = s.T, D = s.D, C = s.C, row = 3 * C;
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t h = 0; h < s.H; ++h) {
      const T* base = qkv + b * Tn * row + h * D;
      T* dbase = dqkv + b * Tn * row + h * D;
      for (int64_t j = 0; j < Tn; ++j) {
        for (int64_t d = 0; d < D; ++d) vt[d * Tn + j] = base[j * row + 2 * C + d];
        std::fill(dbase + j * row + C, dbase + j * row + C + D, T(0));
        std::fill(dbase + j * row + 2 * C, dbase + j * row + 2 * C + D, T(0));
      }
      const T* Ph = P + (b * s.H + h) * Tn * Tn;
      for (int64_t t = 0; t < Tn; ++t) {
        const T* p = Ph + t * Tn;
        const T* g = dy + (b * Tn + t) * C + h * D;
        const int64_t n = t + 1;
        std::fill(dp, dp + n, T(0));
        for (int64_t d = 0; d < D; ++d) {
          const T gd = g[d];
          const T* vd = vt + d * Tn;
          for (int64_t j = 0; j < n; ++j) dp[j] += gd * vd[j];
        }
        const T rowDot = LaneSum<T>(n, [&](int64_t j) { return p[j] * dp[j]; });
        for (int64_t j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - rowDot) * scale;  // dS, scaled
        const T* q = base + t * row;
        T* dq = dbase + t * row;
        std::fill(dq, dq + D, T(0));
        for (int64_t j = 0; j < n; ++j) {
          const T ds = dp[j], pj = p[j];
          const T* k = base + j * row + C;
          T* dk = dbase + j * row + C;
          T* dv = dbase + j * row + 2 * C;
          for (int64_t d = 0; d < D; ++d) {
            dq[d] += ds * k[d];
            dk[d] += ds * q[d];
            dv[d] += pj * g[d];
          }
        }
      }
    }
  }
}

// Per row of x [N, V]: lse = log(sum(exp(x))), through scratch [V].
template <typename T>
__attribute__((always_inline)) inline void LogSumExpRowsT(const T* __restrict x, T* __restrict lse,
                                                          T* __restrict scratch, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * V;
    T mx = xr[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, xr[v]);
    for (int64_t v = 0; v < V; ++v) scratch[v] = xr[v] - mx;
    ExpInPlace(scratch, V);
    lse[i] = mx + std::log(LaneSum<T>(V, [&](int64_t v) { return scratch[v]; }));
  }
}

// The gradient of the logits [N, V]: scale (softmax(x) - onehot(target)) for each row whose target is
// not ignoreIndex (from the saved lse), plus extra (the logits' own upstream gradient) where not null.
template <typename T>
__attribute__((always_inline)) inline void CrossEntropyBackwardRowsT(const T* __restrict x, const T* __restrict lse,
                                                                     const int64_t* __restrict target,
                                                                     int64_t ignoreIndex, T scale,
                                                                     const T* __restrict extra, T* __restrict dx,
                                                                     int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i) {
    const T* xr = x + i * V;
    T* dr = dx + i * V;
    const bool counted = target[i] != ignoreIndex && scale != T(0);
    if (counted) {
      const T l = lse[i];
      for (int64_t v = 0; v < V; ++v) dr[v] = xr[v] - l;
      ExpInPlace(dr, V);
      for (int64_t v = 0; v < V; ++v) dr[v] *= scale;
      dr[target[i]] -= scale;
    } else {
      std::fill(dr, dr + V, T(0));
    }
    if (extra != nullptr) {
      const T* er = extra + i * V;
      for (int64_t v = 0; v < V; ++v) dr[v] += er[v];
    }
  }
}

// The loops above compiled for AVX-512, AVX2 and the baseline, chosen once by the CPU (GCC's
// function multi-versioning); the always_inline bodies are compiled into each version.
#define SMALL_BLOCK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

#define SMALL_BLOCK_KERNELS(T)                                                                                      \
  SMALL_BLOCK_CLONES void LayerNormRows(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t N,      \
                                        int64_t C, T eps) {                                                         \
    LayerNormRowsT<T>(x, w, b, y, mean, rstd, N, C, eps);                                                           \
  }                                                                                                                 \
  SMALL_BLOCK_CLONES void LayerNormBackwardRows(const T* dy, const T* x, const T* mean, const T* rstd, const T* w,  \
                                                const T* add, T* dx, T* dw, T* db, int64_t N, int64_t C) {          \
    LayerNormBackwardRowsT<T>(dy, x, mean, rstd, w, add, dx, dw, db, N, C);                                         \
  }                                                                                                                 \
  SMALL_BLOCK_CLONES void ColumnSums(const T* d, int64_t N, int64_t n, T* out) { ColumnSumsT<T>(d, N, n, out); }   \
  SMALL_BLOCK_CLONES void RowsPlusBias(const T* base, const T* bias, T* y, int64_t N, int64_t n) {                 \
    RowsPlusBiasT<T>(base, bias, y, N, n);                                                                          \
  }                                                                                                                 \
  SMALL_BLOCK_CLONES void Attention(const T* qkv, T* y, T* P, T* kt, const AttnShape& s, T scale) {               \
    AttentionT<T>(qkv, y, P, kt, s, scale);                                                                         \
  }                                                                                                                 \
  SMALL_BLOCK_CLONES void AttentionBackward(const T* qkv, const T* P, const T* dy, T* dqkv, T* vt, T* dp,         \
                                            const AttnShape& s, T scale) {                                          \
    AttentionBackwardT<T>(qkv, P, dy, dqkv, vt, dp, s, scale);                                                      \
  }                                                                                                                 \
  SMALL_BLOCK_CLONES void LogSumExpRows(const T* x, T* lse, T* scratch, int64_t N, int64_t V) {                     \
    LogSumExpRowsT<T>(x, lse, scratch, N, V);                                                                       \
  }                                                                                                                 \
  SMALL_BLOCK_CLONES void CrossEntropyBackwardRows(const T* x, const T* lse, const int64_t* target,                 \
                                                   int64_t ignoreIndex, T scale, const T* extra, T* dx, int64_t N,  \
                                                   int64_t V) {                                                     \
    CrossEntropyBackwardRowsT<T>(x, lse, target, ignoreIndex, scale, extra, dx, N, V);                              \
  }

SMALL_BLOCK_KERNELS(float)
SMALL_BLOCK_KERNELS(double)
#undef SMALL_BLOCK_KERNELS
#undef SMALL_BLOCK_CLONES

// Where each intermediate lives in the saved buffer, for N = B·T rows of width C.
struct Layout {
  int64_t a, mean1, rstd1, qkv, P, y, h1, a2, mean2, rstd2, f, g, total;
  Layout(int64_t B, int64_t T, int64_t C, int64_t H) {
    const int64_t N = B * T;
    int64_t at = 0;
    auto take = [&](int64_t n) {
      const int64_t o = at;
      at += n;
      return o;
    };
    a = take(N * C), mean1 = take(N), rstd1 = take(N), qkv = take(N * 3 * C), P = take(B * H * T * T);
    y = take(N * C), h1 = take(N * C), a2 = take(N * C), mean2 = take(N), rstd2 = take(N);
    f = take(N * 4 * C), g = take(N * 4 * C);
    total = at;
  }
};

template <typename T>
const T* Ptr(const at::Tensor& t) {
  return t.const_data_ptr<T>();
}

template <typename T>
std::vector<at::Tensor> ForwardT(const std::vector<at::Tensor>& in, int64_t nHead, double eps, int64_t probeRows,
                                 at::Tensor& saved) {
  const at::Tensor h = in[kH].contiguous();
  const int64_t B = h.size(0), Tn = h.size(1), C = h.size(2), H = nHead, D = C / H, N = B * Tn;
  const Layout L(B, Tn, C, H);
  saved = at::empty({L.total + D * Tn}, h.options());  // + the attention's transposed keys (scratch)
  at::Tensor out = at::empty_like(h);
  T* w = saved.mutable_data_ptr<T>();
  T* o = out.mutable_data_ptr<T>();
  const T* x = Ptr<T>(h);
  const T e = static_cast<T>(eps);
  LayerNormRows(x, Ptr<T>(in[kLn1W]), Ptr<T>(in[kLn1B]), w + L.a, w + L.mean1, w + L.rstd1, N, C, e);
  RowsPlusBias(static_cast<const T*>(nullptr), Ptr<T>(in[kAttnB]), w + L.qkv, N, 3 * C);
  Gemm<T>(false, false, N, 3 * C, C, w + L.a, C, Ptr<T>(in[kAttnW]), 3 * C, 1, w + L.qkv, 3 * C);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  Attention(w + L.qkv, w + L.y, w + L.P, w + L.total, AttnShape{B, Tn, H, D, C}, scale);
  RowsPlusBias(x, Ptr<T>(in[kProjB]), w + L.h1, N, C);
  Gemm<T>(false, false, N, C, C, w + L.y, C, Ptr<T>(in[kProjW]), C, 1, w + L.h1, C);
  LayerNormRows(w + L.h1, Ptr<T>(in[kLn2W]), Ptr<T>(in[kLn2B]), w + L.a2, w + L.mean2, w + L.rstd2, N, C, e);
  RowsPlusBias(static_cast<const T*>(nullptr), Ptr<T>(in[kFcB]), w + L.f, N, 4 * C);
  Gemm<T>(false, false, N, 4 * C, C, w + L.a2, C, Ptr<T>(in[kFcW]), 4 * C, 1, w + L.f, 4 * C);
  GeluTanhRaw(w + L.f, w + L.g, N * 4 * C);
  RowsPlusBias(w + L.h1, Ptr<T>(in[kMlpB]), o, N, C);
  Gemm<T>(false, false, N, C, 4 * C, w + L.g, 4 * C, Ptr<T>(in[kMlpW]), C, 1, o, C);
  if (probeRows == 0) return {out};
  // The probe rows' attention and MLP outputs (the block adds them to the stream without keeping
  // them), and each query's attention on the first key, column 0 of P.
  const int64_t r = probeRows, p0 = (B - r) * Tn, np = r * Tn;
  at::Tensor attnOut = at::empty({r, Tn, C}, h.options()), mlpOut = at::empty({r, Tn, C}, h.options());
  at::Tensor firstKey = at::empty({r, H, Tn}, h.options());
  T *ao = attnOut.mutable_data_ptr<T>(), *mo = mlpOut.mutable_data_ptr<T>(), *fk = firstKey.mutable_data_ptr<T>();
  RowsPlusBias(static_cast<const T*>(nullptr), Ptr<T>(in[kProjB]), ao, np, C);
  Gemm<T>(false, false, np, C, C, w + L.y + p0 * C, C, Ptr<T>(in[kProjW]), C, 1, ao, C);
  RowsPlusBias(static_cast<const T*>(nullptr), Ptr<T>(in[kMlpB]), mo, np, C);
  Gemm<T>(false, false, np, C, 4 * C, w + L.g + p0 * 4 * C, 4 * C, Ptr<T>(in[kMlpW]), C, 1, mo, C);
  for (int64_t i = 0; i < r * H * Tn; ++i) fk[i] = w[L.P + ((B - r) * H * Tn + i) * Tn];
  return {out, attnOut, mlpOut, firstKey};
}

// sqrt of the sum of squares of x[0, n), accumulated in double.
template <typename T>
T Norm(const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return static_cast<T>(std::sqrt(s));
}

template <typename T>
void BackwardT(const std::vector<at::Tensor>& in, const at::Tensor& saved, const at::Tensor& gradOut, int64_t nHead,
               const std::array<bool, kBlockInputs>& need, const ProbeSinks& sinks, std::vector<at::Tensor>& gin) {
  const at::Tensor& h = in[kH];
  const int64_t B = h.size(0), Tn = h.size(1), C = h.size(2), H = nHead, D = C / H, N = B * Tn;
  // Rows [0, nt) train; with probe rows, [nt, N) are the probe's, whose weight gradients are only
  // measured (their norms), and each product over rows runs for the training rows alone, as
  // without the probe.
  const int64_t nt = (B - sinks.rows) * Tn, np = N - nt;
  const Layout L(B, Tn, C, H);
  const at::Tensor d0 = gradOut.contiguous();
  const T* d = Ptr<T>(d0);
  const T* w = Ptr<T>(saved);
  const at::Tensor hc = h.contiguous();
  // Scratch: dg, df [N, 4C]; da2, dh1, dy, da [N, C]; dqkv [N, 3C]; the attention's [D, T] and [T];
  // with a probe, its weight gradients [4C, C] and bias gradients [4C].
  const int64_t probeScratch = np > 0 ? 4 * C * C + 4 * C : 0;
  at::Tensor scratch = at::empty({N * 15 * C + D * Tn + Tn + probeScratch}, h.options());
  T* s = scratch.mutable_data_ptr<T>();
  T *dg = s, *df = dg + N * 4 * C, *da2 = df + N * 4 * C, *dh1 = da2 + N * C, *dy = dh1 + N * C, *da = dy + N * C,
    *dqkv = da + N * C, *vt = dqkv + N * 3 * C, *dp = vt + D * Tn, *pw = dp + Tn, *pb = pw + 4 * C * C;
  std::array<T, kBlockInputs> probeNorms{};
  auto grad = [&](int i) -> T* {
    if (!need[i] || nt == 0) return nullptr;
    gin[i] = at::empty_like(in[i]);
    return gin[i].template mutable_data_ptr<T>();
  };
  // x [N, in] @ W [in, out] + b with upstream g [N, out]: dW = x^T g, db = column sums of g (training
  // rows), dx = g W^T (into dx, every row).
  auto affine = [&](const T* g, const T* x, int iw, int ib, int64_t nIn, int64_t nOut, T* dx) {
    if (T* dW = grad(iw)) Gemm<T>(true, false, nIn, nOut, nt, x, nIn, g, nOut, 0, dW, nOut);
    if (T* db = grad(ib)) ColumnSums(g, nt, nOut, db);
    if (nt > 0) Gemm<T>(false, true, nt, nIn, nOut, g, nOut, Ptr<T>(in[iw]), nOut, 0, dx, nIn);
    if (np == 0) return;
    const T *gp = g + nt * nOut, *xp = x + nt * nIn;
    Gemm<T>(true, false, nIn, nOut, np, xp, nIn, gp, nOut, 0, pw, nOut);
    ColumnSums(gp, np, nOut, pb);
    probeNorms[iw] = Norm(pw, nIn * nOut);
    probeNorms[ib] = Norm(pb, nOut);
    Gemm<T>(false, true, np, nIn, nOut, gp, nOut, Ptr<T>(in[iw]), nOut, 0, dx + nt * nIn, nIn);
  };
  auto layerNorm = [&](const T* dyIn, const T* x, int64_t mean, int64_t rstd, int iw, int ib, const T* add, T* dx) {
    T* dw = grad(iw);
    T* db = grad(ib);
    if (dw != nullptr) std::fill(dw, dw + C, T(0));
    if (db != nullptr) std::fill(db, db + C, T(0));
    const T* lw = Ptr<T>(in[iw]);
    LayerNormBackwardRows(dyIn, x, w + mean, w + rstd, lw, add, dx, dw, db, nt, C);
    if (np == 0) return;
    std::fill(pw, pw + 2 * C, T(0));
    LayerNormBackwardRows(dyIn + nt * C, x + nt * C, w + mean + nt, w + rstd + nt, lw,
                          add == nullptr ? nullptr : add + nt * C, dx == nullptr ? nullptr : dx + nt * C, pw, pw + C,
                          np, C);
    probeNorms[iw] = Norm(pw, C);
    probeNorms[ib] = Norm(pw + C, C);
  };
  // MLP: out = h1 + g Wmlp + bmlp, g = gelu(f), f = a2 Wfc + bfc.
  affine(d, w + L.g, kMlpW, kMlpB, 4 * C, C, dg);
  GeluTanhBackwardRaw(dg, w + L.f, w + L.g, df, N * 4 * C);
  affine(df, w + L.a2, kFcW, kFcB, C, 4 * C, da2);
  layerNorm(da2, w + L.h1, L.mean2, L.rstd2, kLn2W, kLn2B, d, dh1);
  // Attention: h1 = h + y Wproj + bproj, y = attention(a Wattn + battn).
  affine(dh1, w + L.y, kProjW, kProjB, C, C, dy);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  AttentionBackward(w + L.qkv, w + L.P, dy, dqkv, vt, dp, AttnShape{B, Tn, H, D, C}, scale);
  affine(dqkv, w + L.a, kAttnW, kAttnB, C, 3 * C, da);
  // The probe's sinks need dh even where h needs no gradient.
  const bool wantDh = need[kH] || (np > 0 && sinks.gradIn.defined());
  at::Tensor dh = wantDh ? at::empty_like(hc) : at::Tensor();
  layerNorm(da, Ptr<T>(hc), L.mean1, L.rstd1, kLn1W, kLn1B, dh1, wantDh ? dh.mutable_data_ptr<T>() : nullptr);
  if (need[kH]) gin[kH] = dh;
  if (np == 0) return;
  sinks.gradOut.copy_(d0.narrow(0, B - sinks.rows, sinks.rows));
  if (sinks.gradIn.defined()) sinks.gradIn.copy_(dh.narrow(0, B - sinks.rows, sinks.rows));
  at::Tensor norms = at::empty({kBlockInputs - 1}, h.options());
  std::copy(probeNorms.begin() + kLn1W, probeNorms.end(), norms.mutable_data_ptr<T>());
  sinks.paramNorms.copy_(norms);
}

// The head's saved buffer: a [N, C], mean [N], rstd [N], lse [N], then the count of targets that
// are not ignored.
template <typename T>
std::array<at::Tensor, 2> HeadForwardT(const at::Tensor& h0, const at::Tensor& lnW, const at::Tensor& lnB,
                                       const at::Tensor& wte, const at::Tensor& targets, int64_t ignoreIndex,
                                       double eps, at::Tensor& saved) {
  const at::Tensor h = h0.contiguous();
  const int64_t B = h.size(0), Tn = h.size(1), C = h.size(2), N = B * Tn, V = wte.size(0);
  saved = at::empty({N * C + 3 * N + 1 + V}, h.options());  // + scratch [V]
  at::Tensor logits = at::empty({B, Tn, V}, h.options());
  T* w = saved.mutable_data_ptr<T>();
  T *a = w, *mean = a + N * C, *rstd = mean + N, *lse = rstd + N, *count = lse + N, *scratch = count + 1;
  T* lg = logits.mutable_data_ptr<T>();
  LayerNormRows(Ptr<T>(h), Ptr<T>(lnW), Ptr<T>(lnB), a, mean, rstd, N, C, static_cast<T>(eps));
  Gemm<T>(false, true, N, V, C, a, C, Ptr<T>(wte), C, 0, lg, V);
  LogSumExpRows(lg, lse, scratch, N, V);
  const int64_t* tg = targets.const_data_ptr<int64_t>();
  // Summed in double: the mean of N per-token losses.
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (tg[i] == ignoreIndex) continue;
    sum += static_cast<double>(lse[i]) - static_cast<double>(lg[i * V + tg[i]]);
    ++n;
  }
  *count = static_cast<T>(n);
  at::Tensor loss = at::empty({}, h.options());
  // No target counted: 0 / 0, NaN, as PyTorch's mean cross-entropy gives.
  *loss.mutable_data_ptr<T>() = static_cast<T>(sum) / static_cast<T>(n);
  return {logits, loss};
}

template <typename T>
void HeadBackwardT(const at::Tensor& h0, const at::Tensor& lnW, const at::Tensor& wte, const at::Tensor& targets,
                   int64_t ignoreIndex, const at::Tensor& logits, const at::Tensor& saved, const at::Tensor& dLogits,
                   const at::Tensor& dLoss, const std::array<bool, 4>& need, std::vector<at::Tensor>& gin) {
  const at::Tensor h = h0.contiguous();
  const int64_t B = h.size(0), Tn = h.size(1), C = h.size(2), N = B * Tn, V = wte.size(0);
  const T* w = Ptr<T>(saved);
  const T *a = w, *mean = a + N * C, *rstd = mean + N, *lse = rstd + N, *count = lse + N;
  const T scale = dLoss.defined() ? dLoss.item<T>() / *count : T(0);
  at::Tensor extra = dLogits.defined() ? dLogits.contiguous() : at::Tensor();
  at::Tensor scratch = at::empty({N * V + N * C}, h.options());
  T *dl = scratch.mutable_data_ptr<T>(), *da = dl + N * V;
  CrossEntropyBackwardRows(Ptr<T>(logits), lse, targets.const_data_ptr<int64_t>(), ignoreIndex, scale,
                           extra.defined() ? Ptr<T>(extra) : nullptr, dl, N, V);
  if (need[3]) {
    gin[3] = at::empty_like(wte);
    Gemm<T>(true, false, V, C, N, dl, V, a, C, 0, gin[3].template mutable_data_ptr<T>(), C);
  }
  Gemm<T>(false, false, N, C, V, dl, V, Ptr<T>(wte), C, 0, da, C);
  T *dw = nullptr, *db = nullptr;
  if (need[1]) {
    gin[1] = at::zeros_like(lnW);
    dw = gin[1].template mutable_data_ptr<T>();
  }
  if (need[2]) {
    gin[2] = at::zeros_like(lnW);
    db = gin[2].template mutable_data_ptr<T>();
  }
  at::Tensor dh = need[0] ? at::empty_like(h) : at::Tensor();
  LayerNormBackwardRows(da, Ptr<T>(h), mean, rstd, Ptr<T>(lnW), static_cast<const T*>(nullptr),
                        need[0] ? dh.mutable_data_ptr<T>() : nullptr, dw, db, N, C);
  if (need[0]) gin[0] = dh;
}

// float32 or float64, with the BLAS for it found (and the path not turned off).
bool DtypeHasBlas(const at::Tensor& t) {
  if (t.scalar_type() == at::kFloat) return FindBlas().s != nullptr;
  return t.scalar_type() == at::kDouble && FindBlas().d != nullptr;
}

}  // namespace

bool SmallBlockFits(const at::Tensor& h, int64_t nHead) {
  if (!DtypeHasBlas(h) || h.dim() != 3 || h.size(0) < 1 || h.size(1) < 1 || nHead < 1) return false;
  const int64_t B = h.size(0), T = h.size(1), N = B * T, C = h.size(2);
  // The attention keeps its probabilities, [B, H, T, T], where flash attention keeps [B, H, T]: a
  // long window of a narrow model fits kSmallWork but not that (T 4096 at width 8 would be 512 MiB).
  if (B * nHead * T * T > kMaxAttentionProbs) return false;
  // The BLAS takes 32-bit sizes; far below kSmallWork anyway.
  return (N * C * C <= kSmallWork || FindBlas().everySize) && N * 4 * C <= std::numeric_limits<int>::max();
}

std::vector<at::Tensor> SmallBlockForward(const std::vector<at::Tensor>& in, int64_t nHead, double eps,
                                          int64_t probeRows, at::Tensor& saved) {
  return in[kH].scalar_type() == at::kFloat ? ForwardT<float>(in, nHead, eps, probeRows, saved)
                                            : ForwardT<double>(in, nHead, eps, probeRows, saved);
}

void SmallBlockBackward(const std::vector<at::Tensor>& in, const at::Tensor& saved, const at::Tensor& gradOut,
                        int64_t nHead, const std::array<bool, kBlockInputs>& need, const ProbeSinks& sinks,
                        std::vector<at::Tensor>& gin) {
  if (in[kH].scalar_type() == at::kFloat) BackwardT<float>(in, saved, gradOut, nHead, need, sinks, gin);
  else BackwardT<double>(in, saved, gradOut, nHead, need, sinks, gin);
}

bool SmallHeadFits(const at::Tensor& h, const at::Tensor& wte, const at::Tensor& targets, int64_t ignoreIndex) {
  if (!DtypeHasBlas(h) || !wte.is_contiguous() || !targets.is_contiguous()) return false;
  const int64_t N = h.size(0) * h.size(1), C = h.size(2), V = wte.size(0);
  if (N < 1 || (N * C * V > kSmallHeadWork && !FindBlas().everySize) || N * std::max(C, V) > std::numeric_limits<int>::max()) {
    return false;
  }
  const int64_t* t = targets.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] != ignoreIndex && (t[i] < 0 || t[i] >= V)) return false;
  }
  return true;
}

std::array<at::Tensor, 2> SmallHeadForward(const at::Tensor& h, const at::Tensor& lnW, const at::Tensor& lnB,
                                           const at::Tensor& wte, const at::Tensor& targets, int64_t ignoreIndex,
                                           double eps, at::Tensor& saved) {
  return h.scalar_type() == at::kFloat ? HeadForwardT<float>(h, lnW, lnB, wte, targets, ignoreIndex, eps, saved)
                                       : HeadForwardT<double>(h, lnW, lnB, wte, targets, ignoreIndex, eps, saved);
}

void SmallHeadBackward(const at::Tensor& h, const at::Tensor& lnW, const at::Tensor& wte, const at::Tensor& targets,
                       int64_t ignoreIndex, const at::Tensor& logits, const at::Tensor& saved, const at::Tensor& dLogits,
                       const at::Tensor& dLoss, const std::array<bool, 4>& need, std::vector<at::Tensor>& gin) {
  if (h.scalar_type() == at::kFloat) {
    HeadBackwardT<float>(h, lnW, wte, targets, ignoreIndex, logits, saved, dLogits, dLoss, need, gin);
  } else {
    HeadBackwardT<double>(h, lnW, wte, targets, ignoreIndex, logits, saved, dLogits, dLoss, need, gin);
  }
}

}  // namespace innerloop
