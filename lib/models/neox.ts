// GPT-NeoX (EleutherAI; the Pythia suite): pre-LayerNorm blocks (with biases) whose attention
// rotates only the first fraction of each head's dims (partial rotary), a GELU MLP, and either the
// parallel residual h + attn(ln1(h)) + mlp(ln2(h)) or the sequential one of GPT-2. Names are
// transformers' (gpt_neox.layers.{i}.attention.query_key_value.weight, embed_out.weight, ...).
//
// Hook points have GPT-2's names. With the parallel residual, hook_resid_mid is h + attn (what the
// sequential block would pass on; the MLP does not read it), so hook_attn_out + hook_mlp_out is
// still the block's whole update. h^0 is the token embedding.

import { F } from "../torch/index.js";
import type { DType, Tensor } from "../torch/index.js";
import { Module, ModuleList, Embedding, Linear, LayerNorm, HookPoint } from "../nn/index.js";
import { ConfigReader, readActivation, readRope, ropeToHF, activationName } from "./hf-config.js";
import type { Activation, Json } from "./hf-config.js";
import { RotaryCausalLM, attentionOptions } from "./causal-lm.js";
import type { CausalLMConfigBase, CausalLMParts, StepContext } from "./causal-lm.js";
import { RotaryTables, applyRotary } from "./rope.js";
import type { RopeConfig } from "./rope.js";
import { activate, initLikeHF } from "./layers.js";
import type { BuildOptions } from "./llama.js";

export interface NeoXConfig extends CausalLMConfigBase {
  modelType: "gpt_neox";
  intermediateSize: number;
  layerNormEps: number;
  rope: RopeConfig;
  useParallelResidual: boolean;
  attentionBias: boolean;
  hiddenAct: Activation;
  tieWordEmbeddings: boolean;
  initializerRange: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
}

/** Reads a transformers 4.x (rotary_pct, rotary_emb_base) or 5.x (rope_parameters) GPT-NeoX config. */
export function neoxConfigFromHF(json: Json, where = "config.json"): NeoXConfig {
  const c = new ConfigReader(json, where);
  c.only("model_type", ["gpt_neox"]);
  const nEmbd = c.posInt("hidden_size");
  const nHead = c.posInt("num_attention_heads");
  if (nEmbd % nHead !== 0) c.fail("hidden_size", `(${nEmbd}) must be divisible by num_attention_heads (${nHead})`);
  const nPositions = c.posInt("max_position_embeddings", 2048);
  const rope = readRope(c, { defaultTheta: 10000, defaultPartial: 0.25, allowPartial: true, maxPositions: nPositions });
  const id = (k: string) => (typeof c.json[k] === "number" ? (c.json[k] as number) : null);
  return {
    modelType: "gpt_neox",
    vocabSize: c.posInt("vocab_size"),
    nPositions,
    nEmbd,
    nLayer: c.posInt("num_hidden_layers"),
    nHead,
    intermediateSize: c.posInt("intermediate_size"),
    layerNormEps: c.posNum("layer_norm_eps", 1e-5),
    rope,
    useParallelResidual: c.bool("use_parallel_residual", true),
    attentionBias: c.bool("attention_bias", true),
    hiddenAct: readActivation(c, "hidden_act", "gelu"),
    tieWordEmbeddings: c.bool("tie_word_embeddings", false),
    initializerRange: c.has("initializer_range") ? c.posNum("initializer_range") : 0.02,
    bosTokenId: id("bos_token_id"),
    eosTokenId: id("eos_token_id"),
  };
}

export function neoxConfigToHF(c: NeoXConfig, dtype: DType): Json {
  return {
    model_type: "gpt_neox",
    architectures: ["GPTNeoXForCausalLM"],
    vocab_size: c.vocabSize,
    hidden_size: c.nEmbd,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.nLayer,
    num_attention_heads: c.nHead,
    max_position_embeddings: c.nPositions,
    layer_norm_eps: c.layerNormEps,
    ...ropeToHF(c.rope, { neox: true }),
    use_parallel_residual: c.useParallelResidual,
    attention_bias: c.attentionBias,
    hidden_act: activationName(c.hiddenAct),
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    use_cache: true,
    dtype,
    torch_dtype: dtype,
  };
}

class NeoXAttention extends Module {
  readonly queryKeyValue: Linear;
  readonly dense: Linear;
  readonly hookQ: HookPoint;
  readonly hookK: HookPoint;
  private readonly H: number;
  private readonly D: number;

  constructor(c: NeoXConfig, private readonly layer: number, f: BuildOptions) {
    super();
    this.H = c.nHead;
    this.D = c.nEmbd / c.nHead;
    const o = { device: f.device, dtype: f.dtype, bias: c.attentionBias };
    this.queryKeyValue = this.registerModule("query_key_value", new Linear(c.nEmbd, 3 * c.nEmbd, o));
    this.dense = this.registerModule("dense", new Linear(c.nEmbd, c.nEmbd, o));
    this.hookQ = this.registerModule("hook_q", new HookPoint(`blocks.${layer}.attn.hook_q`));
    this.hookK = this.registerModule("hook_k", new HookPoint(`blocks.${layer}.attn.hook_k`));
  }

  forward(x: Tensor, ctx: StepContext): Tensor {
    const [B, T] = x.shape as [number, number];
    const { H, D } = this;
    // The fused projection is laid out per head: [q_h | k_h | v_h] for each head h.
    const qkv = this.queryKeyValue.forward(x).view([B, T, H, 3 * D]).transpose(1, 2);
    const [q0, k0, v0] = qkv.split(D, 3) as [Tensor, Tensor, Tensor];
    const q = this.hookQ.forward(applyRotary(q0, ctx.rope));
    let k = applyRotary(k0, ctx.rope);
    let v = v0;
    if (ctx.cache !== null) [k, v] = ctx.cache.update(this.layer, k, v);
    k = this.hookK.forward(k);
    const y = F.scaledDotProductAttention(q, k, v, attentionOptions(T, ctx.past, x.device, null));
    return this.dense.forward(y.transpose(1, 2).reshape([B, T, H * D]));
  }
}

class NeoXMLP extends Module {
  readonly denseHTo4h: Linear;
  readonly dense4hToH: Linear;

  constructor(c: NeoXConfig, f: BuildOptions, private readonly act: Activation) {
    super();
    const o = { device: f.device, dtype: f.dtype };
    this.denseHTo4h = this.registerModule("dense_h_to_4h", new Linear(c.nEmbd, c.intermediateSize, o));
    this.dense4hToH = this.registerModule("dense_4h_to_h", new Linear(c.intermediateSize, c.nEmbd, o));
  }

  forward(x: Tensor): Tensor {
    return this.dense4hToH.forward(activate(this.denseHTo4h.forward(x), this.act));
  }
}

export class NeoXBlock extends Module {
  readonly inputLayernorm: LayerNorm;
  readonly postAttentionLayernorm: LayerNorm;
  readonly attention: NeoXAttention;
  readonly mlp: NeoXMLP;
  readonly hookResidPre: HookPoint;
  readonly hookAttnOut: HookPoint;
  readonly hookResidMid: HookPoint;
  readonly hookMlpOut: HookPoint;
  readonly hookResidPost: HookPoint;
  private readonly parallel: boolean;

  constructor(c: NeoXConfig, readonly layer: number, f: BuildOptions) {
    super();
    const ln = { eps: c.layerNormEps, device: f.device, dtype: f.dtype };
    this.parallel = c.useParallelResidual;
    this.inputLayernorm = this.registerModule("input_layernorm", new LayerNorm(c.nEmbd, ln));
    this.postAttentionLayernorm = this.registerModule("post_attention_layernorm", new LayerNorm(c.nEmbd, ln));
    this.attention = this.registerModule("attention", new NeoXAttention(c, layer, f));
    this.mlp = this.registerModule("mlp", new NeoXMLP(c, f, c.hiddenAct));
    const hook = (n: string) => this.registerModule(n, new HookPoint(`blocks.${layer}.${n}`));
    this.hookResidPre = hook("hook_resid_pre");
    this.hookAttnOut = hook("hook_attn_out");
    this.hookResidMid = hook("hook_resid_mid");
    this.hookMlpOut = hook("hook_mlp_out");
    this.hookResidPost = hook("hook_resid_post");
  }

  forward(h: Tensor, ctx: StepContext): Tensor {
    h = this.hookResidPre.forward(h);
    const a = this.hookAttnOut.forward(this.attention.forward(this.inputLayernorm.forward(h), ctx));
    const mid = this.hookResidMid.forward(h.add(a));
    const m = this.hookMlpOut.forward(this.mlp.forward(this.postAttentionLayernorm.forward(this.parallel ? h : mid)));
    // Parallel: mlp_out + attn_out + h, summed in transformers' order.
    return this.hookResidPost.forward(this.parallel ? m.add(a).add(h) : m.add(mid));
  }
}

class NeoXBody extends Module {
  readonly embedIn: Embedding;
  readonly layers: ModuleList<NeoXBlock>;
  readonly finalLayerNorm: LayerNorm;
  readonly hookNormalized: HookPoint;

  constructor(c: NeoXConfig, f: BuildOptions) {
    super();
    this.embedIn = this.registerModule("embed_in", new Embedding(c.vocabSize, c.nEmbd, { device: f.device, dtype: f.dtype }));
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: c.nLayer }, (_, i) => new NeoXBlock(c, i, f))));
    this.finalLayerNorm = this.registerModule("final_layer_norm", new LayerNorm(c.nEmbd, { eps: c.layerNormEps, device: f.device, dtype: f.dtype }));
    this.hookNormalized = this.registerModule("hook_normalized", new HookPoint("ln_final.hook_normalized"));
  }
}

export class GPTNeoX extends RotaryCausalLM {
  readonly config: NeoXConfig;
  readonly gptNeox: NeoXBody;
  readonly embedOut: Linear | null;
  protected readonly rotary: RotaryTables;
  protected readonly parts: CausalLMParts;

  constructor(config: NeoXConfig, opts: BuildOptions = {}) {
    super();
    this.config = config;
    this.gptNeox = this.registerModule("gpt_neox", new NeoXBody(config, opts));
    this.embedOut = config.tieWordEmbeddings
      ? null
      : this.registerModule("embed_out", new Linear(config.nEmbd, config.vocabSize, { device: opts.device, dtype: opts.dtype, bias: false }));
    this.rotary = new RotaryTables(config.rope, config.nEmbd / config.nHead);
    const m = this.gptNeox;
    this.parts = { embedding: m.embedIn, layers: m.layers, finalNorm: m.finalLayerNorm, hookNormalized: m.hookNormalized, output: this.embedOut };
    if (opts.init ?? true) initLikeHF(this, config.initializerRange);
  }

  get blocks(): ModuleList<NeoXBlock> {
    return this.gptNeox.layers;
  }

  toHFConfig(): Json {
    return neoxConfigToHF(this.config, this.gptNeox.embedIn.weight.dtype);
  }
}
