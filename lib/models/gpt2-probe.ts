// A GPT-2 training forward pass that carries probe windows along (what makes analysis snapshots
// during training cheap). The probe windows, the held-out windows of a snapshot, are appended to
// the training batch as extra rows and go through the same fused kernels, so a snapshot of one
// window costs about one more row of the step instead of a forward and backward pass of its own,
// which on a small model and a CPU costs far more than its share of the work (small kernels, one
// thread's worth of parallelism). The training rows are computed exactly as without the probe:
//   - the probe rows' embeddings are detached, and the final norm and unembedding of the probe rows
//     use detached weights, so no parameter outside the blocks sees the probe;
//   - each fused block computes its parameter gradients from the training rows only
//     (native/fused.cc, GPT2BlockProbeFn), and reduces the probe rows' own parameter gradients to
//     their norms;
//   - rows never mix: attention is within a window, LayerNorm within a token.
// The differentiated scalar is the training loss plus the probe loss ℓ (the sum of the probe
// windows' token losses): the probe rows' gradients are then exactly ∂ℓ/∂h, the training rows'
// exactly those of the training loss.

import { torch, F, Tensor } from "../torch/index.js";
import * as kernels from "../torch/internal.js";
import { HookPoint } from "../nn/index.js";
import type { GPT2 } from "./gpt2.js";

/** What a probed forward pass records of the probe windows (r windows of T tokens, width C). */
export interface ProbeCapture {
  /** h^0 … h^L [r, T, C] (no gradient). */
  resid: Tensor[];
  /** ∂ℓ/∂h^l [r, T, C], l = 0 … L: written by the backward pass. */
  residGrads: Tensor[];
  /** Each block's attention output and MLP output [r, T, C]. */
  attnOut: Tensor[];
  mlpOut: Tensor[];
  /** Each block's attention of every query on the first key [r, H, T]. */
  firstKeyAttention: Tensor[];
  /** [L, 12]: the norm of ∂ℓ/∂p for every parameter p of each block (in blockParameters order): written by the backward pass. */
  paramGradNorms: Tensor;
  /** Logits of the probe windows [r, T, V] (no gradient). */
  logits: Tensor;
  /** ℓ, the summed cross-entropy of the probe windows (no gradient). */
  loss: Tensor;
}

export interface ProbedForward {
  /** The training batch's mean loss: the same value and gradients as `model.forward(ids, { targets }).loss`. */
  loss: Tensor;
  /** ℓ of the probe windows: add it to the differentiated loss so that the backward pass fills the capture. */
  probeLoss: Tensor;
  capture: ProbeCapture;
}

/**
 * Whether `forwardProbed` can run on this model now: the fused block path applies (CPU, float32 or
 * float64, fused paths on, no hooks, no dropout in training, no autocast) and the blocks have every
 * weight and bias.
 */
export function probedForwardApplies(model: GPT2): boolean {
  if (!torch.fusedPathsEnabled() || HookPoint.activeHooks !== 0) return false;
  if (model.training && model.config.dropout > 0) return false;
  if (model.config.activation !== "gelu_tanh") return false; // the probe kernels compute tanh-GELU
  const lnF = model.transformer.lnF;
  if (lnF.weight === null || lnF.bias === null) return false;
  const wte = model.transformer.wte.weight;
  if (wte.device !== "cpu" || (wte.dtype !== "float32" && wte.dtype !== "float64")) return false;
  return [...model.blocks].every((b) => Object.values(b.fusedWeights()).every((t) => t !== null));
}

/**
 * The training forward pass of `ids`/`targets` [B, T] with the probe windows `probeIds`/
 * `probeTargets` [r, T] riding along; undefined where it does not apply (then nothing was computed).
 */
export function forwardProbed(model: GPT2, ids: Tensor, targets: Tensor, probeIds: Tensor, probeTargets: Tensor): ProbedForward | undefined {
  if (!probedForwardApplies(model)) return undefined;
  const [B, T] = ids.shape as [number, number];
  const r = probeIds.shape[0]!;
  if (probeIds.shape.length !== 2 || probeIds.shape[1] !== T || probeTargets.shape.join(",") !== probeIds.shape.join(",")) {
    throw new RangeError(`forwardProbed: probe ids and targets must both be [r, ${T}], got [${probeIds.shape}] and [${probeTargets.shape}]`);
  }
  const c = model.config;
  const C = c.nEmbd;
  const L = c.nLayer;
  const opts = { dtype: model.transformer.wte.weight.dtype, device: "cpu" as const };
  const residGrads = Array.from({ length: L + 1 }, () => torch.zeros([r, T, C], opts));
  const paramGradNorms = torch.zeros([L, 12], opts);
  const resid: Tensor[] = [];
  const attnOut: Tensor[] = [];
  const mlpOut: Tensor[] = [];
  const firstKeyAttention: Tensor[] = [];
  const probeRows = (h: Tensor) => h.narrow(0, B, r).detach();

  let h = torch.cat([model.embed(ids), model.embed(probeIds).detach()], 0);
  resid.push(probeRows(h));
  for (const [l, block] of [...model.blocks].entries()) {
    const sinks = { rows: r, gradIn: l === 0 ? residGrads[0]! : null, gradOut: residGrads[l + 1]!, paramNorms: paramGradNorms.select(0, l) };
    const out = kernels.gpt2BlockProbe(h, block.fusedWeights(), c.nHead, c.layerNormEpsilon, sinks);
    if (out === undefined) throw new Error(`forwardProbed: the fused block path did not apply to block ${l} (probedForwardApplies said it would)`);
    h = out.out;
    resid.push(probeRows(h));
    attnOut.push(out.attnOut);
    mlpOut.push(out.mlpOut);
    firstKeyAttention.push(out.firstKeyAttention);
  }

  const t = model.transformer;
  const hTrain = h.narrow(0, 0, B);
  const fused = kernels.gpt2HeadLoss(hTrain, t.lnF.weight, t.lnF.bias, t.wte.weight, targets, -100, c.layerNormEpsilon);
  const loss = fused ? fused[1] : F.crossEntropy(model.head(hTrain).flatten(0, 1), targets.flatten());
  // The probe's head: the same final norm and unembedding with detached weights.
  const hProbe = h.narrow(0, B, r);
  const normed = F.layerNorm(hProbe, [C], { weight: t.lnF.weight!.detach(), bias: t.lnF.bias!.detach(), eps: c.layerNormEpsilon });
  const logits = F.linear(normed, t.wte.weight.detach());
  const probeLoss = F.crossEntropy(logits.flatten(0, 1), probeTargets.flatten(), { reduction: "sum" });
  return {
    loss,
    probeLoss,
    capture: { resid, residGrads, attnOut, mlpOut, firstKeyAttention, paramGradNorms, logits: logits.detach(), loss: probeLoss.detach() },
  };
}
