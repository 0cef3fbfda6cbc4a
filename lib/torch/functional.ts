// torch.nn.functional: the neural-network ops, with PyTorch's argument order
// and optional arguments in an options object.
import { aten } from "./aten.js";
import { ops } from "./native.js";
import type { Tensor } from "./tensor.js";
import type { DType } from "./types.js";

export function relu(x: Tensor): Tensor { return ops.relu(x); }
/** GELU; approximate 'tanh' is GPT-2's gelu_new. */
export function gelu(x: Tensor, opts?: { approximate?: "none" | "tanh" }): Tensor { return ops.gelu(x, opts?.approximate ?? "none"); }
export function silu(x: Tensor): Tensor { return ops.silu(x); }
export function sigmoid(x: Tensor): Tensor { return ops.sigmoid(x); }
export function tanh(x: Tensor): Tensor { return ops.tanh(x); }
export function softmax(x: Tensor, dim: number, opts?: { dtype?: DType }): Tensor { return ops.softmax(x, dim, opts?.dtype); }
export function logSoftmax(x: Tensor, dim: number, opts?: { dtype?: DType }): Tensor { return ops.logSoftmax(x, dim, opts?.dtype); }
export function layerNorm(x: Tensor, normalizedShape: number[], opts?: { weight?: Tensor | null; bias?: Tensor | null; eps?: number }): Tensor {
  return ops.layerNorm(x, normalizedShape, opts?.weight, opts?.bias, opts?.eps ?? 1e-5);
}
export function rmsNorm(x: Tensor, normalizedShape: number[], opts?: { weight?: Tensor | null; eps?: number }): Tensor {
  return ops.rmsNorm(x, normalizedShape, opts?.weight, opts?.eps);
}
/** Rows of `weight` picked by the integer tensor `input`. */
export function embedding(input: Tensor, weight: Tensor): Tensor { return ops.embedding(input, weight); }
export function dropout(x: Tensor, opts?: { p?: number; training?: boolean }): Tensor {
  const p = opts?.p ?? 0.5;
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return ops.dropout(x, p, opts?.training ?? true);
}
/** x @ weight^T + bias, weight of shape [out, in]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor { return ops.linear(x, weight, bias); }
/** Cross-entropy of logits [N, C] (or [N, C, ...]) against class indices [N]. */
export function crossEntropy(
  input: Tensor,
  target: Tensor,
  opts?: { weight?: Tensor | null; ignoreIndex?: number; reduction?: "mean" | "sum" | "none"; labelSmoothing?: number },
): Tensor {
  return ops.crossEntropy(input, target, opts?.weight, opts?.reduction ?? "mean", opts?.ignoreIndex ?? -100, opts?.labelSmoothing ?? 0);
}
/** softmax(q k^T * scale + mask) v, with the flash / memory-efficient kernels where they apply. */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts?: { attnMask?: Tensor | null; dropoutP?: number; isCausal?: boolean; scale?: number },
): Tensor {
  return ops.scaledDotProductAttention(q, k, v, opts?.attnMask, opts?.dropoutP ?? 0, opts?.isCausal ?? false, opts?.scale);
}
export function oneHot(x: Tensor, numClasses = -1): Tensor { return ops.oneHot(x, numClasses); }

/** Cosine similarity along `dim` (default 1), as F.cosine_similarity. */
export function cosineSimilarity(x1: Tensor, x2: Tensor, opts?: { dim?: number; eps?: number }): Tensor {
  return aten.cosine_similarity(x1, x2, opts?.dim ?? 1, opts?.eps ?? 1e-8);
}

/** ATen's reduction codes (at::Reduction). */
const REDUCTIONS = { none: 0, mean: 1, sum: 2 } as const;

/** Mean squared error, as F.mse_loss. */
export function mseLoss(input: Tensor, target: Tensor, opts?: { reduction?: "mean" | "sum" | "none" }): Tensor {
  const r = opts?.reduction ?? "mean";
  if (!Object.prototype.hasOwnProperty.call(REDUCTIONS, r)) {
    throw new TypeError(`mseLoss: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(r)}`);
  }
  return aten.mse_loss(input, target, REDUCTIONS[r]);
}
