// The op table: every tensor operation is one line, `OP(jsName, names, expression)`,
// where the expression reads its arguments from `a` by position (argument 0 is
// the tensor the method is called on) and `names` names those positions for
// error messages ("self,other,alpha": PyTorch's parameter names, camelCase as in
// the TypeScript API). The macro expands each line into a
// guarded N-API function; a second expansion registers them all. The
// TypeScript layer (lib/torch/tensor.ts) maps methods and options onto these
// positional calls.
#include "binding.h"
#include "gemm.h"

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

// OP(name, names, expr): a function returning the value of expr converted to JS.
// OPI(name, names, expr): an in-place op; returns argument 0 (the same JS object).
#define OP_TABLE(OP, OPI)                                                                                                     \
  /* conversion and copies */                                                                                                 \
  OP(to, "self,device,dtype,nonBlocking,copy", To(a))                                                                         \
  OP(contiguous, "self", a.T(0).contiguous())                                                                                 \
  OP(clone, "self", a.T(0).clone())                                                                                           \
  OP(detach, "self", a.T(0).detach())                                                                                         \
  /* arithmetic (other may be a number) */                                                                                    \
  OP(add, "self,other,alpha", at::add(a.T(0), a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                                   \
  OP(sub, "self,other,alpha", at::sub(a.T(0), a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                                   \
  OP(rsub, "self,other", at::sub(a.TS(1), a.T(0)))                                                                            \
  OP(mul, "self,other", at::mul(a.T(0), a.TS(1)))                                                                             \
  OP(div, "self,other,roundingMode", a.Has(2) ? at::div(a.T(0), a.TS(1), a.S(2)) : at::div(a.T(0), a.TS(1)))                  \
  OP(remainder, "self,other", at::remainder(a.T(0), a.TS(1)))                                                                 \
  OP(pow, "self,exponent", at::pow(a.T(0), a.TS(1)))                                                                          \
  OP(maximum, "self,other", at::maximum(a.T(0), a.TS(1)))                                                                     \
  OP(minimum, "self,other", at::minimum(a.T(0), a.TS(1)))                                                                     \
  OP(eq, "self,other", at::eq(a.T(0), a.TS(1)))                                                                               \
  OP(ne, "self,other", at::ne(a.T(0), a.TS(1)))                                                                               \
  OP(lt, "self,other", at::lt(a.T(0), a.TS(1)))                                                                               \
  OP(le, "self,other", at::le(a.T(0), a.TS(1)))                                                                               \
  OP(gt, "self,other", at::gt(a.T(0), a.TS(1)))                                                                               \
  OP(ge, "self,other", at::ge(a.T(0), a.TS(1)))                                                                               \
  OP(logicalAnd, "self,other", at::logical_and(a.T(0), a.TS(1)))                                                              \
  OP(logicalOr, "self,other", at::logical_or(a.T(0), a.TS(1)))                                                                \
  OP(where, "condition,input,other", at::where(a.T(0), a.TS(1), a.TS(2)))                                                     \
  OP(lerp, "self,end,weight", at::lerp(a.T(0), a.T(1), a.TS(2)))                                                              \
  /* unary */                                                                                                                 \
  OP(neg, "self", at::neg(a.T(0)))                                                                                            \
  OP(exp, "self", at::exp(a.T(0)))                                                                                            \
  OP(log, "self", at::log(a.T(0)))                                                                                            \
  OP(log1p, "self", at::log1p(a.T(0)))                                                                                        \
  OP(sqrt, "self", at::sqrt(a.T(0)))                                                                                          \
  OP(rsqrt, "self", at::rsqrt(a.T(0)))                                                                                        \
  OP(tanh, "self", at::tanh(a.T(0)))                                                                                          \
  OP(sigmoid, "self", at::sigmoid(a.T(0)))                                                                                    \
  OP(abs, "self", at::abs(a.T(0)))                                                                                            \
  OP(sign, "self", at::sign(a.T(0)))                                                                                          \
  OP(sin, "self", at::sin(a.T(0)))                                                                                            \
  OP(cos, "self", at::cos(a.T(0)))                                                                                            \
  OP(reciprocal, "self", at::reciprocal(a.T(0)))                                                                              \
  OP(square, "self", at::square(a.T(0)))                                                                                      \
  OP(floor, "self", at::floor(a.T(0)))                                                                                        \
  OP(ceil, "self", at::ceil(a.T(0)))                                                                                          \
  OP(round, "self", at::round(a.T(0)))                                                                                        \
  OP(logicalNot, "self", at::logical_not(a.T(0)))                                                                             \
  OP(isnan, "self", at::isnan(a.T(0)))                                                                                        \
  OP(isfinite, "self", at::isfinite(a.T(0)))                                                                                  \
  OP(clamp, "self,min,max", at::clamp(a.T(0), a.OptSc(1), a.OptSc(2)))                                                        \
  /* linear algebra */                                                                                                        \
  OP(matmul, "self,other", a.T(0).dim() == 2 && a.T(1).dim() == 2 ? Mm(a.T(0), a.T(1)) : at::matmul(a.T(0), a.T(1)))                                                                        \
  OP(bmm, "self,mat2", at::bmm(a.T(0), a.T(1)))                                                                               \
  OP(mm, "self,mat2", Mm(a.T(0), a.T(1)))                                                                                 \
  OP(outer, "self,vec2", at::outer(a.T(0), a.T(1)))                                                                           \
  OP(addmm, "self,mat1,mat2", at::addmm(a.T(0), a.T(1), a.T(2)))                                                              \
  /* reductions: (t, dims|null, keepdim, ...) */                                                                              \
  OP(sum, "self,dim,keepdim,dtype", Sum(a))                                                                                   \
  OP(mean, "self,dim,keepdim,dtype", Mean(a))                                                                                 \
  OP(maxAll, "self", at::max(a.T(0)))                                                                                         \
  OP(minAll, "self", at::min(a.T(0)))                                                                                         \
  OP(maxDim, "self,dim,keepdim", at::max(a.T(0), a.I(1), a.B(2)))                                                             \
  OP(minDim, "self,dim,keepdim", at::min(a.T(0), a.I(1), a.B(2)))                                                             \
  OP(amax, "self,dim,keepdim", at::amax(a.T(0), a.Has(1) ? a.IL(1) : std::vector<int64_t>{}, a.B(2)))                         \
  OP(amin, "self,dim,keepdim", at::amin(a.T(0), a.Has(1) ? a.IL(1) : std::vector<int64_t>{}, a.B(2)))                         \
  OP(argmax, "self,dim,keepdim", at::argmax(a.T(0), a.OptI(1), a.B(2)))                                                       \
  OP(argmin, "self,dim,keepdim", at::argmin(a.T(0), a.OptI(1), a.B(2)))                                                       \
  OP(norm, "self,p,dim,keepdim,dtype", at::linalg_vector_norm(a.T(0), a.Sc(1), OptRef(a.OptIL(2)), a.B(3), a.OptDT(4)))       \
  OP(var, "self,dim,correction,keepdim", at::var(a.T(0), OptRef(a.OptIL(1)), a.OptSc(2), a.B(3)))                             \
  OP(std, "self,dim,correction,keepdim", at::std(a.T(0), OptRef(a.OptIL(1)), a.OptSc(2), a.B(3)))                             \
  OP(logsumexp, "self,dim,keepdim", at::logsumexp(a.T(0), a.IL(1), a.B(2)))                                                   \
  OP(cumsum, "self,dim", at::cumsum(a.T(0), a.I(1)))                                                                          \
  OP(prod, "self", at::prod(a.T(0)))                                                                                          \
  OP(all, "self", at::all(a.T(0)))                                                                                            \
  OP(any, "self", at::any(a.T(0)))                                                                                            \
  OP(topk, "self,k,dim,largest,sorted", at::topk(a.T(0), a.I(1), a.I(2, -1), a.B(3, true), a.B(4, true)))                     \
  OP(sort, "self,dim,descending", at::sort(a.T(0), a.I(1, -1), a.B(2, false)))                                                \
  /* shape */                                                                                                                 \
  OP(view, "self,shape", a.T(0).view(a.IL(1)))                                                                                \
  OP(reshape, "self,shape", a.T(0).reshape(a.IL(1)))                                                                          \
  OP(transpose, "self,dim0,dim1", a.T(0).transpose(a.I(1), a.I(2)))                                                           \
  OP(permute, "self,dims", a.T(0).permute(a.IL(1)))                                                                           \
  OP(unsqueeze, "self,dim", a.T(0).unsqueeze(a.I(1)))                                                                         \
  OP(squeeze, "self,dim", Squeeze(a))                                                                                         \
  OP(flatten, "self,startDim,endDim", a.T(0).flatten(a.I(1, 0), a.I(2, -1)))                                                  \
  OP(expand, "self,size", a.T(0).expand(a.IL(1)))                                                                             \
  OP(expandAs, "self,other", a.T(0).expand_as(a.T(1)))                                                                        \
  OP(repeat, "self,repeats", a.T(0).repeat(a.IL(1)))                                                                          \
  OP(narrow, "self,dim,start,length", a.T(0).narrow(a.I(1), a.I(2), a.I(3)))                                                  \
  OP(slice, "self,dim,start,end,step", Slice(a))                                                                              \
  OP(select, "self,dim,index", a.T(0).select(a.I(1), a.I(2)))                                                                 \
  OP(indexSelect, "self,dim,index", at::index_select(a.T(0), a.I(1), a.T(2)))                                                 \
  OP(gather, "self,dim,index", at::gather(a.T(0), a.I(1), a.T(2)))                                                            \
  OP(scatter, "self,dim,index,src", ScatterAny(info, a))                                                                      \
  OP(scatterAdd, "self,dim,index,src", at::scatter_add(a.T(0), a.I(1), a.T(2), a.T(3)))                                       \
  OP(split, "self,splitSizeOrSections,dim", Split(a))                                                                         \
  OP(chunk, "self,chunks,dim", a.T(0).chunk(a.I(1), a.I(2, 0)))                                                               \
  OP(unbind, "self,dim", a.T(0).unbind(a.I(1, 0)))                                                                            \
  OP(cat, "tensors,dim", at::cat(a.TL(0), a.I(1, 0)))                                                                         \
  OP(stack, "tensors,dim", at::stack(a.TL(0), a.I(1, 0)))                                                                     \
  OP(triu, "self,diagonal", at::triu(a.T(0), a.I(1, 0)))                                                                      \
  OP(tril, "self,diagonal", at::tril(a.T(0), a.I(1, 0)))                                                                      \
  OP(maskedFill, "self,mask,value", at::masked_fill(a.T(0), a.T(1), a.TS(2)))                                                 \
  OP(oneHot, "tensor,numClasses", at::one_hot(a.T(0), a.I(1, -1)))                                                            \
  OP(multinomial, "self,numSamples,replacement", at::multinomial(a.T(0), a.I(1), a.B(2, false)))                              \
  OP(bincount, "self,weights,minlength", at::bincount(a.T(0), a.OptT(1), a.I(2, 0)))                                          \
  /* in place */                                                                                                              \
  OPI(add_, "self,other,alpha", a.T(0).add_(a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                                     \
  OPI(sub_, "self,other,alpha", a.T(0).sub_(a.TS(1), a.Has(2) ? a.Sc(2) : at::Scalar(1)))                                     \
  OPI(mul_, "self,other", a.T(0).mul_(a.TS(1)))                                                                               \
  OPI(div_, "self,other", a.T(0).div_(a.TS(1)))                                                                               \
  OPI(pow_, "self,exponent", a.T(0).pow_(a.TS(1)))                                                                            \
  OPI(copy_, "self,src,nonBlocking", a.T(0).copy_(a.T(1), a.B(2, false)))                                                     \
  OPI(zero_, "self", a.T(0).zero_())                                                                                          \
  OPI(fill_, "self,value", a.T(0).fill_(a.Sc(1)))                                                                             \
  OPI(normal_, "self,mean,std", a.T(0).normal_(a.D(1, 0.0), a.D(2, 1.0)))                                                     \
  OPI(uniform_, "self,from,to", a.T(0).uniform_(a.D(1, 0.0), a.D(2, 1.0)))                                                    \
  OPI(clamp_, "self,min,max", a.T(0).clamp_(a.OptSc(1), a.OptSc(2)))                                                          \
  OPI(addcmul_, "self,tensor1,tensor2,value", a.T(0).addcmul_(a.T(1), a.T(2), a.Has(3) ? a.Sc(3) : at::Scalar(1)))            \
  OPI(addcdiv_, "self,tensor1,tensor2,value", a.T(0).addcdiv_(a.T(1), a.T(2), a.Has(3) ? a.Sc(3) : at::Scalar(1)))            \
  OPI(lerp_, "self,end,weight", a.T(0).lerp_(a.T(1), a.TS(2)))                                                                \
  OPI(maskedFill_, "self,mask,value", a.T(0).masked_fill_(a.T(1), a.TS(2)))                                                   \
  OPI(scatter_, "self,dim,index,src", ScatterAny_(info, a))                                                                   \
  OPI(exp_, "self", a.T(0).exp_())                                                                                            \
  OPI(sqrt_, "self", a.T(0).sqrt_())                                                                                          \
  OPI(neg_, "self", a.T(0).neg_())                                                                                            \
  /* nn.functional */                                                                                                         \
  OP(relu, "input", at::relu(a.T(0)))                                                                                         \
  OP(gelu, "input,approximate", at::gelu(a.T(0), a.Has(1) ? a.S(1) : std::string("none")))                                    \
  OP(silu, "input", at::silu(a.T(0)))                                                                                         \
  OP(softmax, "input,dim,dtype", at::softmax(a.T(0), a.I(1), a.OptDT(2)))                                                     \
  OP(logSoftmax, "input,dim,dtype", at::log_softmax(a.T(0), a.I(1), a.OptDT(2)))                                              \
  OP(layerNorm, "input,normalizedShape,weight,bias,eps", at::layer_norm(a.T(0), a.IL(1), a.OptT(2), a.OptT(3), a.D(4, 1e-5))) \
  OP(rmsNorm, "input,normalizedShape,weight,eps", at::rms_norm(a.T(0), a.IL(1), a.OptT(2), a.OptD(3)))                        \
  OP(embedding, "input,weight", at::embedding(a.T(1), a.T(0)))                                                                \
  OP(dropout, "input,p,training", at::dropout(a.T(0), a.D(1, 0.5), a.B(2, true)))                                             \
  OP(linear, "input,weight,bias", Linear(a.T(0), a.T(1), a.OptT(2)))                                                      \
  OP(crossEntropy, "input,target,weight,reduction,ignoreIndex,labelSmoothing",                                                \
     at::cross_entropy_loss(a.T(0), a.T(1), a.OptT(2), Reduction(a.Has(3) ? a.S(3) : std::string("mean")),                    \
                            a.I(4, -100), a.D(5, 0.0)))                                                                       \
  OP(scaledDotProductAttention, "query,key,value,attnMask,dropoutP,isCausal,scale",                                           \
     at::scaled_dot_product_attention(a.T(0), a.T(1), a.T(2), a.OptT(3), a.D(4, 0.0),                                         \
                                      a.B(5, false), a.OptD(6)))

#define DEFINE_OP(name, names, expr)                                             \
  static Napi::Value Op_##name(const Napi::CallbackInfo& info) {                 \
    return Guarded(info, #name, [&]() -> Napi::Value {                           \
      Args a(info, #name, names);                                                \
      return ToJS(info.Env(), expr);                                             \
    });                                                                          \
  }
#define DEFINE_OPI(name, names, expr)                                            \
  static Napi::Value Op_##name(const Napi::CallbackInfo& info) {                 \
    return Guarded(info, #name, [&]() -> Napi::Value {                           \
      Args a(info, #name, names);                                                \
      expr;                                                                      \
      return info[0];                                                            \
    });                                                                          \
  }
OP_TABLE(DEFINE_OP, DEFINE_OPI)

void RegisterOps(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
#define REGISTER_OP(name, names, expr) ops.Set(#name, Napi::Function::New(env, Op_##name, #name));
  OP_TABLE(REGISTER_OP, REGISTER_OP)
#undef REGISTER_OP
  exports.Set("ops", ops);
}

}  // namespace innerloop
