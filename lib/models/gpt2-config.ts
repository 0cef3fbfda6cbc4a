// GPT-2 configuration: our camelCase fields, their defaults, validation, and the mapping to and from
// a Hugging Face transformers GPT-2 config.json.

import { ConfigError, showValue } from "./errors.js";
import { ConfigReader, readActivation, activationName } from "./hf-config.js";
import type { Activation } from "./hf-config.js";

export interface GPT2Config {
  /** Rows of the token embedding (may exceed the tokenizer's vocabulary, e.g. padded to 64). */
  vocabSize: number;
  /** Longest sequence (rows of the position embedding). */
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** Dropout on embeddings, attention probabilities and residual branches (0 = none). */
  dropout: number;
  /** Biases in the linear layers and LayerNorms (GPT-2: true). */
  bias: boolean;
  layerNormEpsilon: number;
  /** The MLP's activation (transformers' activation_function; GPT-2: tanh-GELU, "gelu_new"). */
  activation: Activation;
}

/** GPT-2 small (124M). */
export const GPT2_DEFAULTS: Readonly<GPT2Config> = Object.freeze({
  vocabSize: 50257,
  nPositions: 1024,
  nEmbd: 768,
  nLayer: 12,
  nHead: 12,
  dropout: 0,
  bias: true,
  layerNormEpsilon: 1e-5,
  activation: "gelu_tanh",
});

function posInt(field: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new RangeError(`GPT-2 config: ${field} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

const ACTIVATIONS: readonly Activation[] = ["gelu_tanh", "gelu", "relu", "silu"];

/** Fills defaults and checks every field; the error names the field. */
export function gpt2Config(partial: Partial<GPT2Config> = {}): GPT2Config {
  if (partial === null || typeof partial !== "object") throw new TypeError("GPT-2 config must be an object");
  const known = new Set(Object.keys(GPT2_DEFAULTS));
  for (const k of Object.keys(partial)) {
    if (!known.has(k)) throw new RangeError(`GPT-2 config: unknown field '${k}' (known: ${[...known].join(", ")})`);
  }
  const c: GPT2Config = { ...GPT2_DEFAULTS };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  posInt("vocabSize", c.vocabSize);
  posInt("nPositions", c.nPositions);
  posInt("nEmbd", c.nEmbd);
  posInt("nLayer", c.nLayer);
  posInt("nHead", c.nHead);
  if (c.nEmbd % c.nHead !== 0) throw new RangeError(`GPT-2 config: nEmbd (${c.nEmbd}) must be divisible by nHead (${c.nHead})`);
  if (typeof c.dropout !== "number" || !(c.dropout >= 0 && c.dropout < 1)) {
    throw new RangeError(`GPT-2 config: dropout must be in [0, 1), got ${JSON.stringify(c.dropout)}`);
  }
  if (typeof c.bias !== "boolean") throw new TypeError(`GPT-2 config: bias must be a boolean, got ${JSON.stringify(c.bias)}`);
  if (typeof c.layerNormEpsilon !== "number" || !(c.layerNormEpsilon > 0)) {
    throw new RangeError(`GPT-2 config: layerNormEpsilon must be a positive number, got ${JSON.stringify(c.layerNormEpsilon)}`);
  }
  if (!ACTIVATIONS.includes(c.activation)) throw new RangeError(`GPT-2 config: activation must be one of ${ACTIVATIONS.join(", ")}, got ${JSON.stringify(c.activation)}`);
  return c;
}

/** A transformers GPT-2 config.json object for `c`. */
export function toHFConfig(c: GPT2Config): Record<string, unknown> {
  return {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    vocab_size: c.vocabSize,
    n_positions: c.nPositions,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: null,
    activation_function: activationName(c.activation),
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    layer_norm_epsilon: c.layerNormEpsilon,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    tie_word_embeddings: true,
    use_cache: true,
    bos_token_id: 50256,
    eos_token_id: 50256,
    // Not a transformers field: a model without biases is saved with zero biases (which
    // transformers computes exactly), and this flag tells our loader to drop them again.
    bias: c.bias,
  };
}

/**
 * Reads a transformers GPT-2 config.json object; fields we cannot honour are errors. Every error is
 * a ConfigError naming `where` (the file) and the field under its config.json name.
 */
export function fromHFConfig(json: Record<string, unknown>, where = "config.json"): GPT2Config {
  const fail = (field: string | undefined, problem: string): never => {
    throw new ConfigError(where, field, problem);
  };
  if (json === null || typeof json !== "object" || Array.isArray(json)) fail(undefined, `must hold a JSON object, got ${showValue(json)}`);
  const get = (k: string) => json[k];
  // Absent is accepted: GPT-2 configs written before transformers had model_type lack it.
  if (get("model_type") !== undefined && get("model_type") !== "gpt2") fail("model_type", `${showValue(get("model_type"))} is not supported here (supported: gpt2)`);
  // Sizes first: the checks below compute with them.
  const sizes: Array<[string, unknown]> = [
    ["vocab_size", get("vocab_size")],
    [get("n_positions") === undefined && get("n_ctx") !== undefined ? "n_ctx" : "n_positions", get("n_positions") ?? get("n_ctx")],
    ["n_embd", get("n_embd")],
    ["n_layer", get("n_layer")],
    ["n_head", get("n_head")],
  ];
  for (const [k, v] of sizes) {
    if (v === undefined) fail(k, "is missing (a positive integer)");
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) fail(k, `must be a positive integer, got ${showValue(v)}`);
  }
  const nEmbd = get("n_embd") as number;
  const nHead = get("n_head") as number;
  if (nEmbd % nHead !== 0) fail("n_embd", `(${nEmbd}) must be divisible by n_head (${nHead})`);
  const activation = readActivation(new ConfigReader(json, where), "activation_function", "gelu_new");
  const inner = get("n_inner");
  if (inner !== undefined && inner !== null && inner !== 4 * nEmbd) fail("n_inner", `must be null or 4 * n_embd (${4 * nEmbd}), got ${showValue(inner)}`);
  for (const flag of ["scale_attn_by_inverse_layer_idx", "add_cross_attention"]) {
    if (get(flag) === true) fail(flag, "= true is not supported (only false)");
  }
  if (get("scale_attn_weights") === false) fail("scale_attn_weights", "= false is not supported (only true)");
  if (get("tie_word_embeddings") === false) fail("tie_word_embeddings", "= false is not supported for GPT-2 (only true)");
  for (const k of ["resid_pdrop", "embd_pdrop", "attn_pdrop"]) {
    const v = get(k);
    if (v !== undefined && v !== null && (typeof v !== "number" || !(v >= 0 && v < 1))) fail(k, `must be a number in [0, 1), got ${showValue(v)}`);
  }
  const eps = get("layer_norm_epsilon");
  if (eps !== undefined && (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps))) fail("layer_norm_epsilon", `must be a positive number, got ${showValue(eps)}`);
  if (get("bias") !== undefined && typeof get("bias") !== "boolean") fail("bias", `must be true or false, got ${showValue(get("bias"))}`);
  const pdrop = get("resid_pdrop") ?? get("embd_pdrop") ?? get("attn_pdrop") ?? 0;
  return gpt2Config({
    vocabSize: get("vocab_size") as number,
    nPositions: (get("n_positions") ?? get("n_ctx")) as number,
    nEmbd,
    nLayer: get("n_layer") as number,
    nHead,
    dropout: pdrop as number,
    bias: (get("bias") ?? true) as boolean,
    layerNormEpsilon: (get("layer_norm_epsilon") ?? 1e-5) as number,
    activation,
  });
}
