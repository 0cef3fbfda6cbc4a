// GPT-2 (Radford et al. 2019), written to be read: learned position embeddings, pre-LayerNorm
// blocks of causal self-attention and a tanh-GELU MLP, and an output layer tied to the token
// embedding. Parameter names and layouts are Hugging Face's (transformer.h.{i}.attn.c_attn.weight,
// Conv1D weights stored [in, out]), so state dicts load from and save to transformers checkpoints.
//
// Hook points (TransformerLens names) mark the residual stream for analysis; they cost nothing
// while no hook is set and hold no state, so they never appear in the state dict.

import { torch, F } from "../torch/index.js";
import type { Device, DType, Tensor } from "../torch/index.js";
import * as kernels from "../torch/internal.js";
import type { GPT2BlockWeights } from "../torch/internal.js";
import { Module, ModuleList, Embedding, LayerNorm, Dropout, HookPoint, init } from "../nn/index.js";
import { Conv1D } from "./conv1d.js";
import { KVCache } from "./kv-cache.js";
import { generateTokens, type GenerateOptions } from "./generate.js";
import { gpt2Config, toHFConfig } from "./gpt2-config.js";
import type { GPT2Config } from "./gpt2-config.js";
import { activate } from "./layers.js";
import type { Activation } from "./hf-config.js";

export interface GPT2Options {
  device?: Device;
  dtype?: DType;
  /** Seeds the global generator before initialising the weights. */
  seed?: number;
}

export interface ForwardOptions {
  /** Next-token ids [B, T] (int64); positions equal to -100 are ignored. */
  targets?: Tensor;
}

export interface ForwardResult {
  /** [B, T, vocabSize] */
  logits: Tensor;
  /** Mean cross-entropy over the targets (float32 scalar), when targets were given. */
  loss?: Tensor;
}

/** What forward returns when targets were given: the loss is always there. */
export interface ForwardResultWithLoss extends ForwardResult {
  loss: Tensor;
}

/** Options with targets (forward's overload that returns a loss). */
export type ForwardOptionsWithTargets = ForwardOptions & { targets: Tensor };

export type { GenerateOptions } from "./generate.js";
import type { GPT2HookName } from "./hook-names.js";

// [B, T, 3, H, D] -> [3, B, H, T, D]
const QKV_PERM = [2, 0, 3, 1, 4];

class CausalSelfAttention extends Module {
  readonly nHead: number;
  readonly headDim: number;
  readonly cAttn: Conv1D;
  readonly cProj: Conv1D;
  readonly residDropout: Dropout;
  readonly hookQ: HookPoint;
  readonly hookK: HookPoint;
  private readonly nEmbd: number;
  private readonly sdpaTrain: { isCausal: boolean; dropoutP: number };
  private readonly sdpaEval = { isCausal: true, dropoutP: 0 };

  constructor(c: GPT2Config, layer: number) {
    super();
    this.nHead = c.nHead;
    this.nEmbd = c.nEmbd;
    this.headDim = c.nEmbd / c.nHead;
    this.sdpaTrain = { isCausal: true, dropoutP: c.dropout };
    this.cAttn = this.registerModule("c_attn", new Conv1D(c.nEmbd, 3 * c.nEmbd, { bias: c.bias }));
    // Residual projections start smaller: std 0.02 / sqrt(2 nLayer) (GPT-2 paper).
    this.cProj = this.registerModule("c_proj", new Conv1D(c.nEmbd, c.nEmbd, { bias: c.bias, std: 0.02 / Math.sqrt(2 * c.nLayer) }));
    this.residDropout = this.registerModule("resid_dropout", new Dropout(c.dropout));
    this.hookQ = this.registerModule("hook_q", new HookPoint(`blocks.${layer}.attn.hook_q`));
    this.hookK = this.registerModule("hook_k", new HookPoint(`blocks.${layer}.attn.hook_k`));
  }

  /** x [B, T, C] -> [B, T, C]. With a cache, x holds the positions after the `past` cached ones. */
  forward(x: Tensor, layer: number, cache: KVCache | null, past: number): Tensor {
    const [B, T] = x.shape as [number, number, number];
    const { nHead: H, headDim: D, nEmbd: C } = this;
    // c_attn gives [q | k | v] along the last dim; one view and one permute make each of them
    // [B, H, T, D] (views, no copies).
    const qkv = this.cAttn.forward(x).view([B, T, 3, H, D]).permute(QKV_PERM).unbind(0);
    const q = this.hookQ.forward(qkv[0]!);
    let k = this.hookK.forward(qkv[1]!);
    let v = qkv[2]!;
    let y: Tensor;
    if (cache === null) {
      y = F.scaledDotProductAttention(q, k, v, this.training && this.sdpaTrain.dropoutP > 0 ? this.sdpaTrain : this.sdpaEval);
    } else {
      [k, v] = cache.update(layer, k, v);
      y = F.scaledDotProductAttention(q, k, v, decodeAttentionOptions(T, past, x.device));
    }
    return this.residDropout.forward(this.cProj.forward(y.transpose(1, 2).reshape([B, T, C])));
  }
}

/**
 * Attention options when T new queries follow `past` cached keys. isCausal aligns its mask to the
 * top left, which is right only without a past; one query may see every key; otherwise query i
 * sees keys 0 .. past + i.
 */
function decodeAttentionOptions(T: number, past: number, device: string): { isCausal?: boolean; attnMask?: Tensor } {
  if (past === 0) return { isCausal: true };
  if (T === 1) return {};
  return { attnMask: torch.ones([T, past + T], { dtype: "bool", device: device as Device }).tril(past) };
}

class MLP extends Module {
  readonly cFc: Conv1D;
  readonly cProj: Conv1D;
  readonly dropout: Dropout;
  private readonly act: Activation;

  constructor(c: GPT2Config) {
    super();
    this.cFc = this.registerModule("c_fc", new Conv1D(c.nEmbd, 4 * c.nEmbd, { bias: c.bias }));
    this.cProj = this.registerModule("c_proj", new Conv1D(4 * c.nEmbd, c.nEmbd, { bias: c.bias, std: 0.02 / Math.sqrt(2 * c.nLayer) }));
    this.dropout = this.registerModule("dropout", new Dropout(c.dropout));
    this.act = c.activation;
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.cProj.forward(activate(this.cFc.forward(x), this.act)));
  }
}

/** One pre-LN block: h + attn(ln_1(h)), then + mlp(ln_2(.)). */
export class GPT2Block extends Module {
  readonly layer: number;
  readonly ln1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;
  readonly hookResidPre: HookPoint;
  readonly hookAttnOut: HookPoint;
  readonly hookResidMid: HookPoint;
  readonly hookMlpOut: HookPoint;
  readonly hookResidPost: HookPoint;

  private readonly eps: number;
  /** The fused block kernels compute tanh-GELU; other activations take the composed path. */
  readonly fusable: boolean;
  private readonly dropoutP: number;

  constructor(c: GPT2Config, layer: number) {
    super();
    this.layer = layer;
    this.eps = c.layerNormEpsilon;
    this.fusable = c.activation === "gelu_tanh";
    this.dropoutP = c.dropout;
    const ln = { eps: c.layerNormEpsilon, bias: c.bias };
    this.ln1 = this.registerModule("ln_1", new LayerNorm(c.nEmbd, ln));
    this.attn = this.registerModule("attn", new CausalSelfAttention(c, layer));
    this.ln2 = this.registerModule("ln_2", new LayerNorm(c.nEmbd, ln));
    this.mlp = this.registerModule("mlp", new MLP(c));
    const hook = (n: string) => this.registerModule(n, new HookPoint(`blocks.${layer}.${n}`));
    this.hookResidPre = hook("hook_resid_pre");
    this.hookAttnOut = hook("hook_attn_out");
    this.hookResidMid = hook("hook_resid_mid");
    this.hookMlpOut = hook("hook_mlp_out");
    this.hookResidPost = hook("hook_resid_post");
  }

  forward(h: Tensor, cache: KVCache | null = null, past = 0): Tensor {
    return (cache === null ? this.forwardFused(h) : undefined) ?? this.forwardComposed(h, cache, past);
  }

  /** The block op by op, through its hook points. */
  forwardComposed(h: Tensor, cache: KVCache | null = null, past = 0): Tensor {
    h = this.hookResidPre.forward(h);
    const a = this.hookAttnOut.forward(this.attn.forward(this.ln1.forward(h), this.layer, cache, past));
    h = this.hookResidMid.forward(h.add(a));
    const m = this.hookMlpOut.forward(this.mlp.forward(this.ln2.forward(h)));
    return this.hookResidPost.forward(h.add(m));
  }

  /**
   * The block as one fused node (lib/torch/fused.ts) when nothing observes or randomizes its
   * inside (no hook set, no dropout in training) and the fused path applies (CPU, float32 or
   * float64); otherwise undefined. The result and its gradients equal forward's.
   */
  forwardFused(h: Tensor): Tensor | undefined {
    // The fused kernels compute tanh-GELU only.
    if (HookPoint.activeHooks !== 0 || (this.training && this.dropoutP > 0) || !this.fusable) return undefined;
    return kernels.gpt2Block(h, this.fusedWeights(), this.attn.nHead, this.eps);
  }

  /** The block's weights for the fused paths; read at each call: parameters can be replaced (load, to(), user code). */
  fusedWeights(): GPT2BlockWeights {
    const { ln1, attn, ln2, mlp } = this;
    return {
      ln1Weight: ln1.weight, ln1Bias: ln1.bias,
      attnWeight: attn.cAttn.weight, attnBias: attn.cAttn.bias,
      projWeight: attn.cProj.weight, projBias: attn.cProj.bias,
      ln2Weight: ln2.weight, ln2Bias: ln2.bias,
      fcWeight: mlp.cFc.weight, fcBias: mlp.cFc.bias,
      mlpWeight: mlp.cProj.weight, mlpBias: mlp.cProj.bias,
    };
  }
}

/** The `transformer` submodule: embeddings, blocks and the final LayerNorm. */
class GPT2Body extends Module {
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Dropout;
  readonly h: ModuleList<GPT2Block>;
  readonly lnF: LayerNorm;
  readonly hookNormalized: HookPoint;

  constructor(c: GPT2Config) {
    super();
    this.wte = this.registerModule("wte", new Embedding(c.vocabSize, c.nEmbd));
    this.wpe = this.registerModule("wpe", new Embedding(c.nPositions, c.nEmbd));
    init.normal_(this.wte.weight, 0, 0.02);
    init.normal_(this.wpe.weight, 0, 0.02);
    this.drop = this.registerModule("drop", new Dropout(c.dropout));
    this.h = this.registerModule("h", new ModuleList(Array.from({ length: c.nLayer }, (_, i) => new GPT2Block(c, i))));
    this.lnF = this.registerModule("ln_f", new LayerNorm(c.nEmbd, { eps: c.layerNormEpsilon, bias: c.bias }));
    this.hookNormalized = this.registerModule("hook_normalized", new HookPoint("ln_final.hook_normalized"));
  }
}

export class GPT2 extends Module {
  readonly config: GPT2Config;
  readonly transformer: GPT2Body;
  private readonly lossOpts = { ignoreIndex: -100 };

  constructor(config: Partial<GPT2Config> = {}, opts: GPT2Options = {}) {
    super();
    this.config = gpt2Config(config);
    if (opts.seed !== undefined) torch.manualSeed(opts.seed);
    // Weights are drawn on the CPU in float32, so a seed gives the same model on every device.
    this.transformer = this.registerModule("transformer", new GPT2Body(this.config));
    if (opts.device !== undefined || opts.dtype !== undefined) this.to({ device: opts.device, dtype: opts.dtype });
  }

  /** The blocks, in order. */
  get blocks(): ModuleList<GPT2Block> {
    return this.transformer.h;
  }

  /** h^0: token plus position embeddings of ids [B, T] starting at position `past`. */
  embed(ids: Tensor, past = 0): Tensor {
    const shape = ids.shape;
    if (shape.length !== 2) throw new RangeError(`GPT2: ids must have shape [B, T], got [${shape.join(", ")}]`);
    const T = shape[1]!;
    if (past + T > this.config.nPositions) {
      throw new RangeError(`GPT2: sequence length ${past + T} exceeds nPositions (${this.config.nPositions})`);
    }
    const { wte, wpe, drop } = this.transformer;
    // One fused node where it applies (lib/torch/fused.ts); otherwise the position rows
    // past .. past+T-1 broadcast over the batch (no position-id tensor needed).
    const e = kernels.gpt2Embed(ids, wte.weight, wpe.weight, past) ?? wte.forward(ids).add(wpe.weight.narrow(0, past, T));
    return drop.forward(e);
  }

  /** Logits from the residual stream: final LayerNorm (hook_normalized), then the tied unembedding. */
  head(h: Tensor): Tensor {
    const t = this.transformer;
    return F.linear(t.hookNormalized.forward(t.lnF.forward(h)), t.wte.weight);
  }

  /** Like `head` but without the hook point: decodes any h^l (logit lens). */
  decode(h: Tensor): Tensor {
    const t = this.transformer;
    return F.linear(t.lnF.forward(h), t.wte.weight);
  }

  /** Hook points by name (`blocks.{l}.hook_resid_pre`, ...: GPT2HookName). */
  override hookPoints(): Map<GPT2HookName, HookPoint> {
    return super.hookPoints() as Map<GPT2HookName, HookPoint>;
  }

  forward(ids: Tensor, opts: ForwardOptionsWithTargets): ForwardResultWithLoss;
  forward(ids: Tensor, opts?: ForwardOptions): ForwardResult;
  forward(ids: Tensor, opts: ForwardOptions = {}): ForwardResult {
    const targets = opts.targets;
    if (targets !== undefined) checkTargets(ids, targets);
    let h = this.embed(ids);
    if (HookPoint.activeHooks === 0) {
      // No hook can hold an activation: release each block's intermediates when the block is done
      // (autograd keeps what backward needs), as reference counting does in PyTorch. This keeps the
      // peak memory of a training step at PyTorch's instead of holding every temporary to the end.
      for (const block of this.transformer.h) {
        const next = block.forwardFused(h) ?? torch.tidy(() => block.forwardComposed(h));
        h.dispose();
        h = next;
      }
    } else {
      for (const block of this.transformer.h) h = block.forward(h);
    }
    if (targets !== undefined && HookPoint.activeHooks === 0) {
      // The head and the loss as one fused node where that applies (lib/torch/fused.ts).
      const t = this.transformer;
      const fused = kernels.gpt2HeadLoss(h, t.lnF.weight, t.lnF.bias, t.wte.weight, targets, this.lossOpts.ignoreIndex, this.config.layerNormEpsilon);
      if (fused !== undefined) return { logits: fused[0], loss: fused[1] };
    }
    const logits = this.head(h);
    if (targets === undefined) return { logits };
    // A 16-bit model's loss is computed in float32 (as autocast would do); that copy is not needed
    // by backward, so it is released right away.
    const flat = logits.flatten(0, 1);
    const dt = flat.dtype;
    const wide = dt === "bfloat16" || dt === "float16" ? flat.float() : flat;
    const loss = F.crossEntropy(wide, targets.flatten(), this.lossOpts);
    if (wide !== flat) wide.dispose();
    return { logits, loss };
  }

  /**
   * Extends ids [B, T] by `maxNewTokens` tokens, each chosen from the model's next-token
   * distribution (greedy when temperature is 0), with a KV cache; see generateTokens.
   */
  generate(ids: Tensor, opts: GenerateOptions): Tensor {
    return generateTokens(this, ids, opts);
  }

  /** Logits [B, V] after the last token of `input` (first token at position `past`); for generateTokens. */
  stepLogits(input: Tensor, past: number, cache: KVCache | null): Tensor {
    let h = this.embed(input, past);
    for (const block of this.transformer.h) h = block.forward(h, cache, past);
    const T = h.shape[1]!;
    return this.head(h.narrow(1, T - 1, 1)).squeeze(1);
  }

  /** This model's config as a transformers GPT-2 config.json object. */
  toHFConfig(): Record<string, unknown> {
    return toHFConfig(this.config);
  }
}

function checkTargets(ids: Tensor, targets: Tensor): void {
  const ts = targets.shape;
  const is = ids.shape;
  if (ts.length !== 2 || ts[0] !== is[0] || ts[1] !== is[1]) {
    throw new RangeError(`GPT2: targets must have the shape of ids [${is.join(", ")}], got [${ts.join(", ")}]`);
  }
}

