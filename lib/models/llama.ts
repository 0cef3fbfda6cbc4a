// The LLaMA family (LLaMA 1-3, Mistral, Qwen2, Qwen3): pre-RMSNorm blocks of rotary
// self-attention with grouped key/value heads and a SwiGLU MLP, a final RMSNorm, and an output head
// that is tied to the token embedding or not, configured on the block skeleton (decoder.ts).
// Parameter names are transformers' (model.layers.{i}.self_attn.q_proj.weight, ...), so state
// dicts load from and save to Hugging Face checkpoints. Mistral, Qwen2 and Qwen3 differ from LLaMA
// only in configuration: biases on q/k/v (Qwen2), RMSNorm of each head's queries and keys
// (Qwen3), sliding attention windows (Mistral; Qwen2/3 per layer).
//
// Hook points: see decoder.ts. h^0 is the token embedding (there are no learned positions).

import type { DType } from "../torch/index.js";
import { ConfigReader, readActivation, readRope, ropeToHF, activationName, readLayerTypes, refuseMoE } from "./hf-config.js";
import type { Activation, Json } from "./hf-config.js";
import { showValue } from "./errors.js";
import { readDecoderBasics, decoderBasicsToHF } from "./decoder-config.js";
import type { DecoderBasics } from "./decoder-config.js";
import type { RopeConfig } from "./rope.js";
import { DecoderLM, llamaLikeSpec } from "./decoder.js";
import type { DecoderSpec } from "./decoder.js";
import type { BuildOptions } from "./layers.js";

export type { BuildOptions };

export type LlamaModelType = "llama" | "mistral" | "qwen2" | "qwen3";

export interface LlamaConfig extends DecoderBasics {
  modelType: LlamaModelType;
  rope: RopeConfig;
  /** RMSNorm over each head's queries and keys (Qwen3's q_norm, k_norm). */
  qkNorm: boolean;
  /** Biases on q_proj, k_proj, v_proj. */
  qkvBias: boolean;
  /** Bias on o_proj. */
  oBias: boolean;
  mlpBias: boolean;
  hiddenAct: Activation;
  /** Per layer: the sliding attention window, or null for full causal attention. */
  slidingWindow: Array<number | null>;
}

const ARCH: Record<LlamaModelType, string> = { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM", qwen3: "Qwen3ForCausalLM" };
const MODEL_TYPES = Object.keys(ARCH);

/**
 * Qwen2/Qwen3 sliding windows as transformers decides them: `use_sliding_window` switches them on
 * (window `sliding_window`), `layer_types` names the sliding layers, else layers from
 * `max_window_layers` on (0: every layer) slide. Sliding layer types without use_sliding_window
 * are refused, as transformers refuses them.
 */
function qwenWindows(c: ConfigReader, nLayer: number): Array<number | null> {
  const use = c.bool("use_sliding_window", false);
  const w = use ? (c.json.sliding_window === undefined ? 4096 : c.optPosInt("sliding_window")) : null;
  const types = readLayerTypes(c, nLayer);
  if (types !== null) {
    return types.map((t, i) => {
      if (t === "sliding_attention" && !use) c.fail(`layer_types[${i}]`, `= "sliding_attention" needs use_sliding_window: true (it is false)`);
      return t === "sliding_attention" ? w : null;
    });
  }
  if (w === null) return new Array<number | null>(nLayer).fill(null);
  const from = c.nonNegInt("max_window_layers", 28);
  return Array.from({ length: nLayer }, (_, i) => (i >= from ? w : null));
}

/** Reads a transformers 4.x or 5.x config.json of model_type llama, mistral, qwen2 or qwen3. */
export function llamaConfigFromHF(json: Json, where = "config.json"): LlamaConfig {
  const c = new ConfigReader(json, where);
  const modelType = c.str("model_type", "llama");
  if (!MODEL_TYPES.includes(modelType)) {
    c.fail("model_type", `${showValue(modelType)} is not supported here (supported: ${MODEL_TYPES.join(", ")})`);
  }
  refuseMoE(c);
  // Qwen3's head_dim defaults to 128, the others' to hidden_size / num_attention_heads.
  const basics = readDecoderBasics(c, { headDim: modelType === "qwen3" ? 128 : null, rmsNormEps: 1e-6, tieWordEmbeddings: false, maxPositions: 2048 });
  const { nLayer, nPositions } = basics;
  const rope = readRope(c, { defaultTheta: 10000, defaultPartial: 1, allowPartial: false, maxPositions: nPositions });
  const attentionBias = modelType === "llama" || modelType === "qwen3" ? c.bool("attention_bias", false) : false;
  const qkvBias = modelType === "qwen2" ? true : attentionBias;
  if (modelType === "mistral") c.only("attention_bias", [false]);

  let slidingWindow: Array<number | null> = new Array<number | null>(nLayer).fill(null);
  if (modelType === "mistral") {
    const w = c.json.sliding_window === undefined ? 4096 : c.optPosInt("sliding_window");
    slidingWindow.fill(w);
  } else if (modelType === "qwen2" || modelType === "qwen3") slidingWindow = qwenWindows(c, nLayer);
  const cfg: LlamaConfig = {
    ...basics,
    modelType: modelType as LlamaModelType,
    rope,
    qkNorm: modelType === "qwen3",
    qkvBias,
    oBias: attentionBias,
    mlpBias: modelType === "llama" ? c.bool("mlp_bias", false) : false,
    hiddenAct: readActivation(c, "hidden_act", "silu"),
    slidingWindow,
  };
  return cfg;
}

/** A config.json for `c` that transformers 4.x and 5.x both read. */
export function llamaConfigToHF(c: LlamaConfig, dtype: DType): Json {
  const out: Json = {
    ...decoderBasicsToHF(c, c.modelType, ARCH[c.modelType], dtype),
    hidden_act: activationName(c.hiddenAct),
    ...ropeToHF(c.rope, { neox: false }),
  };
  if (c.modelType === "llama" || c.modelType === "qwen3") {
    out.attention_bias = c.oBias;
    if (c.modelType === "llama") out.mlp_bias = c.mlpBias;
  }
  const windows = new Set(c.slidingWindow.filter((w) => w !== null));
  if (c.modelType === "mistral") out.sliding_window = c.slidingWindow[0] ?? null;
  if (c.modelType === "qwen2" || c.modelType === "qwen3") {
    out.use_sliding_window = windows.size > 0;
    out.sliding_window = windows.size > 0 ? [...windows][0] : null;
    out.max_window_layers = c.slidingWindow.findIndex((w) => w !== null) < 0 ? c.nLayer : c.slidingWindow.findIndex((w) => w !== null);
    out.layer_types = c.slidingWindow.map((w) => (w === null ? "full_attention" : "sliding_attention"));
  }
  return out;
}

/** The block skeleton's settings for a LLaMA-family config. */
export function llamaSpec(c: LlamaConfig): DecoderSpec {
  return llamaLikeSpec(c, {
    rope: c.rope,
    act: c.hiddenAct,
    windows: c.slidingWindow,
    qkvBias: c.qkvBias,
    oBias: c.oBias,
    qkNorm: c.qkNorm ? "head" : "none",
    mlpBias: c.mlpBias,
  });
}

export class Llama extends DecoderLM<LlamaConfig> {
  constructor(config: LlamaConfig, opts: BuildOptions = {}) {
    super(config, llamaSpec(config), llamaConfigToHF, opts);
  }
}

/** The family's block: the skeleton's (decoder.ts), under the name it had before the skeleton. */
export { DecoderBlock as LlamaBlock } from "./decoder.js";
