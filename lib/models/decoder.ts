// The decoder-only transformer block skeleton that every rotary family configures (LLaMA, Mistral,
// Qwen2/3, GPT-NeoX, Gemma 2/3, Phi-3, OLMo 2), rather than one file per family repeating the
// others. A DecoderSpec says:
//   - norms: the kind (RMSNorm, Gemma's (1+w) RMSNorm, LayerNorm) and which of four places carry
//     one (before attention, after attention, before the MLP, after the MLP), each under the name
//     the family's checkpoints use; a parallel residual (GPT-NeoX) or a sequential one;
//   - attention: separate q/k/v projections, one fused projection laid out [q | k | v] (Phi-3) or
//     per head [q_h | k_h | v_h] (GPT-NeoX), biases, q/k RMSNorm per head (Qwen3, Gemma 3) or over
//     all heads (OLMo 2), the score scale, tanh soft-capping of the scores, a sliding window and
//     which RoPE table (global or local base) per layer;
//   - MLP: gated (SwiGLU / GeGLU, separate or fused gate_up) or plain;
//   - the model: an embedding scale (Gemma: √D), a final logit soft-cap, a tied or untied head.
//
// Hook points carry GPT-2's names. hook_attn_out and hook_mlp_out hold the contributions as added
// to the residual stream (after any post-norm), so hook_attn_out + hook_mlp_out = h^(l+1) − h^l;
// with the parallel residual hook_resid_mid is h + attn (the MLP reads h). hook_q and hook_k hold
// the queries and keys as the scores use them ([B, H, T, D], normed and rotated, keys repeated to
// all H query heads); `attentionOf(l)` gives the scale, soft-cap and window that turn them into
// the attention the model applies.

import { torch, F } from "../torch/index.js";
import type { DType, Tensor } from "../torch/index.js";
import { Module, ModuleList, Embedding, Linear, LayerNorm, HookPoint } from "../nn/index.js";
import type { Json, Activation } from "./hf-config.js";
import { RotaryCausalLM, attentionOptions, repeatKV } from "./causal-lm.js";
import type { CausalLMConfigBase, CausalLMParts, StepContext } from "./causal-lm.js";
import { RotaryTables, applyRotary } from "./rope.js";
import type { RopeConfig } from "./rope.js";
import { HFRMSNorm, activate, initLikeHF } from "./layers.js";
import type { BuildOptions } from "./layers.js";
import type { DecoderBasics } from "./decoder-config.js";

/** RMSNorm as LLaMA ("rms"), scaled in float32 (OLMo 2), with (1 + w) (Gemma), or LayerNorm with bias. */
export type NormKind = "rms" | "rmsScaleFloat32" | "rmsUnitOffset" | "layer";

/** Checkpoint names of the modules (transformers' names for the family). */
export interface DecoderNames {
  base: string;
  embed: string;
  layers: string;
  finalNorm: string;
  head: string;
  attn: string;
  mlp: string;
  /** Norm names by place; a place without a name has no norm. */
  inputNorm: string | null;
  postAttnNorm: string | null;
  preMlpNorm: string | null;
  postMlpNorm: string | null;
  /** Separate projections (q, k, v, o) or the fused qkv and o. */
  q: string;
  k: string;
  v: string;
  qkv: string;
  o: string;
  qNorm: string;
  kNorm: string;
  gate: string;
  up: string;
  gateUp: string;
  down: string;
}

/** transformers' LLaMA names, which most families share. */
export const LLAMA_NAMES: DecoderNames = {
  base: "model",
  embed: "embed_tokens",
  layers: "layers",
  finalNorm: "norm",
  head: "lm_head",
  attn: "self_attn",
  mlp: "mlp",
  inputNorm: "input_layernorm",
  postAttnNorm: null,
  preMlpNorm: "post_attention_layernorm",
  postMlpNorm: null,
  q: "q_proj",
  k: "k_proj",
  v: "v_proj",
  qkv: "qkv_proj",
  o: "o_proj",
  qNorm: "q_norm",
  kNorm: "k_norm",
  gate: "gate_proj",
  up: "up_proj",
  gateUp: "gate_up_proj",
  down: "down_proj",
};

export interface DecoderSpec {
  vocabSize: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nKVHead: number;
  headDim: number;
  intermediateSize: number;
  names: DecoderNames;
  norm: { kind: NormKind; eps: number };
  parallelResidual: boolean;
  /** "separate": q, k, v; "fused": one projection [q | k | v]; "fusedPerHead": [q_h | k_h | v_h] per head. */
  qkvLayout: "separate" | "fused" | "fusedPerHead";
  qkvBias: boolean;
  oBias: boolean;
  /** RMSNorm of queries and keys: per head over D ("head"), over all heads' H·D ("all"), or none. */
  qkNorm: "none" | "head" | "all";
  /** Factor on q·k; null: 1/√D. */
  attnScale: number | null;
  /** Scores become c·tanh(scores / c). */
  attnSoftcap: number | null;
  mlp: "gated" | "gatedFused" | "plain";
  mlpBias: boolean;
  act: Activation;
  /** Per layer: sliding window (null: full causal attention) and whether it uses the local RoPE table. */
  layers: Array<{ window: number | null; localRope: boolean }>;
  rope: RopeConfig;
  /** RoPE of the layers marked localRope (Gemma 3's rope_local_base_freq). */
  localRope: RopeConfig | null;
  /** Multiply the token embedding by √nEmbd (rounded to the weights' dtype). */
  embedScale: boolean;
  finalSoftcap: number | null;
  tieWordEmbeddings: boolean;
  initializerRange: number;
}

type Norm = Module & { forward(x: Tensor): Tensor };

/**
 * A LLaMA-shaped spec from the shared config.json fields (pre-RMSNorm, separate q/k/v without
 * biases, SwiGLU without biases, one RoPE, no soft-caps), with a family's differences on top.
 */
export function llamaLikeSpec(
  b: DecoderBasics,
  o: { rope: RopeConfig; act: Activation; windows: Array<number | null> } & Partial<DecoderSpec>,
): DecoderSpec {
  const { windows, ...differences } = o;
  const { vocabSize, nEmbd, nLayer, nHead, nKVHead, headDim, intermediateSize, tieWordEmbeddings, initializerRange } = b;
  return {
    vocabSize, nEmbd, nLayer, nHead, nKVHead, headDim, intermediateSize, tieWordEmbeddings, initializerRange,
    names: LLAMA_NAMES,
    norm: { kind: "rms", eps: b.rmsNormEps },
    parallelResidual: false,
    qkvLayout: "separate",
    qkvBias: false,
    oBias: false,
    qkNorm: "none",
    attnScale: null,
    attnSoftcap: null,
    mlp: "gated",
    mlpBias: false,
    layers: windows.map((window) => ({ window, localRope: false })),
    localRope: null,
    embedScale: false,
    finalSoftcap: null,
    ...differences,
  };
}

function makeNorm(s: DecoderSpec, size: number, f: BuildOptions): Norm {
  const o = { device: f.device, dtype: f.dtype };
  if (s.norm.kind === "layer") return new LayerNorm(size, { eps: s.norm.eps, ...o });
  return new HFRMSNorm(size, s.norm.eps, { ...o, unitOffset: s.norm.kind === "rmsUnitOffset", scaleInFloat32: s.norm.kind === "rmsScaleFloat32" });
}

/** c·tanh(x / c), as transformers' Gemma soft-caps scores and logits. */
export function softcap(x: Tensor, c: number | null): Tensor {
  return c === null ? x : x.div(c).tanh().mul(c);
}

/** Attention as a layer applies it: the factor on q·k, the soft-cap and the sliding window. */
export interface AttentionInfo {
  scale: number;
  softcap: number | null;
  window: number | null;
}

class Attention extends Module {
  readonly proj: Record<string, Linear> = {};
  readonly qNorm: Norm | null = null;
  readonly kNorm: Norm | null = null;
  readonly hookQ: HookPoint;
  readonly hookK: HookPoint;

  constructor(private readonly s: DecoderSpec, private readonly layer: number, readonly info: AttentionInfo, f: BuildOptions) {
    super();
    const o = { device: f.device, dtype: f.dtype };
    const n = s.names;
    const { nEmbd: E, nHead: H, nKVHead: Hkv, headDim: D } = s;
    const add = (name: string, i: number, out: number, bias: boolean) => (this.proj[name] = this.registerModule(name, new Linear(i, out, { ...o, bias })));
    if (s.qkvLayout === "separate") {
      add(n.q, E, H * D, s.qkvBias);
      add(n.k, E, Hkv * D, s.qkvBias);
      add(n.v, E, Hkv * D, s.qkvBias);
    } else add(n.qkv, E, (H + 2 * Hkv) * D, s.qkvBias);
    add(n.o, H * D, E, s.oBias);
    if (s.qkNorm !== "none") {
      const per = s.qkNorm === "head";
      this.qNorm = this.registerModule(n.qNorm, makeNorm(s, per ? D : H * D, f));
      this.kNorm = this.registerModule(n.kNorm, makeNorm(s, per ? D : Hkv * D, f));
    }
    this.hookQ = this.registerModule("hook_q", new HookPoint(`blocks.${layer}.attn.hook_q`));
    this.hookK = this.registerModule("hook_k", new HookPoint(`blocks.${layer}.attn.hook_k`));
  }

  /** q, k, v as [B, T, heads, D] (before any per-head norm). */
  private project(x: Tensor, B: number, T: number): [Tensor, Tensor, Tensor] {
    const { s } = this;
    const n = s.names;
    const { nHead: H, nKVHead: Hkv, headDim: D } = s;
    if (s.qkvLayout === "fusedPerHead") {
      const [q, k, v] = this.proj[n.qkv]!.forward(x).view([B, T, H, 3 * D]).split(D, 3) as [Tensor, Tensor, Tensor];
      return [q, k, v];
    }
    let q: Tensor, k: Tensor, v: Tensor;
    if (s.qkvLayout === "fused") [q, k, v] = this.proj[n.qkv]!.forward(x).split([H * D, Hkv * D, Hkv * D], -1) as [Tensor, Tensor, Tensor];
    else [q, k, v] = [this.proj[n.q]!.forward(x), this.proj[n.k]!.forward(x), this.proj[n.v]!.forward(x)];
    if (s.qkNorm === "all") [q, k] = [this.qNorm!.forward(q), this.kNorm!.forward(k)];
    return [q.view([B, T, H, D]), k.view([B, T, Hkv, D]), v.view([B, T, Hkv, D])];
  }

  forward(x: Tensor, ctx: StepContext): Tensor {
    const [B, T] = x.shape as [number, number];
    const { nHead: H, nKVHead: Hkv, headDim: D } = this.s;
    let [q, k, v] = this.project(x, B, T);
    if (this.s.qkNorm === "head") [q, k] = [this.qNorm!.forward(q), this.kNorm!.forward(k)];
    const rope = this.s.layers[this.layer]!.localRope ? ctx.localRope! : ctx.rope;
    q = applyRotary(q.transpose(1, 2), rope);
    k = applyRotary(k.transpose(1, 2), rope);
    v = v.transpose(1, 2);
    if (ctx.cache !== null) [k, v] = ctx.cache.update(this.layer, k, v);
    const qh = this.hookQ.forward(q);
    const kh = this.hookK.forward(repeatKV(k, H / Hkv));
    const vr = repeatKV(v, H / Hkv);
    const mask = attentionOptions(T, ctx.past, x.device, this.info.window);
    const y = this.info.softcap === null ? this.fused(qh, kh, vr, mask) : this.capped(qh, kh, vr, mask, ctx.past);
    return this.proj[this.s.names.o]!.forward(y.transpose(1, 2).reshape([B, T, H * D]));
  }

  private fused(q: Tensor, k: Tensor, v: Tensor, mask: { isCausal?: boolean; attnMask?: Tensor }): Tensor {
    return F.scaledDotProductAttention(q, k, v, this.s.attnScale === null ? mask : { ...mask, scale: this.info.scale });
  }

  /** Eager attention with soft-capped scores, in transformers' order (scale, cap, mask, float32 softmax). */
  private capped(q: Tensor, k: Tensor, v: Tensor, mask: { isCausal?: boolean; attnMask?: Tensor }, past: number): Tensor {
    const T = q.shape[2]!;
    const S = k.shape[2]!;
    let scores = softcap(q.matmul(k.transpose(2, 3)).mul(this.info.scale), this.info.softcap);
    const allowed = mask.attnMask ?? (mask.isCausal ? torch.ones([T, S], { dtype: "bool", device: q.device as "cpu" }).tril(past) : null);
    if (allowed !== null) scores = scores.maskedFill(allowed.logicalNot(), -Infinity);
    return F.softmax(scores, -1, { dtype: "float32" }).to(q.dtype).matmul(v);
  }
}

class MLP extends Module {
  readonly proj: Record<string, Linear> = {};

  constructor(private readonly s: DecoderSpec, f: BuildOptions) {
    super();
    const o = { device: f.device, dtype: f.dtype, bias: s.mlpBias };
    const n = s.names;
    const { nEmbd: E, intermediateSize: I } = s;
    const add = (name: string, i: number, out: number) => (this.proj[name] = this.registerModule(name, new Linear(i, out, o)));
    if (s.mlp === "gated") {
      add(n.gate, E, I);
      add(n.up, E, I);
    } else if (s.mlp === "gatedFused") add(n.gateUp, E, 2 * I);
    else add(n.up, E, I);
    add(n.down, I, E);
  }

  forward(x: Tensor): Tensor {
    const { s } = this;
    const n = s.names;
    let y: Tensor;
    if (s.mlp === "gated") y = activate(this.proj[n.gate]!.forward(x), s.act).mul(this.proj[n.up]!.forward(x));
    else if (s.mlp === "gatedFused") {
      const [gate, up] = this.proj[n.gateUp]!.forward(x).chunk(2, -1) as [Tensor, Tensor];
      y = up.mul(activate(gate, s.act));
    } else y = activate(this.proj[n.up]!.forward(x), s.act);
    return this.proj[n.down]!.forward(y);
  }
}

export class DecoderBlock extends Module {
  readonly attn: Attention;
  readonly mlp: MLP;
  readonly norms: { input: Norm | null; postAttn: Norm | null; preMlp: Norm | null; postMlp: Norm | null };
  readonly hookResidPre: HookPoint;
  readonly hookAttnOut: HookPoint;
  readonly hookResidMid: HookPoint;
  readonly hookMlpOut: HookPoint;
  readonly hookResidPost: HookPoint;
  private readonly parallel: boolean;

  constructor(s: DecoderSpec, readonly layer: number, f: BuildOptions) {
    super();
    const n = s.names;
    this.parallel = s.parallelResidual;
    const window = s.layers[layer]!.window;
    const info = { scale: s.attnScale ?? 1 / Math.sqrt(s.headDim), softcap: s.attnSoftcap, window };
    this.attn = this.registerModule(n.attn, new Attention(s, layer, info, f));
    this.mlp = this.registerModule(n.mlp, new MLP(s, f));
    const norm = (name: string | null) => (name === null ? null : this.registerModule(name, makeNorm(s, s.nEmbd, f)));
    this.norms = { input: norm(n.inputNorm), postAttn: norm(n.postAttnNorm), preMlp: norm(n.preMlpNorm), postMlp: norm(n.postMlpNorm) };
    const hook = (name: string) => this.registerModule(name, new HookPoint(`blocks.${layer}.${name}`));
    this.hookResidPre = hook("hook_resid_pre");
    this.hookAttnOut = hook("hook_attn_out");
    this.hookResidMid = hook("hook_resid_mid");
    this.hookMlpOut = hook("hook_mlp_out");
    this.hookResidPost = hook("hook_resid_post");
  }

  forward(h: Tensor, ctx: StepContext): Tensor {
    const apply = (norm: Norm | null, x: Tensor) => (norm === null ? x : norm.forward(x));
    const { input, postAttn, preMlp, postMlp } = this.norms;
    h = this.hookResidPre.forward(h);
    const a = this.hookAttnOut.forward(apply(postAttn, this.attn.forward(apply(input, h), ctx)));
    const mid = this.hookResidMid.forward(h.add(a));
    const m = this.hookMlpOut.forward(apply(postMlp, this.mlp.forward(apply(preMlp, this.parallel ? h : mid))));
    // Parallel: mlp_out + attn_out + h, summed in transformers' (GPT-NeoX's) order.
    return this.hookResidPost.forward(this.parallel ? m.add(a).add(h) : m.add(mid));
  }
}

/** The base submodule (`model`, `gpt_neox`): embedding, layers, final norm. */
class DecoderBody extends Module {
  readonly embed: Embedding;
  readonly layers: ModuleList<DecoderBlock>;
  readonly finalNorm: Norm;
  readonly hookNormalized: HookPoint;

  constructor(s: DecoderSpec, f: BuildOptions) {
    super();
    const n = s.names;
    this.embed = this.registerModule(n.embed, new Embedding(s.vocabSize, s.nEmbd, { device: f.device, dtype: f.dtype }));
    this.layers = this.registerModule(n.layers, new ModuleList(Array.from({ length: s.nLayer }, (_, i) => new DecoderBlock(s, i, f))));
    this.finalNorm = this.registerModule(n.finalNorm, makeNorm(s, s.nEmbd, f));
    this.hookNormalized = this.registerModule("hook_normalized", new HookPoint("ln_final.hook_normalized"));
  }
}

/**
 * Every parameter's name and shape for `s`, as the module tree above registers them, without
 * allocating anything: checked against a checkpoint's safetensors header before the model is built.
 */
export function decoderShapes(s: DecoderSpec): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const n = s.names;
  const { nEmbd: E, nHead: H, nKVHead: Hkv, headDim: D, intermediateSize: I } = s;
  const base = `${n.base}.`;
  const linear = (p: string, i: number, o: number, bias: boolean) => {
    out.set(`${p}.weight`, [o, i]);
    if (bias) out.set(`${p}.bias`, [o]);
  };
  const norm = (p: string, size: number) => {
    out.set(`${p}.weight`, [size]);
    if (s.norm.kind === "layer") out.set(`${p}.bias`, [size]);
  };
  out.set(`${base}${n.embed}.weight`, [s.vocabSize, E]);
  for (let l = 0; l < s.nLayer; l++) {
    const p = `${base}${n.layers}.${l}.`;
    const a = `${p}${n.attn}.`;
    if (s.qkvLayout === "separate") {
      linear(a + n.q, E, H * D, s.qkvBias);
      linear(a + n.k, E, Hkv * D, s.qkvBias);
      linear(a + n.v, E, Hkv * D, s.qkvBias);
    } else linear(a + n.qkv, E, (H + 2 * Hkv) * D, s.qkvBias);
    linear(a + n.o, H * D, E, s.oBias);
    if (s.qkNorm !== "none") {
      out.set(`${a}${n.qNorm}.weight`, [s.qkNorm === "head" ? D : H * D]);
      out.set(`${a}${n.kNorm}.weight`, [s.qkNorm === "head" ? D : Hkv * D]);
    }
    const m = `${p}${n.mlp}.`;
    if (s.mlp === "gated") {
      linear(m + n.gate, E, I, s.mlpBias);
      linear(m + n.up, E, I, s.mlpBias);
    } else if (s.mlp === "gatedFused") linear(m + n.gateUp, E, 2 * I, s.mlpBias);
    else linear(m + n.up, E, I, s.mlpBias);
    linear(m + n.down, I, E, s.mlpBias);
    for (const name of [n.inputNorm, n.postAttnNorm, n.preMlpNorm, n.postMlpNorm]) if (name !== null) norm(p + name, E);
  }
  norm(base + n.finalNorm, E);
  if (!s.tieWordEmbeddings) out.set(`${n.head}.weight`, [s.vocabSize, E]);
  return out;
}

/** A causal LM built from a DecoderSpec; each family supplies its config, the spec and its config.json writer. */
export abstract class DecoderLM<C extends CausalLMConfigBase = CausalLMConfigBase> extends RotaryCausalLM {
  readonly config: C;
  readonly spec: DecoderSpec;
  readonly body: DecoderBody;
  readonly output: Linear | null;
  protected readonly rotary: RotaryTables;
  protected override readonly localRotary: RotaryTables | null;
  protected readonly parts: CausalLMParts;
  private embedScale: Tensor | null = null;

  constructor(
    config: C,
    spec: DecoderSpec,
    private readonly configToHF: (c: C, dtype: DType) => Json,
    opts: BuildOptions = {},
  ) {
    super();
    this.config = config;
    this.spec = spec;
    this.body = this.registerModule(spec.names.base, new DecoderBody(spec, opts));
    this.output = spec.tieWordEmbeddings
      ? null
      : this.registerModule(spec.names.head, new Linear(spec.nEmbd, spec.vocabSize, { device: opts.device, dtype: opts.dtype, bias: false }));
    this.rotary = new RotaryTables(spec.rope, spec.headDim);
    this.localRotary = spec.localRope === null ? null : new RotaryTables(spec.localRope, spec.headDim);
    const b = this.body;
    this.parts = { embedding: b.embed, layers: b.layers, finalNorm: b.finalNorm, hookNormalized: b.hookNormalized, output: this.output };
    if (opts.init ?? true) initLikeHF(this, spec.initializerRange);
  }

  get blocks(): ModuleList<DecoderBlock> {
    return this.body.layers;
  }

  /** h^0: the token embedding, times √D rounded to the weights' dtype where the family scales it (Gemma). */
  override embed(ids: Tensor): Tensor {
    const e = super.embed(ids);
    if (!this.spec.embedScale) return e;
    if (this.embedScale === null || this.embedScale.dtype !== e.dtype || this.embedScale.device !== e.device) {
      this.embedScale?.dispose();
      const scale = Math.sqrt(this.spec.nEmbd);
      this.embedScale = torch.keep(torch.noGrad(() => torch.tidy(() => torch.tensor([scale], { dtype: "float32" }).to(e.dtype).to(e.device as "cpu"))));
    }
    return e.mul(this.embedScale);
  }

  protected override unembed(x: Tensor): Tensor {
    return softcap(super.unembed(x), this.spec.finalSoftcap);
  }

  /** Scale, soft-cap and window of layer l's attention (for the analysis of attention patterns). */
  attentionOf(l: number): AttentionInfo {
    return this.blocks.at(l).attn.info;
  }

  override dispose(): void {
    this.embedScale?.dispose();
    this.embedScale = null;
    super.dispose();
  }

  /** config.json for savePretrained, in the weights' dtype. */
  toHFConfig(): Json {
    return this.configToHF(this.config, this.body.embed.weight.dtype);
  }
}

export type { BuildOptions, DType };
