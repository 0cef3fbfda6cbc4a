// GPT-NeoX (EleutherAI; the Pythia suite): pre-LayerNorm blocks (with biases) whose attention
// rotates only the first fraction of each head's dims (partial rotary), a GELU MLP, and either the
// parallel residual h + attn(ln1(h)) + mlp(ln2(h)) or the sequential one of GPT-2. Names are
// transformers' (gpt_neox.layers.{i}.attention.query_key_value.weight, embed_out.weight, ...).
// The blocks are the skeleton's (decoder.ts) with LayerNorm and a fused per-head qkv projection.
//
// Hook points have GPT-2's names. With the parallel residual, hook_resid_mid is h + attn (what the
// sequential block would pass on; the MLP does not read it), so hook_attn_out + hook_mlp_out is
// still the block's whole update. h^0 is the token embedding.

import type { DType } from "../torch/index.js";
import { ConfigReader, readActivation, readRope, ropeToHF, activationName } from "./hf-config.js";
import type { Activation, Json } from "./hf-config.js";
import type { CausalLMConfigBase } from "./causal-lm.js";
import type { RopeConfig } from "./rope.js";
import { DecoderLM, LLAMA_NAMES } from "./decoder.js";
import type { DecoderNames, DecoderSpec } from "./decoder.js";
import type { BuildOptions } from "./layers.js";

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

/** transformers' GPT-NeoX module names on the block skeleton. */
const NEOX_NAMES: DecoderNames = {
  ...LLAMA_NAMES,
  base: "gpt_neox",
  embed: "embed_in",
  finalNorm: "final_layer_norm",
  head: "embed_out",
  attn: "attention",
  qkv: "query_key_value",
  o: "dense",
  up: "dense_h_to_4h",
  down: "dense_4h_to_h",
};

/** The block skeleton's settings for a GPT-NeoX config: LayerNorm, fused per-head qkv, plain MLP. */
export function neoxSpec(c: NeoXConfig): DecoderSpec {
  return {
    vocabSize: c.vocabSize,
    nEmbd: c.nEmbd,
    nLayer: c.nLayer,
    nHead: c.nHead,
    nKVHead: c.nHead,
    headDim: c.nEmbd / c.nHead,
    intermediateSize: c.intermediateSize,
    names: NEOX_NAMES,
    norm: { kind: "layer", eps: c.layerNormEps },
    parallelResidual: c.useParallelResidual,
    qkvLayout: "fusedPerHead",
    qkvBias: c.attentionBias,
    oBias: c.attentionBias,
    qkNorm: "none",
    attnScale: null,
    attnSoftcap: null,
    mlp: "plain",
    mlpBias: true,
    act: c.hiddenAct,
    layers: Array.from({ length: c.nLayer }, () => ({ window: null, localRope: false })),
    rope: c.rope,
    localRope: null,
    embedScale: false,
    finalSoftcap: null,
    tieWordEmbeddings: c.tieWordEmbeddings,
    initializerRange: c.initializerRange,
  };
}

export class GPTNeoX extends DecoderLM<NeoXConfig> {
  constructor(config: NeoXConfig, opts: BuildOptions = {}) {
    super(config, neoxSpec(config), neoxConfigToHF, opts);
  }
}

/** The family's block: the skeleton's (decoder.ts), under the name it had before the skeleton. */
export { DecoderBlock as NeoXBlock } from "./decoder.js";
