// Reading Hugging Face config.json fields: typed getters whose errors name the field, the RoPE
// settings under both transformers 4.x names (rope_theta, rope_scaling, rotary_pct,
// rotary_emb_base, partial_rotary_factor) and 5.x names (rope_parameters), and activations.

import type { RopeConfig } from "./rope.js";
import { ConfigError, showValue } from "./errors.js";

export type Json = Record<string, unknown>;

/** Typed access to one config.json; every error is a ConfigError that says `<where>: <field> ...`. */
export class ConfigReader {
  constructor(readonly json: Json, readonly where = "config.json") {}

  has(k: string): boolean {
    return this.json[k] !== undefined && this.json[k] !== null;
  }

  fail(field: string, msg: string): never {
    throw new ConfigError(this.where, field, msg);
  }

  posInt(k: string, dflt?: number): number {
    const v = this.json[k] ?? dflt;
    if (v === undefined) this.fail(k, "is missing (a positive integer)");
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) this.fail(k, `must be a positive integer, got ${showValue(v)}`);
    return v;
  }

  nonNegInt(k: string, dflt?: number): number {
    const v = this.json[k] ?? dflt;
    if (v === undefined) this.fail(k, "is missing (a non-negative integer)");
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) this.fail(k, `must be a non-negative integer, got ${showValue(v)}`);
    return v;
  }

  optPosNum(k: string): number | null {
    return this.has(k) ? this.posNum(k) : null;
  }

  optPosInt(k: string): number | null {
    return this.has(k) ? this.posInt(k) : null;
  }

  posNum(k: string, dflt?: number): number {
    const v = this.json[k] ?? dflt;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) this.fail(k, `must be a positive number, got ${showValue(v)}`);
    return v;
  }

  bool(k: string, dflt: boolean): boolean {
    const v = this.json[k] ?? dflt;
    if (typeof v !== "boolean") this.fail(k, `must be true or false, got ${showValue(v)}`);
    return v;
  }

  str(k: string, dflt: string): string {
    const v = this.json[k] ?? dflt;
    if (typeof v !== "string") this.fail(k, `must be a string, got ${showValue(v)}`);
    return v;
  }

  /** A field that must be absent, null or one of `allowed` (values we can honour). */
  only(k: string, allowed: unknown[]): void {
    const v = this.json[k];
    if (v === undefined || v === null) return;
    if (!allowed.some((a) => JSON.stringify(a) === JSON.stringify(v))) {
      this.fail(k, `= ${showValue(v)} is not supported (supported: ${allowed.map((a) => JSON.stringify(a)).join(", ")})`);
    }
  }
}

export type Activation = "silu" | "gelu" | "gelu_tanh" | "relu";

/** transformers' ACT2FN names we support, by what they compute. */
const ACTIVATIONS: Readonly<Record<string, Activation>> = {
  silu: "silu",
  swish: "silu",
  gelu: "gelu",
  gelu_new: "gelu_tanh",
  gelu_fast: "gelu_tanh",
  gelu_pytorch_tanh: "gelu_tanh",
  relu: "relu",
};

export function readActivation(c: ConfigReader, field: string, dflt: string): Activation {
  const name = c.str(field, dflt);
  const act = ACTIVATIONS[name];
  if (act === undefined) c.fail(field, `= ${showValue(name)} is not supported (supported: ${Object.keys(ACTIVATIONS).join(", ")})`);
  return act;
}

/** The transformers name written back for an activation. */
export function activationName(a: Activation): string {
  return a === "gelu_tanh" ? "gelu_new" : a;
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const ROPE_TYPES = ["default", "linear", "llama3"];

/**
 * RoPE settings from either transformers generation's fields, resolved the way transformers 5 does
 * (`convert_rope_params_to_dict` + `standardize_rope_params`): `rope_scaling` (4.x) or
 * `rope_parameters` (5.x) give the type and its parameters; theta comes from that dict, else the
 * top-level `rope_theta` (or, for GPT-NeoX, `rotary_emb_base`), else the default; the rotated
 * fraction from the dict, else `rotary_pct` / `partial_rotary_factor`, else the default.
 */
export function readRope(
  c: ConfigReader,
  o: {
    defaultTheta: number;
    defaultPartial: number;
    allowPartial: boolean;
    maxPositions: number;
    /** Read this dict (named `field` in errors) instead of rope_scaling / rope_parameters (Gemma 3's per layer type). */
    dict?: { field: string; params: Json | null };
    /** Top-level fields that give theta (default rope_theta, rotary_emb_base). */
    thetaFields?: string[];
  },
): RopeConfig {
  const scalingField = o.dict?.field ?? (c.has("rope_scaling") ? "rope_scaling" : "rope_parameters");
  const raw = o.dict !== undefined ? o.dict.params : (c.json[scalingField] ?? null);
  if (raw !== null && !isObject(raw)) c.fail(scalingField, `must be an object or null, got ${showValue(raw)}`);
  const rp: Json = raw ?? {};
  const layerTyped = Object.values(rp).some(isObject);
  if (layerTyped) c.fail(scalingField, "with RoPE parameters per layer type is not supported");
  const typeValue = rp.rope_type ?? rp.type ?? "default";
  const typeField = `${scalingField}.${rp.rope_type !== undefined ? "rope_type" : "type"}`;
  if (typeof typeValue !== "string" || !ROPE_TYPES.includes(typeValue)) {
    c.fail(typeField, `= ${showValue(typeValue)} is not supported (supported: ${ROPE_TYPES.join(", ")})`);
  }
  const type = typeValue as RopeConfig["type"];
  const pick = (names: string[], top: string[], dflt: number): [number, string] => {
    for (const n of names) if (rp[n] !== undefined && rp[n] !== null) return [rp[n] as number, `${scalingField}.${n}`];
    for (const n of top) if (c.has(n)) return [c.json[n] as number, n];
    return [dflt, names[0]!];
  };
  const num = ([v, field]: [number, string], positive = true): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || (positive && !(v > 0))) c.fail(field, `must be a positive number, got ${showValue(v)}`);
    return v;
  };
  const theta = num(pick(["rope_theta"], o.thetaFields ?? ["rope_theta", "rotary_emb_base"], o.defaultTheta));
  const [pv, pf] = pick(["partial_rotary_factor"], ["partial_rotary_factor", "rotary_pct"], o.defaultPartial);
  const partial = num([pv, pf]);
  if (partial > 1) c.fail(pf, `must be in (0, 1], got ${partial}`);
  if (!o.allowPartial && partial !== 1) c.fail(pf, `= ${partial} is not supported for this model type (only 1)`);
  const rope: RopeConfig = { type, theta, partialRotaryFactor: partial };
  if (type === "linear" || type === "llama3") rope.factor = num([rp.factor as number, `${scalingField}.factor`]);
  if (type === "llama3") {
    rope.lowFreqFactor = num([rp.low_freq_factor as number, `${scalingField}.low_freq_factor`]);
    rope.highFreqFactor = num([rp.high_freq_factor as number, `${scalingField}.high_freq_factor`]);
    if (!(rope.highFreqFactor > rope.lowFreqFactor)) c.fail(`${scalingField}.high_freq_factor`, "must exceed low_freq_factor");
    rope.originalMaxPositions = num(pick(["original_max_position_embeddings"], ["original_max_position_embeddings"], o.maxPositions));
  }
  return rope;
}

/** rope_parameters (transformers 5) plus the 4.x fields, so that both generations read it. */
export function ropeToHF(rope: RopeConfig, opts: { neox: boolean }): Json {
  const params: Json = { rope_type: rope.type, rope_theta: rope.theta };
  if (rope.partialRotaryFactor !== 1 || opts.neox) params.partial_rotary_factor = rope.partialRotaryFactor;
  if (rope.factor !== undefined) params.factor = rope.factor;
  if (rope.type === "llama3") {
    params.low_freq_factor = rope.lowFreqFactor;
    params.high_freq_factor = rope.highFreqFactor;
    params.original_max_position_embeddings = rope.originalMaxPositions;
  }
  const out: Json = { rope_parameters: params };
  if (opts.neox) {
    out.rotary_pct = rope.partialRotaryFactor;
    out.rotary_emb_base = rope.theta;
  } else out.rope_theta = rope.theta;
  if (rope.type !== "default") {
    const { rope_theta: _t, partial_rotary_factor: _p, ...scaling } = params;
    out.rope_scaling = scaling;
  }
  return out;
}

export type LayerType = "full_attention" | "sliding_attention";

/** `layer_types` (transformers 5: one of full_attention / sliding_attention per layer), or null when absent. */
export function readLayerTypes(c: ConfigReader, nLayer: number): LayerType[] | null {
  const types = c.json.layer_types;
  if (types === undefined || types === null) return null;
  if (!Array.isArray(types)) c.fail("layer_types", `must be a list, got ${showValue(types)}`);
  if (types.length !== nLayer) c.fail("layer_types", `must list ${nLayer} layers (num_hidden_layers), got ${types.length}`);
  return types.map((t, i) => {
    if (t !== "full_attention" && t !== "sliding_attention") c.fail(`layer_types[${i}]`, `= ${showValue(t)} is not supported (full_attention, sliding_attention)`);
    return t as LayerType;
  });
}

/** Refuses mixture-of-experts configs (fields that only MoE variants carry) in one line naming the field. */
export function refuseMoE(c: ConfigReader): void {
  for (const k of ["num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok"]) {
    const v = c.json[k];
    if (v !== undefined && v !== null && v !== 0) c.fail(k, `= ${showValue(v)}: mixture-of-experts models are not supported`);
  }
}

/** Fields transformers 5 types as float (its strict config classes refuse an integer there). */
const FLOAT_FIELDS = ["initializer_range", "rms_norm_eps", "layer_norm_eps", "final_logit_softcapping", "attn_logit_softcapping"];

/** config.json text: JSON, with the float-typed fields written with a decimal point (30.0, not 30). */
export function configJsonText(cfg: Json): string {
  let text = JSON.stringify(cfg, null, 2);
  for (const k of FLOAT_FIELDS) text = text.replace(new RegExp(`^(  "${k}": -?\\d+)(,?)$`, "m"), "$1.0$2");
  return text + "\n";
}
