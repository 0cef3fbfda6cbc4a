// config.json fields that the RMSNorm decoder families (LLaMA, Mistral, Qwen2/3, Gemma 2/3, Phi-3,
// OLMo 2) share, read and written in one place: sizes, grouped key/value heads, head size, norm
// epsilon, tied head, initialisation and special token ids.

import type { DType } from "../torch/index.js";
import type { ConfigReader, Json } from "./hf-config.js";
import type { CausalLMConfigBase } from "./causal-lm.js";

export interface DecoderBasics extends CausalLMConfigBase {
  /** num_key_value_heads (grouped-query attention when < nHead). */
  nKVHead: number;
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  initializerRange: number;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  /** Written back so that transformers does not fall back to a default id outside a small vocabulary. */
  padTokenId: number | null;
}

export interface BasicsDefaults {
  /** head_dim when config.json has none; null: hidden_size / num_attention_heads. */
  headDim: number | null;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  maxPositions: number;
}

function tokenId(c: ConfigReader, k: string): number | null {
  const v = c.json[k];
  return typeof v === "number" ? v : null;
}

export function readDecoderBasics(c: ConfigReader, d: BasicsDefaults): DecoderBasics {
  const nEmbd = c.posInt("hidden_size");
  const nHead = c.posInt("num_attention_heads");
  const nKVHead = c.posInt("num_key_value_heads", nHead);
  if (nHead % nKVHead !== 0) c.fail("num_key_value_heads", `(${nKVHead}) must divide num_attention_heads (${nHead})`);
  if (!c.has("head_dim") && d.headDim === null && nEmbd % nHead !== 0) c.fail("hidden_size", `(${nEmbd}) must be divisible by num_attention_heads (${nHead})`);
  return {
    vocabSize: c.posInt("vocab_size"),
    nPositions: c.posInt("max_position_embeddings", d.maxPositions),
    nEmbd,
    nLayer: c.posInt("num_hidden_layers"),
    nHead,
    nKVHead,
    headDim: c.has("head_dim") ? c.posInt("head_dim") : (d.headDim ?? nEmbd / nHead),
    intermediateSize: c.posInt("intermediate_size"),
    rmsNormEps: c.posNum("rms_norm_eps", d.rmsNormEps),
    tieWordEmbeddings: c.bool("tie_word_embeddings", d.tieWordEmbeddings),
    initializerRange: c.has("initializer_range") ? c.posNum("initializer_range") : 0.02,
    bosTokenId: tokenId(c, "bos_token_id"),
    eosTokenId: Array.isArray(c.json.eos_token_id) ? (c.json.eos_token_id as number[]) : tokenId(c, "eos_token_id"),
    padTokenId: tokenId(c, "pad_token_id"),
  };
}

/** The shared fields of a config.json that transformers 4.x and 5.x both read. */
export function decoderBasicsToHF(c: DecoderBasics, modelType: string, architecture: string, dtype: DType): Json {
  return {
    model_type: modelType,
    architectures: [architecture],
    vocab_size: c.vocabSize,
    hidden_size: c.nEmbd,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.nLayer,
    num_attention_heads: c.nHead,
    num_key_value_heads: c.nKVHead,
    head_dim: c.headDim,
    max_position_embeddings: c.nPositions,
    rms_norm_eps: c.rmsNormEps,
    tie_word_embeddings: c.tieWordEmbeddings,
    initializer_range: c.initializerRange,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    pad_token_id: c.padTokenId,
    use_cache: true,
    dtype,
    torch_dtype: dtype,
  };
}
