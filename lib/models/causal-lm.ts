// What the rotary-position causal LMs (LLaMA family, GPT-NeoX) share: the forward pass with an
// optional loss, the logit-lens decoder, and generation with a key/value cache. Each architecture
// supplies its embedding, its blocks and its final norm + unembedding; the interface is GPT2's
// (forward(ids, { targets }) -> { logits, loss }, generate, decode, hookPoints, config.nLayer ...),
// so training, sampling and analysis code can take either.

import { torch, F } from "../torch/index.js";
import type { Device, Tensor } from "../torch/index.js";
import { Module } from "../nn/index.js";
import type { Embedding, HookPoint, Linear, ModuleList } from "../nn/index.js";
import { KVCache } from "./kv-cache.js";
import { generateTokens } from "./generate.js";
import type { CausalLMHookName } from "./hook-names.js";
import type { ForwardOptions, ForwardOptionsWithTargets, ForwardResult, ForwardResultWithLoss } from "./gpt2.js";
import type { GenerateOptions } from "./generate.js";
import { RotaryTables } from "./rope.js";
import type { RopeTables } from "./rope.js";

/** Fields every causal LM config has (GPT2Config's names), for code that takes any of them. */
export interface CausalLMConfigBase {
  vocabSize: number;
  /** Longest sequence the model was trained for (max_position_embeddings). */
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
}

/** Per-forward state the blocks share: rotary tables and where the new positions start. */
export interface StepContext {
  rope: RopeTables;
  /** Tables of the local RoPE base for the layers that use it (Gemma 3's sliding layers), else null. */
  localRope: RopeTables | null;
  cache: KVCache | null;
  past: number;
}

/**
 * The attention mask for T new queries after `past` cached keys, optionally restricted to a
 * sliding window of `window` keys (query i sees keys j with i - window < j <= i). Returns SDPA
 * options: isCausal alone where that is exact.
 */
export function attentionOptions(T: number, past: number, device: string, window: number | null): { isCausal?: boolean; attnMask?: Tensor } {
  const S = past + T;
  if (window === null || window >= S) {
    if (past === 0) return { isCausal: true };
    if (T === 1) return {};
    return { attnMask: torch.ones([T, S], { dtype: "bool", device: device as Device }).tril(past) };
  }
  // Causal (j <= past + i) and inside the window (j > past + i - window).
  const ones = torch.ones([T, S], { dtype: "bool", device: device as Device });
  return { attnMask: ones.tril(past).logicalAnd(ones.triu(past - window + 1)) };
}

/** [B, Hkv, T, D] -> [B, Hkv * rep, T, D], each key/value head serving `rep` query heads. */
export function repeatKV(x: Tensor, rep: number): Tensor {
  if (rep === 1) return x;
  const [B, H, T, D] = x.shape as [number, number, number, number];
  return x.unsqueeze(2).expand([B, H, rep, T, D]).reshape([B, H * rep, T, D]);
}

/** The modules an architecture names its own way (model.norm, gpt_neox.final_layer_norm, ...). */
export interface CausalLMParts {
  embedding: Embedding;
  layers: ModuleList<Module & { forward(h: Tensor, ctx: StepContext): Tensor }>;
  finalNorm: { forward(x: Tensor): Tensor };
  hookNormalized: HookPoint;
  /** The output layer, or null where it is tied to the token embedding. */
  output: Linear | null;
}

export abstract class RotaryCausalLM extends Module {
  abstract readonly config: CausalLMConfigBase;
  /** Rotary tables (not parameters: they never enter the state dict). */
  protected abstract readonly rotary: RotaryTables;
  /** A second set of rotary tables for layers with a local base (Gemma 3), or null. */
  protected readonly localRotary: RotaryTables | null = null;
  /** The architecture's embedding, blocks, final norm and output layer. */
  protected abstract readonly parts: CausalLMParts;
  private readonly lossOpts = { ignoreIndex: -100 };

  /** h^0 = the token embedding (these models have no learned positions). */
  embed(ids: Tensor): Tensor {
    return this.parts.embedding.forward(ids);
  }

  /** Runs every block on h. */
  protected blocksForward(h: Tensor, ctx: StepContext): Tensor {
    for (const block of this.parts.layers) h = block.forward(h, ctx);
    return h;
  }

  protected unembed(x: Tensor): Tensor {
    const { output, embedding } = this.parts;
    return output === null ? F.linear(x, embedding.weight) : output.forward(x);
  }

  /** Final norm (through ln_final.hook_normalized) and unembedding. */
  head(h: Tensor): Tensor {
    return this.unembed(this.parts.hookNormalized.forward(this.parts.finalNorm.forward(h)));
  }

  /** Final norm and unembedding without hook points: decodes any h^l (logit lens). */
  decode(h: Tensor): Tensor {
    return this.unembed(this.parts.finalNorm.forward(h));
  }

  /** Parameters of block l (for per-block gradient norms). */
  blockParameters(l: number): Tensor[] {
    return this.parts.layers.at(l).parameters();
  }

  protected checkIds(ids: Tensor, past = 0): void {
    const shape = ids.shape;
    if (shape.length !== 2) throw new RangeError(`${this.constructor.name}: ids must have shape [B, T], got [${shape.join(", ")}]`);
    if (ids.dtype !== "int64" && ids.dtype !== "int32") throw new TypeError(`${this.constructor.name}: ids must be int64 (or int32), got ${ids.dtype}`);
    void past;
  }

  private context(h: Tensor, past: number, cache: KVCache | null): StepContext {
    const T = h.shape[1]!;
    const localRope = this.localRotary === null ? null : this.localRotary.get(past, T, h.device, h.dtype);
    return { rope: this.rotary.get(past, T, h.device, h.dtype), localRope, cache, past };
  }

  /** Hook points by name (`blocks.{l}.hook_resid_pre`, ...: CausalLMHookName). */
  override hookPoints(): Map<CausalLMHookName, HookPoint> {
    return super.hookPoints() as Map<CausalLMHookName, HookPoint>;
  }

  forward(ids: Tensor, opts: ForwardOptionsWithTargets): ForwardResultWithLoss;
  forward(ids: Tensor, opts?: ForwardOptions): ForwardResult;
  forward(ids: Tensor, opts: ForwardOptions = {}): ForwardResult {
    this.checkIds(ids);
    let h = this.embed(ids);
    h = this.blocksForward(h, this.context(h, 0, null));
    const logits = this.head(h);
    const targets = opts.targets;
    if (targets === undefined) return { logits };
    const flat = logits.flatten(0, 1);
    const loss = F.crossEntropy(flat.dtype === "float32" ? flat : flat.float(), targets.flatten(), this.lossOpts);
    return { logits, loss };
  }

  /** Extends ids [B, T] by `maxNewTokens` tokens, as GPT2.generate does; see generateTokens. */
  generate(ids: Tensor, opts: GenerateOptions): Tensor {
    return generateTokens(this, ids, opts);
  }

  /** Logits [B, V] after the last token of `input` (first token at position `past`); for generateTokens. */
  stepLogits(input: Tensor, past: number, cache: KVCache | null): Tensor {
    let h = this.embed(input);
    h = this.blocksForward(h, this.context(h, past, cache));
    const T = h.shape[1]!;
    return this.head(h.narrow(1, T - 1, 1)).squeeze(1);
  }

  /** Frees parameters and the rotary tables. */
  override dispose(): void {
    this.rotary.dispose();
    this.localRotary?.dispose();
    super.dispose();
  }

  /** Device and dtype of the weights. */
  get weightInfo(): { device: string; dtype: string } {
    const w = this.parts.embedding.weight;
    return { device: w.device, dtype: w.dtype };
  }
}
