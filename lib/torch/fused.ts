// Native whole-model optimizer steps and gradient utilities: one call per step
// runs libtorch's fused / foreach kernels over every parameter.
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";
import { sameItems } from "../util/arrays.js";

export interface AdamWStepOptions {
  /** A number, or a 0-dim tensor that the kernel reads when it runs (what a captured step needs). */
  lr: number | Tensor;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /**
   * Add 1 to the step tensors on their device before the update (a step tensor shared by several
   * parameters counts once). Without it the caller has counted the step already, as torch.optim does.
   */
  incrementSteps?: boolean;
}

// Lists passed again and again (a model's parameters, an optimizer's state, every step) are handed
// to the addon once: from the second call with the same array holding the same tensors, the call
// passes a native handle to the list instead (reading an array costs a property read and an unwrap
// per element, about 0.2 us each). The handle references the tensors' JS objects, not their memory:
// a tensor disposed since is reported as disposed, as in the array. It lives as long as the array.
interface ListEntry {
  items: Tensor[];
  handle: unknown;
}
const listHandles = new WeakMap<readonly Tensor[], ListEntry>();

/** `list` itself, or the native handle of a list seen before with the same tensors. */
function listArg(list: Tensor[]): unknown {
  if (!Array.isArray(list)) return list;  // the addon names what is wrong
  const e = listHandles.get(list);
  if (e !== undefined && sameItems(e.items, list)) {
    if (e.handle === null) {
      try {
        e.handle = native.tensorList(list);
      } catch {
        return list;  // a disposed or foreign element: the call itself reports it
      }
    }
    return e.handle;
  }
  listHandles.set(list, { items: list.slice(), handle: null });
  return list;
}

/**
 * One AdamW step (torch's fused kernel) over params with gradients; state tensors are updated in
 * place. `steps`: each parameter's step count as a float32 scalar tensor on its device, or one
 * number for all (the count of this step, already incremented; not with incrementSteps).
 */
export function fusedAdamW(params: Tensor[], expAvgs: Tensor[], expAvgSqs: Tensor[], steps: Tensor[] | number, o: AdamWStepOptions): void {
  native.fusedAdamW(listArg(params), listArg(expAvgs), listArg(expAvgSqs), typeof steps === "number" ? steps : listArg(steps), o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.incrementSteps === true);
}

export interface SgdStepOptions { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }

/** One SGD step; momentumBuffers are used when momentum != 0 (firstStep initialises them). */
export function sgdStep(params: Tensor[], momentumBuffers: Tensor[] | null, o: SgdStepOptions, firstStep: boolean): void {
  native.sgd(params, momentumBuffers, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, firstStep);
}

/** Scales gradients so their total norm is at most maxNorm; returns the norm before clipping (0-dim tensor, not synchronised). */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): Tensor {
  return native.clipGradNorm(listArg(params), maxNorm, normType);
}

/** Sets every parameter's gradient to null. */
export function zeroGrad(params: Tensor[]): void { native.zeroGrad(listArg(params)); }

/** Which parameters have a gradient (without wrapping each gradient). */
export function hasGrads(params: Tensor[]): boolean[] { return native.hasGrads(listArg(params)); }

// ---------------------------------------------------------------------------
// Fused training paths for hot blocks (native/fused.cc): one autograd node with a hand-written
// backward where PyTorch would record a node per op. They apply on the CPU in float32/float64
// without autocast; elsewhere the native call answers `undefined` and the caller composes the
// same computation from ordinary ops.

let fusedPaths = true;

/** Turns the fused block paths on or off (on by default); off, models compose every op. */
export function setFusedPaths(enabled: boolean): void { fusedPaths = enabled; }
/** Whether models may use the fused paths. */
export function fusedPathsEnabled(): boolean { return fusedPaths; }

/** Weights of one pre-LayerNorm GPT-2 block; Conv1D layout ([in, out]); null where a bias is absent. */
export interface GPT2BlockWeights {
  ln1Weight: Tensor | null; ln1Bias: Tensor | null;
  attnWeight: Tensor; attnBias: Tensor | null;
  projWeight: Tensor; projBias: Tensor | null;
  ln2Weight: Tensor | null; ln2Bias: Tensor | null;
  fcWeight: Tensor; fcBias: Tensor | null;
  mlpWeight: Tensor; mlpBias: Tensor | null;
}

/**
 * h + attn(ln_1(h)), then + mlp(ln_2(.)) (causal attention, tanh GELU, no dropout) as one autograd
 * node, or undefined where the fused path does not apply (or is turned off).
 */
export function gpt2Block(h: Tensor, w: GPT2BlockWeights, nHead: number, eps: number): Tensor | undefined {
  if (!fusedPaths) return undefined;
  return native.fused.gpt2Block(h, w.ln1Weight, w.ln1Bias, w.attnWeight, w.attnBias, w.projWeight, w.projBias,
    w.ln2Weight, w.ln2Bias, w.fcWeight, w.fcBias, w.mlpWeight, w.mlpBias, nHead, eps);
}

/**
 * Whether a fused block on h [B, T, C] with nHead heads runs as plain loops (native/small_gpt2.cc,
 * for blocks too small for libtorch's kernels to pay off) rather than on libtorch's kernels.
 */
export function smallBlockApplies(h: Tensor, nHead: number): boolean {
  return native.fused.smallBlockApplies(h, nHead) as boolean;
}

/**
 * GPT-2's embeddings as one autograd node: wte[ids] + wpe[past .. past + T) for int64 ids [B, T],
 * or undefined where the fused path does not apply (or is turned off; or an id or position is out of
 * range, which the composed ops then report).
 */
export function gpt2Embed(ids: Tensor, wte: Tensor, wpe: Tensor, past: number): Tensor | undefined {
  if (!fusedPaths) return undefined;
  return native.fused.gpt2Embed(ids, wte, wpe, past);
}

/**
 * GPT-2's head and loss as one autograd node: final LayerNorm (weight and bias), tied unembedding
 * `wte` [V, C], mean cross-entropy against int64 `targets` [B, T] (positions equal to ignoreIndex
 * are skipped). Returns [logits [B, T, V], loss], or undefined where the fused path does not apply.
 */
export function gpt2HeadLoss(
  h: Tensor, lnWeight: Tensor | null, lnBias: Tensor | null, wte: Tensor, targets: Tensor, ignoreIndex: number, eps: number,
): [Tensor, Tensor] | undefined {
  if (!fusedPaths || lnWeight === null || lnBias === null) return undefined;
  return native.fused.gpt2HeadLoss(h, lnWeight, lnBias, wte, targets, ignoreIndex, eps);
}

/** Where a probed block's backward pass writes what it measures of the probe rows (gpt2BlockProbe). */
export interface GPT2BlockProbeSinks {
  /** Number r of probe windows: the last r rows of the batch. */
  rows: number;
  /** [r, T, C]: receives ∂/∂h of the probe rows (the block's input); null to skip. */
  gradIn: Tensor | null;
  /** [r, T, C]: receives ∂/∂output of the probe rows. */
  gradOut: Tensor;
  /** [12]: receives the norm of the probe rows' own gradient of each weight and bias, in GPT2BlockWeights order. */
  paramNorms: Tensor;
}

/** What a probed block returns besides its output: the probe rows' parts of the update. */
export interface GPT2BlockProbeOutputs {
  /** The block's output for every row [B, T, C] (differentiable). */
  out: Tensor;
  /** Attention output (c_proj, with bias) of the probe rows [r, T, C]. */
  attnOut: Tensor;
  /** MLP output of the probe rows [r, T, C]. */
  mlpOut: Tensor;
  /** Attention of each query on the first key, A[b, head, t, 0], of the probe rows [r, H, T]. */
  firstKeyAttention: Tensor;
}

/**
 * gpt2Block with probe rows: the last `sinks.rows` windows of h are analysed, not trained on. The
 * block's output is the same for every row; the parameter gradients of its backward pass are those
 * of the other rows only, and what it measures of the probe rows goes into `sinks`. Undefined where
 * the fused path does not apply (or is turned off).
 */
export function gpt2BlockProbe(h: Tensor, w: GPT2BlockWeights, nHead: number, eps: number, sinks: GPT2BlockProbeSinks): GPT2BlockProbeOutputs | undefined {
  if (!fusedPaths) return undefined;
  const r = native.fused.gpt2BlockProbe(h, w.ln1Weight, w.ln1Bias, w.attnWeight, w.attnBias, w.projWeight, w.projBias,
    w.ln2Weight, w.ln2Bias, w.fcWeight, w.fcBias, w.mlpWeight, w.mlpBias, nHead, eps, sinks.rows, sinks.gradIn, sinks.gradOut, sinks.paramNorms);
  if (r === undefined) return undefined;
  const [out, attnOut, mlpOut, firstKeyAttention] = r as Tensor[];
  return { out: out!, attnOut: attnOut!, mlpOut: mlpOut!, firstKeyAttention: firstKeyAttention! };
}
