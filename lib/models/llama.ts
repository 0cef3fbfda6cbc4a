// The LLaMA family (LLaMA 1-3, Mistral, Qwen2): pre-RMSNorm blocks of rotary self-attention with
// grouped key/value heads and a SwiGLU MLP, a final RMSNorm, and an output head that is tied to
// the token embedding or not. Parameter names are transformers' (model.layers.{i}.self_attn.q_proj
// .weight, ...), so state dicts load from and save to Hugging Face checkpoints. Mistral and Qwen2
// differ from LLaMA only in configuration: biases on q/k/v (Qwen2) and a sliding attention window.
//
// Hook points carry GPT-2's names (blocks.{l}.hook_resid_pre, hook_attn_out, hook_resid_mid,
// hook_mlp_out, hook_resid_post, blocks.{l}.attn.hook_q / hook_k, ln_final.hook_normalized), so the
// analysis code runs unchanged. hook_q and hook_k hold the rotated queries and keys, [B, H, T, D],
// keys repeated to all H query heads, so softmax(q k^T / sqrt(D)) are the attention probabilities.
// h^0 is the token embedding (there are no learned positions).

import { F } from "../torch/index.js";
import type { Device, DType, Tensor } from "../torch/index.js";
import { Module, ModuleList, Embedding, Linear, HookPoint } from "../nn/index.js";
import { ConfigReader, readActivation, readRope, ropeToHF, activationName } from "./hf-config.js";
import type { Activation, Json } from "./hf-config.js";
import { showValue } from "./errors.js";
import { RotaryCausalLM, attentionOptions, repeatKV } from "./causal-lm.js";
import type { CausalLMConfigBase, CausalLMParts, StepContext } from "./causal-lm.js";
import { RotaryTables, applyRotary } from "./rope.js";
import type { RopeConfig } from "./rope.js";
import { HFRMSNorm, activate, initLikeHF } from "./layers.js";

export type LlamaModelType = "llama" | "mistral" | "qwen2";

export interface LlamaConfig extends CausalLMConfigBase {
  modelType: LlamaModelType;
  /** hidden_size */
  nEmbd: number;
  /** num_key_value_heads (grouped-query attention when < nHead). */
  nKVHead: number;
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
  rope: RopeConfig;
  tieWordEmbeddings: boolean;
  /** Biases on q_proj, k_proj, v_proj. */
  qkvBias: boolean;
  /** Bias on o_proj. */
  oBias: boolean;
  mlpBias: boolean;
  hiddenAct: Activation;
  /** Per layer: the sliding attention window, or null for full causal attention. */
  slidingWindow: Array<number | null>;
  initializerRange: number;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
}

const ARCH: Record<LlamaModelType, string> = { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM" };

function tokenId(c: ConfigReader, k: string): number | null {
  const v = c.json[k];
  return typeof v === "number" ? v : null;
}

/** Reads a transformers 4.x or 5.x config.json of model_type llama, mistral or qwen2. */
export function llamaConfigFromHF(json: Json, where = "config.json"): LlamaConfig {
  const c = new ConfigReader(json, where);
  const modelType = c.str("model_type", "llama");
  if (modelType !== "llama" && modelType !== "mistral" && modelType !== "qwen2") {
    c.fail("model_type", `${showValue(modelType)} is not supported here (supported: llama, mistral, qwen2)`);
  }
  const nEmbd = c.posInt("hidden_size");
  const nHead = c.posInt("num_attention_heads");
  const nKVHead = c.posInt("num_key_value_heads", nHead);
  if (nHead % nKVHead !== 0) c.fail("num_key_value_heads", `(${nKVHead}) must divide num_attention_heads (${nHead})`);
  if (!c.has("head_dim") && nEmbd % nHead !== 0) c.fail("hidden_size", `(${nEmbd}) must be divisible by num_attention_heads (${nHead})`);
  const headDim = c.has("head_dim") ? c.posInt("head_dim") : nEmbd / nHead;
  const nLayer = c.posInt("num_hidden_layers");
  const nPositions = c.posInt("max_position_embeddings", 2048);
  const rope = readRope(c, { defaultTheta: 10000, defaultPartial: 1, allowPartial: false, maxPositions: nPositions });
  const attentionBias = modelType === "llama" ? c.bool("attention_bias", false) : false;
  const qkvBias = modelType === "qwen2" ? true : attentionBias;
  if (modelType === "mistral") c.only("attention_bias", [false]);

  // Sliding windows, as transformers decides them per model type.
  let slidingWindow: Array<number | null> = new Array<number | null>(nLayer).fill(null);
  if (modelType === "mistral") {
    const w = c.json.sliding_window === undefined ? 4096 : c.optPosInt("sliding_window");
    slidingWindow.fill(w);
  } else if (modelType === "qwen2") {
    const w = c.bool("use_sliding_window", false) ? (c.json.sliding_window === undefined ? 4096 : c.optPosInt("sliding_window")) : null;
    const types = c.json.layer_types;
    if (Array.isArray(types)) {
      if (types.length !== nLayer) c.fail("layer_types", `must list ${nLayer} layers, got ${types.length}`);
      slidingWindow = types.map((t, i) => {
        if (t !== "full_attention" && t !== "sliding_attention") c.fail(`layer_types[${i}]`, `= ${JSON.stringify(t)} is not supported (full_attention, sliding_attention)`);
        return t === "sliding_attention" ? w : null;
      });
    } else if (w !== null) {
      const from = c.posInt("max_window_layers", 28);
      slidingWindow = slidingWindow.map((_, i) => (i >= from ? w : null));
    }
  }
  const cfg: LlamaConfig = {
    modelType: modelType as LlamaModelType,
    vocabSize: c.posInt("vocab_size"),
    nPositions,
    nEmbd,
    nLayer,
    nHead,
    nKVHead,
    headDim,
    intermediateSize: c.posInt("intermediate_size"),
    rmsNormEps: c.posNum("rms_norm_eps", 1e-6),
    rope,
    tieWordEmbeddings: c.bool("tie_word_embeddings", false),
    qkvBias,
    oBias: attentionBias,
    mlpBias: modelType === "llama" ? c.bool("mlp_bias", false) : false,
    hiddenAct: readActivation(c, "hidden_act", "silu"),
    slidingWindow,
    initializerRange: c.has("initializer_range") ? c.posNum("initializer_range") : 0.02,
    bosTokenId: tokenId(c, "bos_token_id"),
    eosTokenId: Array.isArray(c.json.eos_token_id) ? (c.json.eos_token_id as number[]) : tokenId(c, "eos_token_id"),
  };
  return cfg;
}

/** A config.json for `c` that transformers 4.x and 5.x both read. */
export function llamaConfigToHF(c: LlamaConfig, dtype: DType): Json {
  const out: Json = {
    model_type: c.modelType,
    architectures: [ARCH[c.modelType]],
    vocab_size: c.vocabSize,
    hidden_size: c.nEmbd,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.nLayer,
    num_attention_heads: c.nHead,
    num_key_value_heads: c.nKVHead,
    head_dim: c.headDim,
    max_position_embeddings: c.nPositions,
    rms_norm_eps: c.rmsNormEps,
    hidden_act: activationName(c.hiddenAct),
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange,
    ...ropeToHF(c.rope, { neox: false }),
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    use_cache: true,
    dtype,
    torch_dtype: dtype,
  };
  if (c.modelType === "llama") {
    out.attention_bias = c.oBias;
    out.mlp_bias = c.mlpBias;
  }
  const windows = new Set(c.slidingWindow.filter((w) => w !== null));
  if (c.modelType === "mistral") out.sliding_window = c.slidingWindow[0] ?? null;
  if (c.modelType === "qwen2") {
    out.use_sliding_window = windows.size > 0;
    out.sliding_window = windows.size > 0 ? [...windows][0] : null;
    out.max_window_layers = c.nLayer;
    out.layer_types = c.slidingWindow.map((w) => (w === null ? "full_attention" : "sliding_attention"));
  }
  return out;
}

export interface BuildOptions {
  device?: Device;
  dtype?: DType;
  /** Initialise as transformers does (default true); false leaves the values to a weight load. */
  init?: boolean;
}

class LlamaAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  readonly hookQ: HookPoint;
  readonly hookK: HookPoint;
  private readonly H: number;
  private readonly Hkv: number;
  private readonly D: number;

  constructor(c: LlamaConfig, private readonly layer: number, f: BuildOptions) {
    super();
    this.H = c.nHead;
    this.Hkv = c.nKVHead;
    this.D = c.headDim;
    const o = { device: f.device, dtype: f.dtype };
    this.qProj = this.registerModule("q_proj", new Linear(c.nEmbd, c.nHead * c.headDim, { ...o, bias: c.qkvBias }));
    this.kProj = this.registerModule("k_proj", new Linear(c.nEmbd, c.nKVHead * c.headDim, { ...o, bias: c.qkvBias }));
    this.vProj = this.registerModule("v_proj", new Linear(c.nEmbd, c.nKVHead * c.headDim, { ...o, bias: c.qkvBias }));
    this.oProj = this.registerModule("o_proj", new Linear(c.nHead * c.headDim, c.nEmbd, { ...o, bias: c.oBias }));
    this.hookQ = this.registerModule("hook_q", new HookPoint(`blocks.${layer}.attn.hook_q`));
    this.hookK = this.registerModule("hook_k", new HookPoint(`blocks.${layer}.attn.hook_k`));
  }

  forward(x: Tensor, ctx: StepContext, window: number | null): Tensor {
    const [B, T] = x.shape as [number, number];
    const { H, Hkv, D } = this;
    const q = applyRotary(this.qProj.forward(x).view([B, T, H, D]).transpose(1, 2), ctx.rope);
    let k = applyRotary(this.kProj.forward(x).view([B, T, Hkv, D]).transpose(1, 2), ctx.rope);
    let v = this.vProj.forward(x).view([B, T, Hkv, D]).transpose(1, 2);
    if (ctx.cache !== null) [k, v] = ctx.cache.update(this.layer, k, v);
    const qh = this.hookQ.forward(q);
    const kh = this.hookK.forward(repeatKV(k, H / Hkv));
    const y = F.scaledDotProductAttention(qh, kh, repeatKV(v, H / Hkv), attentionOptions(T, ctx.past, x.device, window));
    return this.oProj.forward(y.transpose(1, 2).reshape([B, T, H * D]));
  }
}

class LlamaMLP extends Module {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(c: LlamaConfig, f: BuildOptions, private readonly act: Activation) {
    super();
    const o = { device: f.device, dtype: f.dtype, bias: c.mlpBias };
    this.gateProj = this.registerModule("gate_proj", new Linear(c.nEmbd, c.intermediateSize, o));
    this.upProj = this.registerModule("up_proj", new Linear(c.nEmbd, c.intermediateSize, o));
    this.downProj = this.registerModule("down_proj", new Linear(c.intermediateSize, c.nEmbd, o));
  }

  forward(x: Tensor): Tensor {
    return this.downProj.forward(activate(this.gateProj.forward(x), this.act).mul(this.upProj.forward(x)));
  }
}

/** One pre-norm block: h + attn(norm1(h)), then + mlp(norm2(.)). */
export class LlamaBlock extends Module {
  readonly inputLayernorm: HFRMSNorm;
  readonly selfAttn: LlamaAttention;
  readonly postAttentionLayernorm: HFRMSNorm;
  readonly mlp: LlamaMLP;
  readonly hookResidPre: HookPoint;
  readonly hookAttnOut: HookPoint;
  readonly hookResidMid: HookPoint;
  readonly hookMlpOut: HookPoint;
  readonly hookResidPost: HookPoint;
  private readonly window: number | null;

  constructor(c: LlamaConfig, readonly layer: number, f: BuildOptions) {
    super();
    const o = { device: f.device, dtype: f.dtype };
    this.window = c.slidingWindow[layer] ?? null;
    this.selfAttn = this.registerModule("self_attn", new LlamaAttention(c, layer, f));
    this.mlp = this.registerModule("mlp", new LlamaMLP(c, f, c.hiddenAct));
    this.inputLayernorm = this.registerModule("input_layernorm", new HFRMSNorm(c.nEmbd, c.rmsNormEps, o));
    this.postAttentionLayernorm = this.registerModule("post_attention_layernorm", new HFRMSNorm(c.nEmbd, c.rmsNormEps, o));
    const hook = (n: string) => this.registerModule(n, new HookPoint(`blocks.${layer}.${n}`));
    this.hookResidPre = hook("hook_resid_pre");
    this.hookAttnOut = hook("hook_attn_out");
    this.hookResidMid = hook("hook_resid_mid");
    this.hookMlpOut = hook("hook_mlp_out");
    this.hookResidPost = hook("hook_resid_post");
  }

  forward(h: Tensor, ctx: StepContext): Tensor {
    h = this.hookResidPre.forward(h);
    const a = this.hookAttnOut.forward(this.selfAttn.forward(this.inputLayernorm.forward(h), ctx, this.window));
    h = this.hookResidMid.forward(h.add(a));
    const m = this.hookMlpOut.forward(this.mlp.forward(this.postAttentionLayernorm.forward(h)));
    return this.hookResidPost.forward(h.add(m));
  }
}

/** The `model` submodule: embed_tokens, layers, norm. */
class LlamaBody extends Module {
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<LlamaBlock>;
  readonly norm: HFRMSNorm;
  readonly hookNormalized: HookPoint;

  constructor(c: LlamaConfig, f: BuildOptions) {
    super();
    const o = { device: f.device, dtype: f.dtype };
    this.embedTokens = this.registerModule("embed_tokens", new Embedding(c.vocabSize, c.nEmbd, o));
    this.layers = this.registerModule("layers", new ModuleList(Array.from({ length: c.nLayer }, (_, i) => new LlamaBlock(c, i, f))));
    this.norm = this.registerModule("norm", new HFRMSNorm(c.nEmbd, c.rmsNormEps, o));
    this.hookNormalized = this.registerModule("hook_normalized", new HookPoint("ln_final.hook_normalized"));
  }
}

export class Llama extends RotaryCausalLM {
  readonly config: LlamaConfig;
  readonly model: LlamaBody;
  readonly lmHead: Linear | null;
  protected readonly rotary: RotaryTables;
  protected readonly parts: CausalLMParts;

  constructor(config: LlamaConfig, opts: BuildOptions = {}) {
    super();
    this.config = config;
    this.model = this.registerModule("model", new LlamaBody(config, opts));
    this.lmHead = config.tieWordEmbeddings
      ? null
      : this.registerModule("lm_head", new Linear(config.nEmbd, config.vocabSize, { device: opts.device, dtype: opts.dtype, bias: false }));
    this.rotary = new RotaryTables(config.rope, config.headDim);
    const m = this.model;
    this.parts = { embedding: m.embedTokens, layers: m.layers, finalNorm: m.norm, hookNormalized: m.hookNormalized, output: this.lmHead };
    if (opts.init ?? true) initLikeHF(this, config.initializerRange);
  }

  get blocks(): ModuleList<LlamaBlock> {
    return this.model.layers;
  }

  toHFConfig(): Json {
    return llamaConfigToHF(this.config, this.model.embedTokens.weight.dtype);
  }
}
