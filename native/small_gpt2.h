// GPT-2's fused training nodes (fused.cc: the block, and the head with its loss) at small sizes,
// on raw buffers: the path they take where they are so small that launching libtorch's kernels
// costs more than their arithmetic (small_gpt2.cc says when, and what it measured).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <vector>

namespace innerloop {

// The block's inputs, in the order of the JS call and of the autograd inputs.
enum BlockInput { kH, kLn1W, kLn1B, kAttnW, kAttnB, kProjW, kProjB, kLn2W, kLn2B, kFcW, kFcB, kMlpW, kMlpB, kBlockInputs };

// Whether the small path takes a block on h [B, T, C] with nHead heads: float32 or float64, below
// the size where libtorch's kernels win, and a BLAS found in this process. The inputs are already
// known to have GPT-2's shapes, contiguous weights, and be on the CPU (fused.cc's ReadBlockCall).
bool SmallBlockFits(const at::Tensor& h, int64_t nHead);

// Where a probed block (fused.cc's gpt2BlockProbe) puts what its backward pass measures of the
// probe rows: the gradient at the block's output and, for the first block, at its input, and the
// norm of the probe rows' own gradient for each of the block's 12 weights and biases (BlockInput
// order).
struct ProbeSinks {
  int64_t rows = 0;  // the last `rows` windows of the batch are the probe
  at::Tensor gradIn, gradOut, paramNorms;
};

// The block's output [B, T, C], and with probeRows > 0 also the probe rows' attention output and
// MLP output [r, T, C] and attention on the first key [r, H, T] (as fused.cc's BlockForward);
// `saved` receives one buffer with every intermediate the backward pass reads. On the calling
// thread. The output rows of the other windows are bitwise those of a call without them.
std::vector<at::Tensor> SmallBlockForward(const std::vector<at::Tensor>& in, int64_t nHead, double eps,
                                          int64_t probeRows, at::Tensor& saved);

// Gradients of the block's inputs for the upstream gradient gradOut, into gin[i] for each input i
// with need[i]; `in` and `saved` as given to and filled by SmallBlockForward. With probe rows
// (sinks.rows > 0) the weight and bias gradients come from the other rows only, bitwise as a call
// without the probe rows would give them, and the probe's measures go to the sinks.
void SmallBlockBackward(const std::vector<at::Tensor>& in, const at::Tensor& saved, const at::Tensor& gradOut,
                        int64_t nHead, const std::array<bool, kBlockInputs>& need, const ProbeSinks& sinks,
                        std::vector<at::Tensor>& gin);

// Whether the small path takes the head (final LayerNorm, logits = a wte^T, mean cross-entropy)
// on h [B, T, C] with a vocabulary of V: float32 or float64, below the size where libtorch's
// kernels win, every target in [0, V) or ignoreIndex (others take libtorch's path, which refuses
// them with its own message). Shapes and devices are already checked (fused.cc).
bool SmallHeadFits(const at::Tensor& h, const at::Tensor& wte, const at::Tensor& targets, int64_t ignoreIndex);

// The head's outputs, logits [B, T, V] and the loss (a scalar); `saved` receives what the backward
// pass reads besides the inputs and the logits.
std::array<at::Tensor, 2> SmallHeadForward(const at::Tensor& h, const at::Tensor& lnW, const at::Tensor& lnB,
                                           const at::Tensor& wte, const at::Tensor& targets, int64_t ignoreIndex,
                                           double eps, at::Tensor& saved);

// Gradients of h, lnW, lnB, wte (into gin[0..3] where need[i]) for upstream dLogits and dLoss,
// either possibly undefined.
void SmallHeadBackward(const at::Tensor& h, const at::Tensor& lnW, const at::Tensor& wte, const at::Tensor& targets,
                       int64_t ignoreIndex, const at::Tensor& logits, const at::Tensor& saved, const at::Tensor& dLogits,
                       const at::Tensor& dLoss, const std::array<bool, 4>& need, std::vector<at::Tensor>& gin);

}  // namespace innerloop
