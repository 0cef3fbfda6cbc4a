// Fused training paths for the hot parts of GPT-2: the embeddings, a whole pre-LayerNorm block, and
// the head with its loss (final LayerNorm, tied unembedding, cross-entropy), each one autograd node
// whose hand-written backward calls the ATen kernels autograd would call, except for GELU; a block
// or head too small for those kernels to pay runs as plain loops instead (small_gpt2.cc). They exist
// for speed on the CPU, where a small model's step is decided by how many ops and graph nodes it
// takes as much as by the kernels:
//   - one Node-API call and one autograd node per block instead of about 30 of each, and no
//     views, copies or bookkeeping between the kernels;
//   - GELU's backward from the saved input and output, without a second tanh (a plain loop the
//     compiler vectorizes), where gelu_backward recomputes tanh: about 8x faster; and GELU's
//     forward through one vector exponential instead of a tanh: about 2x faster.
// Each answers `undefined` where it does not apply (not CPU, not float32/float64, autocast on,
// unexpected shapes); the caller then composes the same computation from ordinary ops. A
// second-order backward (create_graph) through a node recomputes it with twice-differentiable ops
// (math attention) and differentiates that, so higher derivatives are exact.
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <dlfcn.h>

#include "binding.h"
#include "vector_math.h"
#include "gemm.h"
#include "small_gpt2.h"

namespace innerloop {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Small work runs on the calling thread alone. Several of the kernels a block calls (layer norm
// and its backward, flash attention, log-softmax, MKL's GEMM) start a parallel region whatever the
// size, and with libgomp's passive waiting (lib/torch/native.ts) waking the other threads costs
// tens of microseconds each time: with two threads a micro-sized step took 8x its one-thread time.
// Below kSerialWork (rows x width x width of the node's largest product) the node sets the calling
// thread's OpenMP and MKL thread counts to 1 for its duration, so those kernels run serially; both
// settings are per thread and restored on exit. The functions are looked up at run time: a libtorch
// without OpenMP or MKL only misses the saving.
constexpr int64_t kSerialWork = int64_t{1} << 24;

struct ThreadControls {
  int (*ompGetMaxThreads)() = nullptr;
  void (*ompSetNumThreads)(int) = nullptr;
  int (*mklSetNumThreadsLocal)(int) = nullptr;
};

const ThreadControls& Threads() {
  static const ThreadControls c = [] {
    ThreadControls t;
    t.ompGetMaxThreads = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    t.ompSetNumThreads = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    // MKL's C interface (its lower-case names are the Fortran one, taking pointers).
    t.mklSetNumThreadsLocal = reinterpret_cast<int (*)(int)>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
    return t;
  }();
  return c;
}

class SerialIfSmall {
 public:
  explicit SerialIfSmall(int64_t work) {
    const ThreadControls& t = Threads();
    if (work >= kSerialWork || t.ompGetMaxThreads == nullptr || t.ompSetNumThreads == nullptr) return;
    at::get_num_threads();  // libtorch sets each thread's count on first use: let it happen before
    prevOmp_ = t.ompGetMaxThreads();
    if (prevOmp_ <= 1) return;
    t.ompSetNumThreads(1);
    if (t.mklSetNumThreadsLocal != nullptr) prevMkl_ = t.mklSetNumThreadsLocal(1);
    active_ = true;
  }
  ~SerialIfSmall() {
    if (!active_) return;
    const ThreadControls& t = Threads();
    t.ompSetNumThreads(prevOmp_);
    if (t.mklSetNumThreadsLocal != nullptr) t.mklSetNumThreadsLocal(prevMkl_);
  }
  SerialIfSmall(const SerialIfSmall&) = delete;
  SerialIfSmall& operator=(const SerialIfSmall&) = delete;

 private:
  bool active_ = false;
  int prevOmp_ = 0;
  int prevMkl_ = 0;
};

// x [N, in] @ w [in, out] + b: Hugging Face Conv1D layout.
at::Tensor Affine(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) { return Addmm(b, x, w); }

// Gradients of Affine for upstream gradient d: returns dx and fills dw, db where asked.
at::Tensor AffineBackward(const at::Tensor& d, const at::Tensor& x, const at::Tensor& w, bool needW, bool needB,
                          at::Tensor& dw, at::Tensor& db) {
  if (needW) dw = Mm(x.t(), d);
  if (needB) db = d.sum(0);
  return Mm(d, w.t());
}

// The block composed of ordinary differentiable ops: the definition the fused node implements,
// used for second-order gradients.
at::Tensor BlockComposed(const std::vector<at::Tensor>& in, int64_t nHead, double eps) {
  const at::Tensor& h = in[kH];
  const int64_t B = h.size(0), T = h.size(1), C = h.size(2), D = C / nHead;
  at::Tensor h2 = h.reshape({B * T, C});
  at::Tensor a = at::layer_norm(h2, {C}, in[kLn1W], in[kLn1B], eps);
  at::Tensor qkv = Affine(a, in[kAttnW], in[kAttnB]).view({B, T, 3, nHead, D}).permute({2, 0, 3, 1, 4});
  // The math kernel: twice differentiable, where the CPU flash kernel's backward is not.
  at::Tensor y = std::get<0>(at::_scaled_dot_product_attention_math(qkv[0], qkv[1], qkv[2], std::nullopt, 0.0, true));
  at::Tensor h1 = h2 + Affine(y.transpose(1, 2).reshape({B * T, C}), in[kProjW], in[kProjB]);
  at::Tensor a2 = at::layer_norm(h1, {C}, in[kLn2W], in[kLn2B], eps);
  at::Tensor m = Affine(at::gelu(Affine(a2, in[kFcW], in[kFcB]), "tanh"), in[kMlpW], in[kMlpB]);
  return (h1 + m).view({B, T, C});
}

// The backward pass of a fused node under create_graph: `outs`, recomputed from the node's inputs
// `in` with twice-differentiable ops, differentiated against `gradOuts` with respect to the inputs
// the node needs a gradient for, into `gin` at their positions.
void GradOfComposed(AutogradContext* ctx, const std::vector<at::Tensor>& in, const variable_list& outs,
                    const variable_list& gradOuts, variable_list& gin) {
  std::vector<at::Tensor> leaves;
  std::vector<size_t> where;
  for (size_t i = 0; i < in.size(); ++i) {
    if (ctx->needs_input_grad(i)) {
      leaves.push_back(in[i]);
      where.push_back(i);
    }
  }
  variable_list g = torch::autograd::grad(outs, leaves, gradOuts, true, true, true);
  for (size_t j = 0; j < where.size(); ++j) gin[where[j]] = g[j];
}


// The block's forward pass on the CPU kernels, saving what backward needs. With a probe, it also
// returns, for the probe rows only, the attention and MLP outputs and the attention of every query
// on the first key, A[b, head, t, 0] = exp(s·q_t·k_0 − lse_t), from the kernel's log-sum-exp.
variable_list BlockForward(AutogradContext* ctx, const std::vector<at::Tensor>& in, int64_t nHead, double eps,
                           int64_t probeRows) {
  const at::Tensor &h = in[kH], &ln1w = in[kLn1W], &ln1b = in[kLn1B], &attnW = in[kAttnW], &attnB = in[kAttnB],
                   &projW = in[kProjW], &projB = in[kProjB], &ln2w = in[kLn2W], &ln2b = in[kLn2B],
                   &fcW = in[kFcW], &fcB = in[kFcB], &mlpW = in[kMlpW], &mlpB = in[kMlpB];
  const int64_t B = h.size(0), T = h.size(1), C = h.size(2), H = nHead, D = C / H;
  SerialIfSmall serial(B * T * C * C);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  at::Tensor h2 = h.contiguous().view({B * T, C});
  auto [a, mean1, rstd1] = at::native_layer_norm(h2, {C}, ln1w, ln1b, eps);
  at::Tensor qkv = Affine(a, attnW, attnB);
  // Causal attention with the flash kernel on strided views of qkv, [B, H, T, D] each (no
  // copies); it keeps the output and the log-sum-exp for its backward.
  std::vector<at::Tensor> qkvh = qkv.view({B, T, 3, H, D}).permute({2, 0, 3, 1, 4}).unbind(0);
  const at::Tensor &q = qkvh[0], &k = qkvh[1], &v = qkvh[2];
  auto [attn, lse] = at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, true, std::nullopt, scale);
  at::Tensor y = attn.transpose(1, 2).reshape({B * T, C});
  at::Tensor attnOut = Affine(y, projW, projB);
  at::Tensor h1 = at::add(h2, attnOut);
  auto [a2, mean2, rstd2] = at::native_layer_norm(h1, {C}, ln2w, ln2b, eps);
  at::Tensor f = Affine(a2, fcW, fcB);
  at::Tensor g = GeluTanh(f);
  at::Tensor mlpOut = Affine(g, mlpW, mlpB);
  at::Tensor out = at::add(h1, mlpOut).view({B, T, C});
  ctx->save_for_backward({h, ln1w, ln1b, attnW, attnB, projW, projB, ln2w, ln2b, fcW, fcB, mlpW, mlpB,
                          h2, a, mean1, rstd1, y, h1, a2, mean2, rstd2, f, g, q, k, v, attn, lse});
  ctx->saved_data["nHead"] = nHead;
  ctx->saved_data["eps"] = eps;
  if (probeRows == 0) return {out};
  const int64_t r = probeRows, b0 = B - r;
  auto rows = [&](const at::Tensor& t) { return t.view({B, T, C}).narrow(0, b0, r).clone(); };
  at::Tensor qr = q.narrow(0, b0, r), k0 = k.narrow(0, b0, r).narrow(2, 0, 1);
  at::Tensor s = qr.mul(k0).sum(-1).mul_(scale);  // [r, H, T]
  at::Tensor firstKey = s.sub_(lse.narrow(0, b0, r).to(s.scalar_type())).exp_();
  return {out, rows(attnOut), rows(mlpOut), firstKey};
}

// The hand-written backward pass of the block. With probe rows (sinks.rows > 0) the weight and bias
// gradients are those of the other rows only, so that the probe changes no parameter's gradient;
// the probe rows' own weight gradients are reduced to their norms, and the gradients at the
// block's boundaries are copied for the probe rows, into the sinks.
variable_list BlockBackward(AutogradContext* ctx, const at::Tensor& gradOut, const ProbeSinks& sinks) {
  variable_list sv = ctx->get_saved_variables();
  const int64_t nHead = ctx->saved_data["nHead"].toInt();
  const double eps = ctx->saved_data["eps"].toDouble();
  variable_list gin(kBlockInputs + 2);  // + nHead, eps (+ the probe's arguments, left undefined)
  if (at::GradMode::is_enabled()) {
    // create_graph: differentiate the composed block so that the gradients are differentiable.
    TORCH_CHECK(sinks.rows == 0, "gpt2BlockProbe: a probed block has no second-order backward");
    std::vector<at::Tensor> in(sv.begin(), sv.begin() + kBlockInputs);
    GradOfComposed(ctx, in, {BlockComposed(in, nHead, eps)}, {gradOut}, gin);
    return gin;
  }
  // Nothing below is recorded by autograd (grad mode is off): skip its dispatch layers, as a custom
  // node's forward does, instead of passing each kernel call through them.
  at::AutoDispatchBelowADInplaceOrView belowAutograd;
  const at::Tensor &h = sv[0], &ln1w = sv[1], &ln1b = sv[2], &attnW = sv[3], &attnB = sv[4], &projW = sv[5],
                   &projB = sv[6], &ln2w = sv[7], &ln2b = sv[8], &fcW = sv[9], &fcB = sv[10], &mlpW = sv[11],
                   &mlpB = sv[12], &h2 = sv[13], &a = sv[14], &mean1 = sv[15], &rstd1 = sv[16], &y = sv[17],
                   &h1 = sv[18], &a2 = sv[19], &mean2 = sv[20], &rstd2 = sv[21], &f = sv[22], &g = sv[23];
  const int64_t B = h.size(0), T = h.size(1), C = h.size(2), H = nHead, D = C / H;
  SerialIfSmall serial(B * T * C * C);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const int64_t r = sinks.rows, nt = (B - r) * T;  // rows [0, nt) train, [nt, B·T) probe
  auto need = [&](int i) { return ctx->needs_input_grad(i); };
  std::vector<at::Tensor> probeNorms(kBlockInputs);
  // x [N, in] @ w + b: dx for every row; dw, db from the training rows (and the probe's norms).
  auto affine = [&](const at::Tensor& d, const at::Tensor& x, const at::Tensor& w, int iw, int ib) {
    if (r == 0) return AffineBackward(d, x, w, need(iw), need(ib), gin[iw], gin[ib]);
    at::Tensor dt = d.narrow(0, 0, nt), dp = d.narrow(0, nt, r * T);
    if (need(iw) && nt > 0) gin[iw] = Mm(x.narrow(0, 0, nt).t(), dt);
    if (need(ib) && nt > 0) gin[ib] = dt.sum(0);
    probeNorms[iw] = Mm(x.narrow(0, nt, r * T).t(), dp).norm();
    probeNorms[ib] = dp.sum(0).norm();
    return Mm(d, w.t());
  };
  // LayerNorm of x [N, C] with (mean, rstd): dx for every row; dw, db as for affine.
  auto layerNorm = [&](const at::Tensor& dy, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& rstd,
                       const at::Tensor& w, const at::Tensor& b, int iw, int ib) {
    if (r == 0) {
      auto [dx, dw, db] = at::native_layer_norm_backward(dy, x, {C}, mean, rstd, w, b, {true, need(iw), need(ib)});
      gin[iw] = dw, gin[ib] = db;
      return dx;
    }
    at::Tensor dx = std::get<0>(at::native_layer_norm_backward(dy, x, {C}, mean, rstd, w, b, {true, false, false}));
    auto part = [&](int64_t s, int64_t n, bool wantW, bool wantB) {
      return at::native_layer_norm_backward(dy.narrow(0, s, n), x.narrow(0, s, n), {C}, mean.narrow(0, s, n),
                                            rstd.narrow(0, s, n), w, b, {false, wantW, wantB});
    };
    if (nt > 0) {
      auto [u0, dw, db] = part(0, nt, need(iw), need(ib));
      gin[iw] = dw, gin[ib] = db;
    }
    auto [u1, pw, pb] = part(nt, r * T, true, true);
    probeNorms[iw] = pw.norm(), probeNorms[ib] = pb.norm();
    return dx;
  };
  at::Tensor d = gradOut.reshape({B * T, C});
  if (r > 0) sinks.gradOut.copy_(gradOut.narrow(0, B - r, r));

  // MLP: out = h1 + mlp(g), g = gelu(f), f = a2 fcW + fcB.
  at::Tensor dg = affine(d, g, mlpW, kMlpW, kMlpB);
  at::Tensor df = GeluTanhBackward(dg, f, g);
  at::Tensor da2 = affine(df, a2, fcW, kFcW, kFcB);
  at::Tensor dh1 = layerNorm(da2, h1, mean2, rstd2, ln2w, ln2b, kLn2W, kLn2B).add_(d);

  // Attention: h1 = h2 + proj(y).
  at::Tensor dy = affine(dh1, y, projW, kProjW, kProjB);
  const at::Tensor &q = sv[24], &k = sv[25], &v = sv[26], &attn = sv[27], &lse = sv[28];
  at::Tensor dattn = dy.view({B, T, H, D}).transpose(1, 2);
  auto [dq, dk, dv] = at::_scaled_dot_product_flash_attention_for_cpu_backward(dattn, q, k, v, attn, lse, 0.0, true,
                                                                                std::nullopt, scale);
  // [B, H, T, D] x 3 -> [B, T, 3, H, D], the layout of c_attn's output.
  at::Tensor dqkv = at::stack({dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2)}, 2);
  at::Tensor da = affine(dqkv.view({B * T, 3 * C}), a, attnW, kAttnW, kAttnB);
  at::Tensor dh = layerNorm(da, h2, mean1, rstd1, ln1w, ln1b, kLn1W, kLn1B).add_(dh1).view({B, T, C});
  if (need(kH)) gin[kH] = dh;
  if (r > 0) {
    if (sinks.gradIn.defined()) sinks.gradIn.copy_(dh.narrow(0, B - r, r));
    sinks.paramNorms.copy_(at::stack(std::vector<at::Tensor>(probeNorms.begin() + kLn1W, probeNorms.end())));
  }
  return gin;
}

// The small path (small_gpt2.cc) for a block where it applies: runs the forward pass, saving
// only the inputs as variables (where the create_graph path of BlockBackward reads them) and one
// buffer of intermediates; {} where the path does not apply.
variable_list SmallForward(AutogradContext* ctx, const std::vector<at::Tensor>& in, int64_t nHead, double eps,
                           int64_t probeRows) {
  if (!SmallBlockFits(in[kH], nHead)) return {};
  SerialIfSmall serial(0);
  at::Tensor saved;
  std::vector<at::Tensor> outs = SmallBlockForward(in, nHead, eps, probeRows, saved);
  ctx->save_for_backward(in);
  ctx->saved_data["nHead"] = nHead;
  ctx->saved_data["eps"] = eps;
  ctx->saved_data["small"] = saved;
  return variable_list(outs.begin(), outs.end());
}

// The backward pass of a block for which SmallForward ran, into `gin` (sized for the node's
// inputs); false where it did not run, or under create_graph (then BlockBackward recomputes).
bool SmallBackward(AutogradContext* ctx, const at::Tensor& gradOut, const ProbeSinks& sinks, variable_list& gin) {
  auto small = ctx->saved_data.find("small");
  if (small == ctx->saved_data.end() || at::GradMode::is_enabled()) return false;
  at::AutoDispatchBelowADInplaceOrView belowAutograd;  // as in BlockBackward
  SerialIfSmall serial(0);
  variable_list sv = ctx->get_saved_variables();
  std::vector<at::Tensor> in(sv.begin(), sv.begin() + kBlockInputs);
  std::array<bool, kBlockInputs> need{};
  for (int i = 0; i < kBlockInputs; ++i) need[i] = ctx->needs_input_grad(i);
  SmallBlockBackward(in, small->second.toTensor(), gradOut, ctx->saved_data["nHead"].toInt(), need, sinks, gin);
  return true;
}

struct GPT2BlockFn : public torch::autograd::Function<GPT2BlockFn> {
  static at::Tensor forward(AutogradContext* ctx, at::Tensor h, at::Tensor ln1w, at::Tensor ln1b, at::Tensor attnW,
                            at::Tensor attnB, at::Tensor projW, at::Tensor projB, at::Tensor ln2w, at::Tensor ln2b,
                            at::Tensor fcW, at::Tensor fcB, at::Tensor mlpW, at::Tensor mlpB, int64_t nHead,
                            double eps) {
    std::vector<at::Tensor> in{h, ln1w, ln1b, attnW, attnB, projW, projB, ln2w, ln2b, fcW, fcB, mlpW, mlpB};
    variable_list small = SmallForward(ctx, in, nHead, eps, 0);
    return small.empty() ? BlockForward(ctx, in, nHead, eps, 0)[0] : small[0];
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list gin(kBlockInputs + 2);  // + nHead, eps
    if (SmallBackward(ctx, grads[0], ProbeSinks{}, gin)) return gin;
    return BlockBackward(ctx, grads[0], ProbeSinks{});
  }
};

// The block with probe rows: the last `probeRows` windows of the batch are analysed, not trained
// on (lib/analysis: snapshots that ride along in a training step). Outputs: the block's output for
// every row (differentiable), then the probe rows' attention output, MLP output and attention on the
// first key (not differentiable).
struct GPT2BlockProbeFn : public torch::autograd::Function<GPT2BlockProbeFn> {
  static variable_list forward(AutogradContext* ctx, at::Tensor h, at::Tensor ln1w, at::Tensor ln1b, at::Tensor attnW,
                               at::Tensor attnB, at::Tensor projW, at::Tensor projB, at::Tensor ln2w, at::Tensor ln2b,
                               at::Tensor fcW, at::Tensor fcB, at::Tensor mlpW, at::Tensor mlpB, int64_t nHead,
                               double eps, ProbeSinks sinks) {
    std::vector<at::Tensor> in{h, ln1w, ln1b, attnW, attnB, projW, projB, ln2w, ln2b, fcW, fcB, mlpW, mlpB};
    // The small path where the plain block takes it: the training rows' results must be bitwise
    // those of a step without the probe (the loss curve does not change when snapshots ride along).
    variable_list outs = SmallForward(ctx, in, nHead, eps, sinks.rows);
    if (outs.empty()) outs = BlockForward(ctx, in, nHead, eps, sinks.rows);
    ctx->mark_non_differentiable({outs[1], outs[2], outs[3]});
    // The sinks are not inputs of the node (apply passes a non-tensor argument through).
    ctx->saved_data["probeRows"] = sinks.rows;
    if (sinks.gradIn.defined()) ctx->saved_data["gradIn"] = sinks.gradIn;
    ctx->saved_data["gradOut"] = sinks.gradOut;
    ctx->saved_data["paramNorms"] = sinks.paramNorms;
    return outs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    ProbeSinks sinks;
    sinks.rows = ctx->saved_data["probeRows"].toInt();
    if (ctx->saved_data.count("gradIn")) sinks.gradIn = ctx->saved_data["gradIn"].toTensor();
    sinks.gradOut = ctx->saved_data["gradOut"].toTensor();
    sinks.paramNorms = ctx->saved_data["paramNorms"].toTensor();
    variable_list gin(kBlockInputs + 3);  // + nHead, eps, sinks
    if (SmallBackward(ctx, grads[0], sinks, gin)) return gin;
    gin = BlockBackward(ctx, grads[0], sinks);
    gin.resize(kBlockInputs + 3);
    return gin;
  }
};

// The model's head and loss: final LayerNorm, tied unembedding, mean cross-entropy. Two outputs,
// logits [B, T, V] and the loss; either may receive a gradient.
enum HeadInput { kHeadH, kHeadLnW, kHeadLnB, kHeadWte, kHeadInputs };

std::vector<at::Tensor> HeadComposed(const std::vector<at::Tensor>& in, const at::Tensor& targets, int64_t ignoreIndex,
                                     double eps) {
  const at::Tensor& h = in[kHeadH];
  const int64_t B = h.size(0), T = h.size(1), C = h.size(2);
  at::Tensor a = at::layer_norm(h.reshape({B * T, C}), {C}, in[kHeadLnW], in[kHeadLnB], eps);
  at::Tensor logits = Mm(a, in[kHeadWte].t());
  at::Tensor loss = at::cross_entropy_loss(logits, targets, std::nullopt, at::Reduction::Mean, ignoreIndex);
  return {logits.view({B, T, -1}), loss};
}

struct GPT2HeadLossFn : public torch::autograd::Function<GPT2HeadLossFn> {
  static variable_list forward(AutogradContext* ctx, at::Tensor h, at::Tensor lnW, at::Tensor lnB, at::Tensor wte,
                               at::Tensor targets, int64_t ignoreIndex, double eps) {
    const int64_t B = h.size(0), T = h.size(1), C = h.size(2), V = wte.size(0);
    SerialIfSmall serial(B * T * C * V);
    // An output that gets no gradient stays undefined in backward (which handles that) instead of
    // becoming a [B, T, V] tensor of zeros to add.
    ctx->set_materialize_grads(false);
    ctx->saved_data["ignoreIndex"] = ignoreIndex;
    ctx->saved_data["eps"] = eps;
    // Contiguous for the small path, which reads the ids directly; a view where targets already is.
    const at::Tensor flat = targets.reshape({B * T}).contiguous();
    if (SmallHeadFits(h, wte, flat, ignoreIndex)) {
      // Small: plain loops (small_gpt2.cc). The inputs are saved first, where the create_graph
      // path of backward reads them.
      at::Tensor saved;
      auto [logits, loss] = SmallHeadForward(h, lnW, lnB, wte, flat, ignoreIndex, eps, saved);
      ctx->save_for_backward({h, lnW, lnB, wte, flat, logits});
      ctx->saved_data["small"] = saved;
      return {logits, loss};
    }
    at::Tensor h2 = h.contiguous().view({B * T, C});
    auto [a, mean, rstd] = at::native_layer_norm(h2, {C}, lnW, lnB, eps);
    at::Tensor logits = Mm(a, wte.t());
    at::Tensor logp = at::_log_softmax(logits, 1, false);
    auto [loss, totalWeight] = at::nll_loss_forward(logp, flat, std::nullopt, at::Reduction::Mean, ignoreIndex);
    ctx->save_for_backward({h, lnW, lnB, wte, flat, h2, a, mean, rstd, logp, totalWeight});
    return {logits.view({B, T, V}), loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list sv = ctx->get_saved_variables();
    const int64_t ignoreIndex = ctx->saved_data["ignoreIndex"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    const at::Tensor &h = sv[0], &lnW = sv[1], &lnB = sv[2], &wte = sv[3], &flat = sv[4];
    variable_list gin(kHeadInputs + 3);  // + targets, ignoreIndex, eps
    const at::Tensor &dLogits = grads[0], &dLoss = grads[1];
    auto small = ctx->saved_data.find("small");
    if (small != ctx->saved_data.end() && !at::GradMode::is_enabled()) {
      at::AutoDispatchBelowADInplaceOrView belowAutograd;
      SerialIfSmall serial(0);
      std::array<bool, 4> need{};
      for (int i = 0; i < 4; ++i) need[i] = ctx->needs_input_grad(i);
      SmallHeadBackward(h, lnW, wte, flat, ignoreIndex, sv[5], small->second.toTensor(), dLogits, dLoss, need, gin);
      return gin;
    }
    if (at::GradMode::is_enabled()) {
      std::vector<at::Tensor> in{h, lnW, lnB, wte};
      std::vector<at::Tensor> outs = HeadComposed(in, flat, ignoreIndex, eps);
      GradOfComposed(ctx, in, outs,
                     {dLogits.defined() ? dLogits : at::zeros_like(outs[0]),
                      dLoss.defined() ? dLoss : at::zeros_like(outs[1])},
                     gin);
      return gin;
    }
    const at::Tensor &h2 = sv[5], &a = sv[6], &mean = sv[7], &rstd = sv[8], &logp = sv[9], &totalWeight = sv[10];
    at::AutoDispatchBelowADInplaceOrView belowAutograd;  // as in the block's backward
    const int64_t B = h.size(0), T = h.size(1), C = h.size(2);
    SerialIfSmall serial(B * T * C * wte.size(0));
    at::Tensor dl;  // d logits [B*T, V]
    if (dLoss.defined()) {
      at::Tensor dlogp = at::nll_loss_backward(dLoss, logp, flat, std::nullopt, at::Reduction::Mean, ignoreIndex,
                                               totalWeight);
      dl = at::_log_softmax_backward_data(dlogp, logp, 1, logp.scalar_type());
    }
    if (dLogits.defined()) {
      at::Tensor d = dLogits.reshape({B * T, -1});
      dl = dl.defined() ? dl.add_(d) : d;
    }
    if (!dl.defined()) return gin;
    if (ctx->needs_input_grad(kHeadWte)) gin[kHeadWte] = Mm(dl.t(), a);
    at::Tensor da = Mm(dl, wte);
    std::array<bool, 3> mask{ctx->needs_input_grad(kHeadH), ctx->needs_input_grad(kHeadLnW),
                             ctx->needs_input_grad(kHeadLnB)};
    auto [dh, dw, db] = at::native_layer_norm_backward(da, h2, {C}, mean, rstd, lnW, lnB, mask);
    if (dh.defined()) gin[kHeadH] = dh.view({B, T, C});
    gin[kHeadLnW] = dw, gin[kHeadLnB] = db;
    return gin;
  }
};

// GPT-2's embeddings: wte[ids] + wpe[past .. past + T), broadcast over the batch, as one node
// instead of three (embedding, narrow, add) in the forward pass and three in the backward pass,
// whose slice and embedding backward each fill a zero tensor the size of their table.
struct GPT2EmbedFn : public torch::autograd::Function<GPT2EmbedFn> {
  static at::Tensor forward(AutogradContext* ctx, at::Tensor wte, at::Tensor wpe, at::Tensor ids, int64_t past) {
    const int64_t B = ids.size(0), T = ids.size(1), C = wte.size(1);
    at::Tensor out = at::empty({B, T, C}, wte.options());
    AT_DISPATCH_FLOATING_TYPES(wte.scalar_type(), "gpt2Embed", [&] {
      const scalar_t *tok = wte.const_data_ptr<scalar_t>(), *pos = wpe.const_data_ptr<scalar_t>() + past * C;
      const int64_t* id = ids.const_data_ptr<int64_t>();
      scalar_t* o = out.mutable_data_ptr<scalar_t>();
      at::parallel_for(0, B * T, 256, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const scalar_t *a = tok + id[r] * C, *b = pos + (r % T) * C;
          scalar_t* y = o + r * C;
          for (int64_t c = 0; c < C; ++c) y[c] = a[c] + b[c];
        }
      });
    });
    ctx->save_for_backward({wte, wpe, ids});
    ctx->saved_data["past"] = past;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list sv = ctx->get_saved_variables();
    const at::Tensor &wte = sv[0], &wpe = sv[1], &ids = sv[2];
    const int64_t past = ctx->saved_data["past"].toInt();
    variable_list gin(4);  // wte, wpe (+ ids, past)
    const int64_t B = ids.size(0), T = ids.size(1), C = wte.size(1);
    if (at::GradMode::is_enabled()) {
      // create_graph: the same sums with differentiable ops.
      at::Tensor d = grads[0].reshape({B * T, C});
      if (ctx->needs_input_grad(0)) gin[0] = at::zeros_like(wte).index_add(0, ids.reshape({B * T}), d);
      if (ctx->needs_input_grad(1)) {
        gin[1] = at::zeros_like(wpe).slice_scatter(grads[0].sum(0), 0, past, past + T);
      }
      return gin;
    }
    at::AutoDispatchBelowADInplaceOrView belowAutograd;  // as in the block's backward
    const at::Tensor d = grads[0].contiguous();
    AT_DISPATCH_FLOATING_TYPES(wte.scalar_type(), "gpt2EmbedBackward", [&] {
      const scalar_t* g = d.const_data_ptr<scalar_t>();
      const int64_t* id = ids.const_data_ptr<int64_t>();
      // Serial, rows in order: the sums do not depend on the thread count.
      if (ctx->needs_input_grad(0)) {
        gin[0] = at::zeros_like(wte);
        scalar_t* dw = gin[0].mutable_data_ptr<scalar_t>();
        for (int64_t r = 0; r < B * T; ++r) {
          scalar_t* y = dw + id[r] * C;
          const scalar_t* x = g + r * C;
          for (int64_t c = 0; c < C; ++c) y[c] += x[c];
        }
      }
      if (ctx->needs_input_grad(1)) {
        gin[1] = at::zeros_like(wpe);
        scalar_t* dp = gin[1].mutable_data_ptr<scalar_t>() + past * C;
        for (int64_t r = 0; r < B * T; ++r) {
          scalar_t* y = dp + (r % T) * C;
          const scalar_t* x = g + r * C;
          for (int64_t c = 0; c < C; ++c) y[c] += x[c];
        }
      }
    });
    return gin;
  }
};

bool FusableDtype(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

bool CpuAutocastOff() { return !at::autocast::is_autocast_enabled(at::kCPU); }

// The block's tensors from a gpt2Block / gpt2BlockProbe call, and whether the fused path applies
// to them: CPU, float32/float64, no autocast, every weight and bias present with GPT-2's shapes.
struct BlockCall {
  std::vector<at::Tensor> in = std::vector<at::Tensor>(kBlockInputs);
  int64_t nHead = 0;
  double eps = 0;
  bool applies = false;
};

BlockCall ReadBlockCall(Args& a) {
  BlockCall c;
  at::Tensor& h = a.T(kH);
  c.in[kH] = h;
  for (int i = kLn1W; i < kBlockInputs; ++i) {
    auto t = a.OptT(i);
    if (t) c.in[i] = *t;
  }
  c.nHead = a.I(kBlockInputs);
  c.eps = a.D(kBlockInputs + 1);
  bool ok = h.dim() == 3 && h.device().is_cpu() && FusableDtype(h) && c.nHead > 0 && h.size(2) % c.nHead == 0 &&
            h.size(1) > 0 && CpuAutocastOff();
  const int64_t C = ok ? h.size(2) : 0;
  const int64_t expectIn[kBlockInputs] = {0, C, C, C, 3 * C, C, C, C, C, C, 4 * C, 4 * C, C};
  const int64_t expectOut[kBlockInputs] = {0, 0, 0, 3 * C, 0, C, 0, 0, 0, 4 * C, 0, C, 0};
  // Every weight and bias must be present (autograd's custom nodes take no undefined inputs).
  for (int i = kLn1W; ok && i < kBlockInputs; ++i) {
    const at::Tensor& t = c.in[i];
    ok = t.defined() && t.device().is_cpu() && t.scalar_type() == h.scalar_type() && t.is_contiguous() &&
         (expectOut[i] == 0 ? t.dim() == 1 && t.size(0) == expectIn[i]
                            : t.dim() == 2 && t.size(0) == expectIn[i] && t.size(1) == expectOut[i]);
  }
  c.applies = ok;
  return c;
}

#define BLOCK_ARGS "h,ln1Weight,ln1Bias,attnWeight,attnBias,projWeight,projBias,ln2Weight,ln2Bias,fcWeight,fcBias,mlpWeight,mlpBias,nHead,eps"

// gpt2Block(h, ln1w, ln1b, attnW, attnB, projW, projB, ln2w, ln2b, fcW, fcB, mlpW, mlpB, nHead, eps)
// -> Tensor [B, T, C], or undefined where the fused path does not apply.
Napi::Value Gpt2Block(const Napi::CallbackInfo& info) {
  return Guarded(info, "gpt2Block", [&]() -> Napi::Value {
    Args a(info, "gpt2Block", BLOCK_ARGS);
    BlockCall c = ReadBlockCall(a);
    if (!c.applies) return info.Env().Undefined();
    const auto& in = c.in;
    return ToJS(info.Env(), GPT2BlockFn::apply(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], in[9],
                                               in[10], in[11], in[12], c.nHead, c.eps));
  });
}

// gpt2BlockProbe(<gpt2Block's arguments>, probeRows, gradIn | null, gradOut, paramNorms)
// -> [out [B, T, C], attnOut [r, T, C], mlpOut [r, T, C], firstKeyAttention [r, H, T]], or
// undefined where the fused path does not apply. The last r = probeRows windows of h are the
// probe: no parameter gradient includes them. The backward pass writes ∂/∂out of the probe rows
// into gradOut [r, T, C], ∂/∂h into gradIn (when given), and the norms of the probe rows' own
// gradients of the 12 weights and biases into paramNorms [12].
Napi::Value Gpt2BlockProbe(const Napi::CallbackInfo& info) {
  return Guarded(info, "gpt2BlockProbe", [&]() -> Napi::Value {
    Args a(info, "gpt2BlockProbe", BLOCK_ARGS ",probeRows,gradIn,gradOut,paramNorms");
    BlockCall c = ReadBlockCall(a);
    const at::Tensor& h = c.in[kH];
    ProbeSinks sinks;
    sinks.rows = a.I(kBlockInputs + 2);
    auto gradIn = a.OptT(kBlockInputs + 3);
    sinks.gradOut = a.T(kBlockInputs + 4);
    sinks.paramNorms = a.T(kBlockInputs + 5);
    if (h.dim() != 3 || sinks.rows < 1 || sinks.rows > h.size(0)) {
      throw ArgError("gpt2BlockProbe: probeRows must be at least 1 and at most the batch (" +
                     std::to_string(h.dim() == 3 ? h.size(0) : 0) + "), got " + std::to_string(sinks.rows));
    }
    if (gradIn) sinks.gradIn = *gradIn;
    auto sink = [&](const at::Tensor& t, const char* name) {
      const bool ok = t.device().is_cpu() && t.scalar_type() == h.scalar_type() && t.is_contiguous() && t.dim() == 3 &&
                      t.size(0) == sinks.rows && t.size(1) == h.size(1) && t.size(2) == h.size(2);
      if (!ok) throw ArgError(std::string("gpt2BlockProbe: ") + name + " must be a contiguous CPU tensor [" +
                              std::to_string(sinks.rows) + ", " + std::to_string(h.size(1)) + ", " +
                              std::to_string(h.size(2)) + "] of h's dtype");
    };
    if (sinks.gradIn.defined()) sink(sinks.gradIn, "gradIn");
    sink(sinks.gradOut, "gradOut");
    const at::Tensor& pn = sinks.paramNorms;
    if (!(pn.device().is_cpu() && pn.scalar_type() == h.scalar_type() && pn.dim() == 1 &&
          pn.size(0) == kBlockInputs - 1)) {
      throw ArgError("gpt2BlockProbe: paramNorms must be a CPU tensor [12] of h's dtype");
    }
    if (!c.applies) return info.Env().Undefined();
    const auto& in = c.in;
    variable_list out = GPT2BlockProbeFn::apply(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], in[9],
                                                in[10], in[11], in[12], c.nHead, c.eps, sinks);
    return ToJS(info.Env(), std::vector<at::Tensor>(out.begin(), out.end()));
  });
}

// gpt2Embed(ids, wte, wpe, past) -> wte[ids] + wpe[past .. past + T) [B, T, C], or undefined where
// the fused path does not apply (not CPU, not float32/float64, autocast on, unexpected shapes, an
// id outside the table, positions past its end: the composed ops then report what is wrong).
Napi::Value Gpt2Embed(const Napi::CallbackInfo& info) {
  return Guarded(info, "gpt2Embed", [&]() -> Napi::Value {
    Args a(info, "gpt2Embed", "ids,wte,wpe,past");
    at::Tensor& ids = a.T(0);
    at::Tensor& wte = a.T(1);
    at::Tensor& wpe = a.T(2);
    const int64_t past = a.I(3);
    const bool shapes = ids.dim() == 2 && ids.scalar_type() == at::kLong && ids.device().is_cpu() && ids.is_contiguous() &&
                        wte.dim() == 2 && wpe.dim() == 2 && wte.size(1) == wpe.size(1) && wte.device().is_cpu() &&
                        wpe.device().is_cpu() && FusableDtype(wte) && wpe.scalar_type() == wte.scalar_type() &&
                        wte.is_contiguous() && wpe.is_contiguous() && CpuAutocastOff() && past >= 0 &&
                        past + ids.size(1) <= wpe.size(0) && ids.numel() > 0;
    if (!shapes) return info.Env().Undefined();
    const int64_t* id = ids.const_data_ptr<int64_t>();
    for (int64_t i = 0, n = ids.numel(), V = wte.size(0); i < n; ++i) {
      if (id[i] < 0 || id[i] >= V) return info.Env().Undefined();
    }
    return ToJS(info.Env(), GPT2EmbedFn::apply(wte, wpe, ids, past));
  });
}

// gpt2HeadLoss(h, lnWeight, lnBias, wte, targets, ignoreIndex, eps) -> [logits, loss], or undefined
// where the fused path does not apply.
Napi::Value Gpt2HeadLoss(const Napi::CallbackInfo& info) {
  return Guarded(info, "gpt2HeadLoss", [&]() -> Napi::Value {
    Args a(info, "gpt2HeadLoss", "h,lnWeight,lnBias,wte,targets,ignoreIndex,eps");
    at::Tensor& h = a.T(0);
    auto lnW = a.OptT(1), lnB = a.OptT(2);
    at::Tensor& wte = a.T(3);
    at::Tensor& targets = a.T(4);
    const int64_t ignoreIndex = a.I(5);
    const double eps = a.D(6);
    auto same = [&](const std::optional<at::Tensor>& t, int64_t n) {
      return t && t->device().is_cpu() && t->scalar_type() == h.scalar_type() && t->dim() == 1 && t->size(0) == n;
    };
    const bool ok = h.dim() == 3 && h.device().is_cpu() && FusableDtype(h) && h.size(0) * h.size(1) > 0 &&
                    CpuAutocastOff() && same(lnW, h.size(2)) && same(lnB, h.size(2)) && wte.dim() == 2 &&
                    wte.size(1) == h.size(2) && wte.size(0) > 0 && wte.device().is_cpu() &&
                    wte.scalar_type() == h.scalar_type() && targets.scalar_type() == at::kLong &&
                    targets.device().is_cpu() && targets.dim() == 2 && targets.size(0) == h.size(0) &&
                    targets.size(1) == h.size(1);
    if (!ok) return info.Env().Undefined();
    variable_list out = GPT2HeadLossFn::apply(h, *lnW, *lnB, wte, targets, ignoreIndex, eps);
    return ToJS(info.Env(), std::vector<at::Tensor>{out[0], out[1]});
  });
}

// smallBlockApplies(h, nHead) -> whether a fused block on h takes the small path (small_gpt2.cc):
// for tests and benchmarks that must know which path they measure.
Napi::Value SmallBlockApplies(const Napi::CallbackInfo& info) {
  return Guarded(info, "smallBlockApplies", [&]() -> Napi::Value {
    Args a(info, "smallBlockApplies", "h,nHead");
    return Napi::Boolean::New(info.Env(), SmallBlockFits(a.T(0), a.I(1)));
  });
}

}  // namespace

void RegisterFused(Napi::Env env, Napi::Object exports) {
  Napi::Object fused = Napi::Object::New(env);
  fused.Set("gpt2Block", Napi::Function::New(env, Gpt2Block, "gpt2Block"));
  fused.Set("gpt2BlockProbe", Napi::Function::New(env, Gpt2BlockProbe, "gpt2BlockProbe"));
  fused.Set("gpt2HeadLoss", Napi::Function::New(env, Gpt2HeadLoss, "gpt2HeadLoss"));
  fused.Set("gpt2Embed", Napi::Function::New(env, Gpt2Embed, "gpt2Embed"));
  fused.Set("smallBlockApplies", Napi::Function::New(env, SmallBlockApplies, "smallBlockApplies"));
  exports.Set("fused", fused);
}

}  // namespace innerloop
