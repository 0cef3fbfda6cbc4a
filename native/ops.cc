// The op table: every tensor operation is one line, `OP(jsName, expression)`,
// where the expression reads its arguments from `a` by position (argument 0 is
// the tensor the method is called on). The macro expands each line into a
// guarded N-API function; a second expansion registers them all. The
// TypeScript layer (lib/torch/tensor.ts) maps methods and options onto these
// positional calls.
#include "binding.h"

namespace innerloop {
namespace {

int64_t Reduction(const std::string& r) {
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw ArgError("crossEntropy: reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

at::Tensor Slice(Args& a) {
  at::Tensor& t = a.T(0);
  return t.slice(a.I(1), a.OptI(2), a.OptI(3), a.I(4, 1));
}

std::vector<at::Tensor> Split(Args& a) {
  at::Tensor& t = a.T(0);
  int64_t dim = a.I(2, 0);
  // A number splits into equal pieces, an array into pieces of those sizes.
  std::vector<int64_t> sizes = a.IL(1);
  return sizes.size() == 1 ? t.split(sizes[0], dim) : t.split_with_sizes(sizes, dim);
}

at::Tensor Sum(Args& a) {
  at::Tensor& t = a.T(0);
  auto dtype = a.OptDT(3);
  if (!a.Has(1)) return dtype ? at::sum(t, *dtype) : at::sum(t);
  return at::sum(t, a.IL(1), a.B(2), dtype);
}

at::Tensor Mean(Args& a) {
  at::Tensor& t = a.T(0);
  auto dtype = a.OptDT(3);
  if (!a.Has(1)) return dtype ? at::mean(t, *dtype) : at::mean(t);
  return at::mean(t, a.IL(1), a.B(2), dtype);
}

at::Tensor Squeeze(Args& a) {
  at::Tensor& t = a.T(0);
  return a.Has(1) ? t.squeeze(a.I(1)) : t.squeeze();
}

at::Tensor ScatterAny(const Napi::CallbackInfo& info, Args& a) {
  at::Tensor& t = a.T(0);
  if (info.Length() > 3 && info[3].IsNumber()) return t.scatter(a.I(1), a.T(2), a.Sc(3));
  return t.scatter(a.I(1), a.T(2), a.T(3));
}

at::Tensor& ScatterAny_(const Napi::CallbackInfo& info, Args& a) {
  at::Tensor& t = a.T(0);
  if (info.Length() > 3 && info[3].IsNumber()) return t.scatter_(a.I(1), a.T(2), a.Sc(3));
  return t.scatter_(a.I(1), a.T(2), a.T(3));
}

at::Tensor To(Args& a) {
  at::Tensor& t = a.T(0);
  auto dev = a.OptDev(1);
  auto dt = a.OptDT(2);
  return t.to(dev.value_or(t.device()), dt.value_or(t.scalar_type()), a.B(3, false), a.B(4, false));
}

std::optional<at::IntArrayRef> OptRef(const std::optional<std::vector<int64_t>>& v) {
  if (!v) return std::nullopt;
  return at::IntArrayRef(*v);
}

}  // namespace

// OP(name, expr): a function returning the value of expr converted to JS.
// OPI(name, expr): an in-place op; returns argument 0 (the same JS object).
#define OP_TABLE(OP, OPI)                                                                      \
  /* conversion and copies */                                                                  \
  OP(to, To(a))                                                                                \
  OP(contiguous, a.T(0).contiguous())                                                          \
  OP(clone, a.T(0).clone())                                                                    \
  OP(detach, a.T(0).detach())                                                                  \
  /* arithmetic (other may be a number) */                                                     \
  OP(add, at::add(a.T(0), a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                        \
  OP(sub, at::sub(a.T(0), a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                        \
  OP(rsub, at::sub(a.TS(1), a.T(0)))                                                           \
  OP(mul, at::mul(a.T(0), a.TS(1)))                                                            \
  OP(div, a.Has(2) ? at::div(a.T(0), a.TS(1), a.S(2)) : at::div(a.T(0), a.TS(1)))              \
  OP(remainder, at::remainder(a.T(0), a.TS(1)))                                                \
  OP(pow, at::pow(a.T(0), a.TS(1)))                                                            \
  OP(maximum, at::maximum(a.T(0), a.TS(1)))                                                    \
  OP(minimum, at::minimum(a.T(0), a.TS(1)))                                                    \
  OP(eq, at::eq(a.T(0), a.TS(1)))                                                              \
  OP(ne, at::ne(a.T(0), a.TS(1)))                                                              \
  OP(lt, at::lt(a.T(0), a.TS(1)))                                                              \
  OP(le, at::le(a.T(0), a.TS(1)))                                                              \
  OP(gt, at::gt(a.T(0), a.TS(1)))                                                              \
  OP(ge, at::ge(a.T(0), a.TS(1)))                                                              \
  OP(logicalAnd, at::logical_and(a.T(0), a.TS(1)))                                             \
  OP(logicalOr, at::logical_or(a.T(0), a.TS(1)))                                               \
  OP(where, at::where(a.T(0), a.TS(1), a.TS(2)))                                               \
  OP(lerp, at::lerp(a.T(0), a.T(1), a.TS(2)))                                                  \
  /* unary */                                                                                  \
  OP(neg, at::neg(a.T(0)))                                                                     \
  OP(exp, at::exp(a.T(0)))                                                                     \
  OP(log, at::log(a.T(0)))                                                                     \
  OP(log1p, at::log1p(a.T(0)))                                                                 \
  OP(sqrt, at::sqrt(a.T(0)))                                                                   \
  OP(rsqrt, at::rsqrt(a.T(0)))                                                                 \
  OP(tanh, at::tanh(a.T(0)))                                                                   \
  OP(sigmoid, at::sigmoid(a.T(0)))                                                             \
  OP(abs, at::abs(a.T(0)))                                                                     \
  OP(sign, at::sign(a.T(0)))                                                                   \
  OP(sin, at::sin(a.T(0)))                                                                     \
  OP(cos, at::cos(a.T(0)))                                                                     \
  OP(reciprocal, at::reciprocal(a.T(0)))                                                       \
  OP(square, at::square(a.T(0)))                                                               \
  OP(floor, at::floor(a.T(0)))                                                                 \
  OP(ceil, at::ceil(a.T(0)))                                                                   \
  OP(round, at::round(a.T(0)))                                                                 \
  OP(logicalNot, at::logical_not(a.T(0)))                                                      \
  OP(isnan, at::isnan(a.T(0)))                                                                 \
  OP(isfinite, at::isfinite(a.T(0)))                                                           \
  OP(clamp, at::clamp(a.T(0), a.OptSc(1), a.OptSc(2)))                                         \
  /* linear algebra */                                                                         \
  OP(matmul, at::matmul(a.T(0), a.T(1)))                                                       \
  OP(bmm, at::bmm(a.T(0), a.T(1)))                                                             \
  OP(mm, at::mm(a.T(0), a.T(1)))                                                               \
  OP(outer, at::outer(a.T(0), a.T(1)))                                                         \
  OP(addmm, at::addmm(a.T(0), a.T(1), a.T(2)))                                                 \
  /* reductions: (t, dims|null, keepdim, ...) */                                               \
  OP(sum, Sum(a))                                                                              \
  OP(mean, Mean(a))                                                                            \
  OP(maxAll, at::max(a.T(0)))                                                                  \
  OP(minAll, at::min(a.T(0)))                                                                  \
  OP(maxDim, at::max(a.T(0), a.I(1), a.B(2)))                                                  \
  OP(minDim, at::min(a.T(0), a.I(1), a.B(2)))                                                  \
  OP(amax, at::amax(a.T(0), a.Has(1) ? a.IL(1) : std::vector<int64_t>{}, a.B(2)))              \
  OP(amin, at::amin(a.T(0), a.Has(1) ? a.IL(1) : std::vector<int64_t>{}, a.B(2)))              \
  OP(argmax, at::argmax(a.T(0), a.OptI(1), a.B(2)))                                            \
  OP(argmin, at::argmin(a.T(0), a.OptI(1), a.B(2)))                                            \
  OP(norm, at::linalg_vector_norm(a.T(0), a.Sc(1), OptRef(a.OptIL(2)), a.B(3), a.OptDT(4)))    \
  OP(var, at::var(a.T(0), OptRef(a.OptIL(1)), a.OptSc(2), a.B(3)))                             \
  OP(std, at::std(a.T(0), OptRef(a.OptIL(1)), a.OptSc(2), a.B(3)))                             \
  OP(logsumexp, at::logsumexp(a.T(0), a.IL(1), a.B(2)))                                        \
  OP(cumsum, at::cumsum(a.T(0), a.I(1)))                                                       \
  OP(prod, at::prod(a.T(0)))                                                                   \
  OP(all, at::all(a.T(0)))                                                                     \
  OP(any, at::any(a.T(0)))                                                                     \
  OP(topk, at::topk(a.T(0), a.I(1), a.I(2, -1), a.B(3, true), a.B(4, true)))                   \
  OP(sort, at::sort(a.T(0), a.I(1, -1), a.B(2, false)))                                        \
  /* shape */                                                                                  \
  OP(view, a.T(0).view(a.IL(1)))                                                               \
  OP(reshape, a.T(0).reshape(a.IL(1)))                                                         \
  OP(transpose, a.T(0).transpose(a.I(1), a.I(2)))                                              \
  OP(permute, a.T(0).permute(a.IL(1)))                                                         \
  OP(unsqueeze, a.T(0).unsqueeze(a.I(1)))                                                      \
  OP(squeeze, Squeeze(a))                                                                      \
  OP(flatten, a.T(0).flatten(a.I(1, 0), a.I(2, -1)))                                           \
  OP(expand, a.T(0).expand(a.IL(1)))                                                           \
  OP(expandAs, a.T(0).expand_as(a.T(1)))                                                       \
  OP(repeat, a.T(0).repeat(a.IL(1)))                                                           \
  OP(narrow, a.T(0).narrow(a.I(1), a.I(2), a.I(3)))                                            \
  OP(slice, Slice(a))                                                                          \
  OP(select, a.T(0).select(a.I(1), a.I(2)))                                                    \
  OP(indexSelect, at::index_select(a.T(0), a.I(1), a.T(2)))                                    \
  OP(gather, at::gather(a.T(0), a.I(1), a.T(2)))                                               \
  OP(scatter, ScatterAny(info, a))                                                             \
  OP(scatterAdd, at::scatter_add(a.T(0), a.I(1), a.T(2), a.T(3)))                              \
  OP(split, Split(a))                                                                          \
  OP(chunk, a.T(0).chunk(a.I(1), a.I(2, 0)))                                                   \
  OP(unbind, a.T(0).unbind(a.I(1, 0)))                                                         \
  OP(cat, at::cat(a.TL(0), a.I(1, 0)))                                                         \
  OP(stack, at::stack(a.TL(0), a.I(1, 0)))                                                     \
  OP(triu, at::triu(a.T(0), a.I(1, 0)))                                                        \
  OP(tril, at::tril(a.T(0), a.I(1, 0)))                                                        \
  OP(maskedFill, at::masked_fill(a.T(0), a.T(1), a.TS(2)))                                     \
  OP(oneHot, at::one_hot(a.T(0), a.I(1, -1)))                                                  \
  OP(multinomial, at::multinomial(a.T(0), a.I(1), a.B(2, false)))                              \
  OP(bincount, at::bincount(a.T(0), a.OptT(1), a.I(2, 0)))                                     \
  /* in place */                                                                               \
  OPI(add_, a.T(0).add_(a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                          \
  OPI(sub_, a.T(0).sub_(a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                          \
  OPI(mul_, a.T(0).mul_(a.TS(1)))                                                              \
  OPI(div_, a.T(0).div_(a.TS(1)))                                                              \
  OPI(pow_, a.T(0).pow_(a.TS(1)))                                                              \
  OPI(copy_, a.T(0).copy_(a.T(1), a.B(2, false)))                                              \
  OPI(zero_, a.T(0).zero_())                                                                   \
  OPI(fill_, a.T(0).fill_(a.Sc(1)))                                                            \
  OPI(normal_, a.T(0).normal_(a.D(1, 0.0), a.D(2, 1.0)))                                       \
  OPI(uniform_, a.T(0).uniform_(a.D(1, 0.0), a.D(2, 1.0)))                                     \
  OPI(clamp_, a.T(0).clamp_(a.OptSc(1), a.OptSc(2)))                                           \
  OPI(addcmul_, a.T(0).addcmul_(a.T(1), a.T(2), a.Has(3) ? a.Sc(3) : at::Scalar(1)))           \
  OPI(addcdiv_, a.T(0).addcdiv_(a.T(1), a.T(2), a.Has(3) ? a.Sc(3) : at::Scalar(1)))           \
  OPI(lerp_, a.T(0).lerp_(a.T(1), a.TS(2)))                                                    \
  OPI(maskedFill_, a.T(0).masked_fill_(a.T(1), a.TS(2)))                                       \
  OPI(scatter_, ScatterAny_(info, a))                                                          \
  OPI(exp_, a.T(0).exp_())                                                                     \
  OPI(sqrt_, a.T(0).sqrt_())                                                                   \
  OPI(neg_, a.T(0).neg_())                                                                     \
  /* nn.functional */                                                                          \
  OP(relu, at::relu(a.T(0)))                                                                   \
  OP(gelu, at::gelu(a.T(0), a.Has(1) ? a.S(1) : std::string("none")))                         \
  OP(silu, at::silu(a.T(0)))                                                                   \
  OP(softmax, at::softmax(a.T(0), a.I(1), a.OptDT(2)))                                         \
  OP(logSoftmax, at::log_softmax(a.T(0), a.I(1), a.OptDT(2)))                                  \
  OP(layerNorm, at::layer_norm(a.T(0), a.IL(1), a.OptT(2), a.OptT(3), a.D(4, 1e-5)))            \
  OP(rmsNorm, at::rms_norm(a.T(0), a.IL(1), a.OptT(2), a.OptD(3)))                             \
  OP(embedding, at::embedding(a.T(1), a.T(0)))                                                 \
  OP(dropout, at::dropout(a.T(0), a.D(1, 0.5), a.B(2, true)))                                  \
  OP(linear, at::linear(a.T(0), a.T(1), a.OptT(2)))                                            \
  OP(crossEntropy, at::cross_entropy_loss(a.T(0), a.T(1), a.OptT(2),                           \
                                          Reduction(a.Has(3) ? a.S(3) : std::string("mean")),  \
                                          a.I(4, -100), a.D(5, 0.0)))                          \
  OP(scaledDotProductAttention,                                                                \
     at::scaled_dot_product_attention(a.T(0), a.T(1), a.T(2), a.OptT(3), a.D(4, 0.0),          \
                                      a.B(5, false), a.OptD(6)))

#define DEFINE_OP(name, expr)                                                    \
  static Napi::Value Op_##name(const Napi::CallbackInfo& info) {                 \
    return Guarded(info, #name, [&]() -> Napi::Value {                           \
      Args a(info, #name);                                                       \
      return ToJS(info.Env(), expr);                                             \
    });                                                                          \
  }
#define DEFINE_OPI(name, expr)                                                   \
  static Napi::Value Op_##name(const Napi::CallbackInfo& info) {                 \
    return Guarded(info, #name, [&]() -> Napi::Value {                           \
      Args a(info, #name);                                                       \
      expr;                                                                      \
      return info[0];                                                            \
    });                                                                          \
  }
OP_TABLE(DEFINE_OP, DEFINE_OPI)

void RegisterOps(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
#define REGISTER_OP(name, expr) ops.Set(#name, Napi::Function::New(env, Op_##name, #name));
  OP_TABLE(REGISTER_OP, REGISTER_OP)
#undef REGISTER_OP
  exports.Set("ops", ops);
}

}  // namespace innerloop
