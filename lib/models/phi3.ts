// Phi-3 (model_type phi3) on the block skeleton (decoder.ts): LLaMA's pre-RMSNorm blocks with one
// fused projection qkv_proj laid out [q | k | v] and one fused gate_up_proj laid out [gate | up],
// partial rotary where partial_rotary_factor < 1, and an optional sliding window on every layer.
// The long-context RoPE variants (rope type longrope, formerly su / yarn) are refused with an error
// naming the field.

import type { DType } from "../torch/index.js";
import { ConfigReader, readActivation, readRope, ropeToHF, activationName, refuseMoE } from "./hf-config.js";
import type { Activation, Json } from "./hf-config.js";
import type { RopeConfig } from "./rope.js";
import { DecoderLM, llamaLikeSpec } from "./decoder.js";
import type { DecoderSpec } from "./decoder.js";
import { readDecoderBasics, decoderBasicsToHF } from "./decoder-config.js";
import type { DecoderBasics } from "./decoder-config.js";
import type { BuildOptions } from "./layers.js";

export interface Phi3Config extends DecoderBasics {
  modelType: "phi3";
  hiddenAct: Activation;
  rope: RopeConfig;
  /** Window of every layer, or null for full causal attention. */
  slidingWindow: number | null;
}

export function phi3ConfigFromHF(json: Json, where = "config.json"): Phi3Config {
  const c = new ConfigReader(json, where);
  c.only("model_type", ["phi3"]);
  refuseMoE(c);
  const basics = readDecoderBasics(c, { headDim: null, rmsNormEps: 1e-5, tieWordEmbeddings: false, maxPositions: 4096 });
  return {
    ...basics,
    modelType: "phi3",
    hiddenAct: readActivation(c, "hidden_act", "silu"),
    rope: readRope(c, { defaultTheta: 10000, defaultPartial: 1, allowPartial: true, maxPositions: basics.nPositions }),
    slidingWindow: c.optPosInt("sliding_window"),
  };
}

export function phi3ConfigToHF(c: Phi3Config, dtype: DType): Json {
  const rope = ropeToHF(c.rope, { neox: false });
  return {
    ...decoderBasicsToHF(c, "phi3", "Phi3ForCausalLM", dtype),
    hidden_act: activationName(c.hiddenAct),
    ...rope,
    partial_rotary_factor: c.rope.partialRotaryFactor,
    sliding_window: c.slidingWindow,
  };
}

export function phi3Spec(c: Phi3Config): DecoderSpec {
  return llamaLikeSpec(c, { rope: c.rope, act: c.hiddenAct, windows: new Array<number | null>(c.nLayer).fill(c.slidingWindow), qkvLayout: "fused", mlp: "gatedFused" });
}

export class Phi3 extends DecoderLM<Phi3Config> {
  constructor(config: Phi3Config, opts: BuildOptions = {}) {
    super(config, phi3Spec(config), phi3ConfigToHF, opts);
  }
}
