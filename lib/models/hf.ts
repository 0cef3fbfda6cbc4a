// Hugging Face checkpoints of any supported architecture: `loadPretrained(dir)` reads config.json,
// picks the architecture from `model_type` (gpt2, gpt_neox, llama, mistral, qwen2, qwen3, gemma2,
// gemma3_text, phi3, olmo2), checks the config against the weights' shapes (the safetensors
// headers) before allocating anything, builds the model in its final dtype and device and streams
// the safetensors weights into it;
// `savePretrained(dir, model)` writes config.json + model.safetensors (sharded when large) that
// transformers loads.

import * as fs from "node:fs";
import * as path from "node:path";
import { torch } from "../torch/index.js";
import type { Device, DType, Tensor } from "../torch/index.js";
import { saveSafetensorsDir } from "../torch/safetensors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { GPT2 } from "./gpt2.js";
import { loadGPT2, saveGPT2, readHFConfig, CONFIG_FILE } from "./gpt2-hf.js";
import { fromHFConfig } from "./gpt2-config.js";
import { Llama, llamaConfigFromHF, llamaSpec } from "./llama.js";
import type { LlamaConfig } from "./llama.js";
import { GPTNeoX, neoxConfigFromHF, neoxSpec } from "./neox.js";
import type { NeoXConfig } from "./neox.js";
import { Gemma, gemmaConfigFromHF, gemmaSpec } from "./gemma.js";
import type { GemmaConfig } from "./gemma.js";
import { Phi3, phi3ConfigFromHF, phi3Spec } from "./phi3.js";
import type { Phi3Config } from "./phi3.js";
import { Olmo2, olmo2ConfigFromHF, olmo2Spec } from "./olmo2.js";
import type { Olmo2Config } from "./olmo2.js";
import { decoderShapes } from "./decoder.js";
import type { DecoderSpec } from "./decoder.js";
import type { BuildOptions } from "./layers.js";
import { loadWeightsInto, storedDtype, checkConfigAgainstWeights } from "./hf-weights.js";
import { configJsonText } from "./hf-config.js";
import type { Json } from "./hf-config.js";
import { ConfigError, showValue } from "./errors.js";

export type PretrainedModel = GPT2 | Llama | GPTNeoX | Gemma | Phi3 | Olmo2;

export const SUPPORTED_MODEL_TYPES = ["gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "phi3", "olmo2"] as const;

export type ArchitectureConfig =
  | { kind: "gpt2" }
  | { kind: "llama"; config: LlamaConfig }
  | { kind: "gpt_neox"; config: NeoXConfig }
  | { kind: "gemma"; config: GemmaConfig }
  | { kind: "phi3"; config: Phi3Config }
  | { kind: "olmo2"; config: Olmo2Config };

/** Which architecture a config.json describes, with its parsed config. Unsupported values are ConfigErrors naming `where` and the field. */
export function architectureOf(json: Json, where = CONFIG_FILE): ArchitectureConfig {
  const mt = json.model_type;
  switch (mt) {
    case "gpt2":
      // Checked here too (loadGPT2 reads it again), so that every architecture is validated up front.
      fromHFConfig(json, where);
      return { kind: "gpt2" };
    case "gpt_neox":
      return { kind: "gpt_neox", config: neoxConfigFromHF(json, where) };
    case "llama":
    case "mistral":
    case "qwen2":
    case "qwen3":
      return { kind: "llama", config: llamaConfigFromHF(json, where) };
    case "gemma2":
    case "gemma3_text":
      return { kind: "gemma", config: gemmaConfigFromHF(json, where) };
    case "phi3":
      return { kind: "phi3", config: phi3ConfigFromHF(json, where) };
    case "olmo2":
      return { kind: "olmo2", config: olmo2ConfigFromHF(json, where) };
    default:
      if (mt === undefined || mt === null) throw new ConfigError(where, "model_type", `is missing (one of ${SUPPORTED_MODEL_TYPES.join(", ")})`);
      throw new ConfigError(where, "model_type", `${showValue(mt)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(", ")})`);
  }
}

export interface LoadPretrainedOptions {
  device?: Device;
  /**
   * Floating-point dtype of the model. Default: the dtype the weights are stored in (GPT-2:
   * float32, as loadGPT2). Weights in another dtype are cast tensor by tensor while loading.
   */
  dtype?: DType;
}

const FLOAT_DTYPES: readonly DType[] = ["float32", "float64", "bfloat16", "float16"];

/** Maps checkpoint names onto ours: drops recomputed buffers and a tied head, adds a missing base prefix. */
function renamer(prefix: string, head: string, tied: boolean, skip: RegExp): (n: string) => string | null {
  return (n) => {
    if (skip.test(n)) return null;
    if (n === `${head}.weight`) return tied ? null : n;
    return n.startsWith(`${prefix}.`) ? n : `${prefix}.${n}`;
  };
}

type DecoderArch = Exclude<ArchitectureConfig, { kind: "gpt2" }>;

/** The block skeleton's spec of an architecture and a builder of its model. */
function decoderOf(arch: DecoderArch): { spec: DecoderSpec; build: (o: BuildOptions) => Exclude<PretrainedModel, GPT2> } {
  switch (arch.kind) {
    case "llama":
      return { spec: llamaSpec(arch.config), build: (o) => new Llama(arch.config, o) };
    case "gpt_neox":
      return { spec: neoxSpec(arch.config), build: (o) => new GPTNeoX(arch.config, o) };
    case "gemma":
      return { spec: gemmaSpec(arch.config), build: (o) => new Gemma(arch.config, o) };
    case "phi3":
      return { spec: phi3Spec(arch.config), build: (o) => new Phi3(arch.config, o) };
    case "olmo2":
      return { spec: olmo2Spec(arch.config), build: (o) => new Olmo2(arch.config, o) };
  }
}

/** Loads a Hugging Face model folder (config.json + model.safetensors or shards), in eval mode. */
export function loadPretrained(dir: string, opts: LoadPretrainedOptions = {}): PretrainedModel {
  if (typeof dir !== "string" || dir.length === 0) throw new TypeError("loadPretrained: dir must be a non-empty string");
  if (!fs.existsSync(path.join(dir, CONFIG_FILE))) throw new Error(`loadPretrained: ${dir} has no ${CONFIG_FILE}`);
  if (opts.dtype !== undefined && !FLOAT_DTYPES.includes(opts.dtype)) {
    throw new TypeError(`loadPretrained: dtype must be one of ${FLOAT_DTYPES.join(", ")}, got ${JSON.stringify(opts.dtype)}`);
  }
  if (opts.device !== undefined && opts.device !== "cpu" && !torch.cuda.isAvailable()) {
    throw new Error(`loadPretrained: device ${opts.device} requested but CUDA is not available`);
  }
  const json = readHFConfig(dir);
  const arch = architectureOf(json, path.join(dir, CONFIG_FILE));
  // Like transformers' from_pretrained, the model comes back in eval mode (no dropout).
  if (arch.kind === "gpt2") return loadGPT2(dir, opts).eval();
  const dtype = opts.dtype ?? storedDtype(dir);
  const build = { device: opts.device, dtype, init: false };
  const decoder = decoderOf(arch);
  const tied = arch.config.tieWordEmbeddings;
  // Recomputed buffers (rotary inv_freq, GPT-NeoX's causal mask) are not weights.
  const rename = arch.kind === "gpt_neox"
    ? renamer("gpt_neox", "embed_out", tied, /\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/)
    : renamer("model", "lm_head", tied, /(^|\.)rotary_emb(_local)?\.inv_freq$/);
  checkConfigAgainstWeights(path.join(dir, CONFIG_FILE), dir, decoderShapes(decoder.spec), rename);
  const model = decoder.build(build);
  try {
    loadWeightsInto(model, dir, { rename });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model.eval();
}

export interface SavePretrainedOptions {
  /** Further config.json fields (e.g. the tokenizer used); may not contradict the architecture. */
  extraConfig?: Json;
  /** Largest safetensors shard in bytes (default 5 GB, as transformers). */
  maxShardBytes?: number;
}

/**
 * Writes `dir/config.json` and the weights in transformers' layout (model.safetensors, or shards
 * and model.safetensors.index.json), every file atomically. GPT-2 goes through saveGPT2.
 */
export function savePretrained(dir: string, model: PretrainedModel, opts: SavePretrainedOptions = {}): void {
  if (typeof dir !== "string" || dir.length === 0) throw new TypeError("savePretrained: dir must be a non-empty string");
  if (model instanceof GPT2) {
    saveGPT2(dir, model, opts.extraConfig ?? {});
    return;
  }
  const base = model.toHFConfig();
  const extra = opts.extraConfig ?? {};
  for (const k of Object.keys(extra)) {
    if (k in base && JSON.stringify(extra[k]) !== JSON.stringify(base[k])) {
      throw new RangeError(`savePretrained: extraConfig.${k} (${JSON.stringify(extra[k])}) contradicts the model (${JSON.stringify(base[k])})`);
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  // Remove weights of an earlier save with another sharding, so the folder holds one consistent set.
  for (const f of fs.readdirSync(dir)) {
    if (/^model(-\d{5}-of-\d{5})?\.safetensors$/.test(f) || f === "model.safetensors.index.json") fs.rmSync(path.join(dir, f));
  }
  const tensors: Record<string, Tensor> = { ...model.stateDict() };
  saveSafetensorsDir(dir, tensors, { metadata: { format: "pt" }, maxShardBytes: opts.maxShardBytes });
  writeFileAtomic(path.join(dir, CONFIG_FILE), configJsonText({ ...base, ...extra }));
}

export { Llama, GPTNeoX, Gemma, Phi3, Olmo2 };
