// Gemma 2 and Gemma 3 text models (model_type gemma2, gemma3_text) on the block skeleton
// (decoder.ts): the token embedding scaled by √D, RMSNorm scaling by (1 + w), norms before and
// after both attention and MLP, a GeGLU MLP, the score scale query_pre_attn_scalar^(-1/2),
// alternating sliding-window layers, and
//   - Gemma 2: tanh soft-capping of the attention scores and of the final logits;
//   - Gemma 3: RMSNorm of each head's queries and keys, and a local RoPE base for the sliding
//     layers (rope_local_base_freq, or rope_parameters.sliding_attention) besides the global one.
// Names are transformers' (model.layers.{i}.pre_feedforward_layernorm.weight, ...).

import type { DType } from "../torch/index.js";
import { ConfigReader, readActivation, readRope, ropeToHF, activationName, readLayerTypes, refuseMoE } from "./hf-config.js";
import type { Activation, Json, LayerType } from "./hf-config.js";
import type { RopeConfig } from "./rope.js";
import { DecoderLM, LLAMA_NAMES, llamaLikeSpec } from "./decoder.js";
import type { DecoderSpec } from "./decoder.js";
import { readDecoderBasics, decoderBasicsToHF } from "./decoder-config.js";
import type { DecoderBasics } from "./decoder-config.js";
import type { BuildOptions } from "./layers.js";

export type GemmaModelType = "gemma2" | "gemma3_text";

export interface GemmaConfig extends DecoderBasics {
  modelType: GemmaModelType;
  hiddenAct: Activation;
  attentionBias: boolean;
  /** Scores are scaled by queryPreAttnScalar^(-1/2). */
  queryPreAttnScalar: number;
  attnLogitSoftcapping: number | null;
  finalLogitSoftcapping: number | null;
  /** The window of the sliding layers (null: they attend to everything). */
  slidingWindow: number | null;
  layerTypes: LayerType[];
  /** RoPE of the full-attention layers (and of every layer in Gemma 2). */
  rope: RopeConfig;
  /** Gemma 3: RoPE of the sliding layers. */
  localRope: RopeConfig | null;
}

const ARCH: Record<GemmaModelType, string> = { gemma2: "Gemma2ForCausalLM", gemma3_text: "Gemma3ForCausalLM" };

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Soft-cap fields: a positive number, or null (absent means the model type's default). */
function softcapField(c: ConfigReader, k: string, dflt: number | null): number | null {
  if (c.json[k] === undefined) return dflt;
  return c.optPosNum(k);
}

/**
 * Gemma 3's two RoPE settings. transformers 5: rope_parameters.{full_attention, sliding_attention};
 * transformers 4: rope_theta (+ rope_scaling) for full attention and rope_local_base_freq for
 * sliding layers (default bases 1,000,000 and 10,000).
 */
function gemma3Ropes(c: ConfigReader, maxPositions: number): { rope: RopeConfig; localRope: RopeConfig } {
  const base = { defaultPartial: 1, allowPartial: false, maxPositions };
  const rp = c.json.rope_parameters;
  if (isObject(rp) && (isObject(rp.full_attention) || isObject(rp.sliding_attention))) {
    const sub = (t: LayerType) => (isObject(rp[t]) ? (rp[t] as Json) : {});
    return {
      rope: readRope(c, { ...base, defaultTheta: 1_000_000, dict: { field: "rope_parameters.full_attention", params: sub("full_attention") }, thetaFields: ["rope_theta"] }),
      localRope: readRope(c, { ...base, defaultTheta: 10_000, dict: { field: "rope_parameters.sliding_attention", params: sub("sliding_attention") }, thetaFields: ["rope_local_base_freq"] }),
    };
  }
  return {
    rope: readRope(c, { ...base, defaultTheta: 1_000_000 }),
    localRope: readRope(c, { ...base, defaultTheta: 10_000, dict: { field: "rope_local_base_freq", params: null }, thetaFields: ["rope_local_base_freq"] }),
  };
}

/** Reads a transformers 4.x or 5.x config.json of model_type gemma2 or gemma3_text. */
export function gemmaConfigFromHF(json: Json, where = "config.json"): GemmaConfig {
  const c = new ConfigReader(json, where);
  c.only("model_type", ["gemma2", "gemma3_text"]);
  const modelType = c.json.model_type as GemmaModelType;
  refuseMoE(c);
  c.only("use_bidirectional_attention", [false]);
  const basics = readDecoderBasics(c, { headDim: 256, rmsNormEps: 1e-6, tieWordEmbeddings: true, maxPositions: modelType === "gemma2" ? 8192 : 131072 });
  const g3 = modelType === "gemma3_text";
  // Sliding layers: layer_types, else every other layer (Gemma 2) or all but every
  // sliding_window_pattern-th (Gemma 3, default 6).
  const pattern = g3 ? c.posInt("sliding_window_pattern", 6) : 2;
  const layerTypes = readLayerTypes(c, basics.nLayer) ?? Array.from({ length: basics.nLayer }, (_, i): LayerType => ((i + 1) % pattern !== 0 ? "sliding_attention" : "full_attention"));
  const ropes = g3 ? gemma3Ropes(c, basics.nPositions) : { rope: readRope(c, { defaultTheta: 10000, defaultPartial: 1, allowPartial: false, maxPositions: basics.nPositions }), localRope: null };
  return {
    ...basics,
    modelType,
    hiddenAct: readActivation(c, c.has("hidden_activation") ? "hidden_activation" : "hidden_act", "gelu_pytorch_tanh"),
    attentionBias: c.bool("attention_bias", false),
    queryPreAttnScalar: c.posNum("query_pre_attn_scalar", 256),
    attnLogitSoftcapping: softcapField(c, "attn_logit_softcapping", g3 ? null : 50),
    finalLogitSoftcapping: softcapField(c, "final_logit_softcapping", g3 ? null : 30),
    slidingWindow: c.json.sliding_window === undefined ? 4096 : c.optPosInt("sliding_window"),
    layerTypes,
    ...ropes,
  };
}

export function gemmaConfigToHF(c: GemmaConfig, dtype: DType): Json {
  const out: Json = {
    ...decoderBasicsToHF(c, c.modelType, ARCH[c.modelType], dtype),
    hidden_activation: activationName(c.hiddenAct),
    attention_bias: c.attentionBias,
    query_pre_attn_scalar: c.queryPreAttnScalar,
    attn_logit_softcapping: c.attnLogitSoftcapping,
    final_logit_softcapping: c.finalLogitSoftcapping,
    sliding_window: c.slidingWindow,
    layer_types: c.layerTypes,
  };
  if (c.localRope === null) return { ...out, ...ropeToHF(c.rope, { neox: false }) };
  // Gemma 3: per layer type for transformers 5, rope_theta / rope_scaling / rope_local_base_freq for 4.
  const global = ropeToHF(c.rope, { neox: false });
  const local = ropeToHF(c.localRope, { neox: false });
  return {
    ...out,
    ...global,
    rope_parameters: { full_attention: global.rope_parameters, sliding_attention: local.rope_parameters },
    rope_local_base_freq: c.localRope.theta,
  };
}

/** Gemma's module names: four norms per block, the pre-MLP one under its own name. */
const GEMMA_NAMES = { ...LLAMA_NAMES, postAttnNorm: "post_attention_layernorm", preMlpNorm: "pre_feedforward_layernorm", postMlpNorm: "post_feedforward_layernorm" };

export function gemmaSpec(c: GemmaConfig): DecoderSpec {
  return llamaLikeSpec(c, {
    rope: c.rope,
    act: c.hiddenAct,
    windows: [],
    layers: c.layerTypes.map((t) => {
      const sliding = t === "sliding_attention";
      return { window: sliding ? c.slidingWindow : null, localRope: sliding && c.localRope !== null };
    }),
    localRope: c.localRope,
    names: GEMMA_NAMES,
    norm: { kind: "rmsUnitOffset", eps: c.rmsNormEps },
    qkvBias: c.attentionBias,
    oBias: c.attentionBias,
    qkNorm: c.modelType === "gemma3_text" ? "head" : "none",
    attnScale: Math.pow(c.queryPreAttnScalar, -0.5),
    attnSoftcap: c.attnLogitSoftcapping,
    embedScale: true,
    finalSoftcap: c.finalLogitSoftcapping,
  });
}

export class Gemma extends DecoderLM<GemmaConfig> {
  constructor(config: GemmaConfig, opts: BuildOptions = {}) {
    super(config, gemmaSpec(config), gemmaConfigToHF, opts);
  }
}
