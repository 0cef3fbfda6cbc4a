// OLMo 2 (model_type olmo2) on the block skeleton (decoder.ts): RMSNorm after attention and after
// the MLP (none before them), RMSNorm of the queries and keys over all heads (q_norm over H·D,
// k_norm over Hkv·D, before the heads are split), a SwiGLU MLP, norms scaled in float32.

import type { DType } from "../torch/index.js";
import { ConfigReader, readActivation, readRope, ropeToHF, activationName, refuseMoE } from "./hf-config.js";
import type { Activation, Json } from "./hf-config.js";
import type { RopeConfig } from "./rope.js";
import { DecoderLM, LLAMA_NAMES, llamaLikeSpec } from "./decoder.js";
import type { DecoderSpec } from "./decoder.js";
import { readDecoderBasics, decoderBasicsToHF } from "./decoder-config.js";
import type { DecoderBasics } from "./decoder-config.js";
import type { BuildOptions } from "./layers.js";

export interface Olmo2Config extends DecoderBasics {
  modelType: "olmo2";
  hiddenAct: Activation;
  attentionBias: boolean;
  rope: RopeConfig;
}

export function olmo2ConfigFromHF(json: Json, where = "config.json"): Olmo2Config {
  const c = new ConfigReader(json, where);
  c.only("model_type", ["olmo2"]);
  refuseMoE(c);
  const basics = readDecoderBasics(c, { headDim: null, rmsNormEps: 1e-5, tieWordEmbeddings: false, maxPositions: 2048 });
  return {
    ...basics,
    modelType: "olmo2",
    hiddenAct: readActivation(c, "hidden_act", "silu"),
    attentionBias: c.bool("attention_bias", false),
    rope: readRope(c, { defaultTheta: 10000, defaultPartial: 1, allowPartial: false, maxPositions: basics.nPositions }),
  };
}

export function olmo2ConfigToHF(c: Olmo2Config, dtype: DType): Json {
  return {
    ...decoderBasicsToHF(c, "olmo2", "Olmo2ForCausalLM", dtype),
    hidden_act: activationName(c.hiddenAct),
    attention_bias: c.attentionBias,
    ...ropeToHF(c.rope, { neox: false }),
  };
}

const OLMO2_NAMES = { ...LLAMA_NAMES, inputNorm: null, postAttnNorm: "post_attention_layernorm", preMlpNorm: null, postMlpNorm: "post_feedforward_layernorm" };

export function olmo2Spec(c: Olmo2Config): DecoderSpec {
  return llamaLikeSpec(c, {
    rope: c.rope,
    act: c.hiddenAct,
    windows: new Array<number | null>(c.nLayer).fill(null),
    names: OLMO2_NAMES,
    norm: { kind: "rmsScaleFloat32", eps: c.rmsNormEps },
    qkvBias: c.attentionBias,
    oBias: c.attentionBias,
    qkNorm: "all",
  });
}

export class Olmo2 extends DecoderLM<Olmo2Config> {
  constructor(config: Olmo2Config, opts: BuildOptions = {}) {
    super(config, olmo2Spec(config), olmo2ConfigToHF, opts);
  }
}
