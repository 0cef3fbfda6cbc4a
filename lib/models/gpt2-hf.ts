// GPT-2 in Hugging Face format: a folder with config.json and model.safetensors that
// transformers' GPT2LMHeadModel.from_pretrained loads, and that we load back.

import * as fs from "node:fs";
import * as path from "node:path";
import { torch } from "../torch/index.js";
import type { Device, DType, Tensor } from "../torch/index.js";
import { saveSafetensors, loadSafetensorsDir, SAFETENSORS_FILE } from "../torch/safetensors.js";
import { writeFileAtomic } from "../util/atomic.js";
import { init } from "../nn/index.js";
import { GPT2 } from "./gpt2.js";
import { fromHFConfig, toHFConfig } from "./gpt2-config.js";
import type { GPT2Config } from "./gpt2-config.js";
import { ConfigError, showValue } from "./errors.js";
import { checkConfigAgainstWeights } from "./hf-weights.js";

export const CONFIG_FILE = "config.json";

// Fields that describe the architecture: extra config may not contradict them.
const ARCHITECTURE_FIELDS = [
  "model_type",
  "vocab_size",
  "n_positions",
  "n_embd",
  "n_layer",
  "n_head",
  "n_inner",
  "activation_function",
  "layer_norm_epsilon",
  "tie_word_embeddings",
  "bias",
  "scale_attn_weights",
  "scale_attn_by_inverse_layer_idx",
];

/** Names of the biases a bias-free model lacks, with their lengths (for export as zeros). */
function biasShapes(c: GPT2Config): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `transformer.h.${i}`;
    out.push([`${p}.ln_1.bias`, c.nEmbd], [`${p}.attn.c_attn.bias`, 3 * c.nEmbd], [`${p}.attn.c_proj.bias`, c.nEmbd]);
    out.push([`${p}.ln_2.bias`, c.nEmbd], [`${p}.mlp.c_fc.bias`, 4 * c.nEmbd], [`${p}.mlp.c_proj.bias`, c.nEmbd]);
  }
  out.push(["transformer.ln_f.bias", c.nEmbd]);
  return out;
}

/**
 * Writes `dir/config.json` (transformers' GPT-2 fields plus `extraConfig`) and
 * `dir/model.safetensors` (transformers' names; the tied lm_head is left out, as transformers
 * does), each atomically. A model without biases is written with zero biases, which
 * transformers computes identically.
 */
export function saveGPT2(dir: string, model: GPT2, extraConfig: Record<string, unknown> = {}): void {
  if (typeof dir !== "string" || dir.length === 0) throw new TypeError("saveGPT2: dir must be a non-empty string");
  const base = toHFConfig(model.config);
  for (const k of ARCHITECTURE_FIELDS) {
    if (k in extraConfig && JSON.stringify(extraConfig[k]) !== JSON.stringify(base[k])) {
      throw new RangeError(`saveGPT2: extraConfig.${k} (${JSON.stringify(extraConfig[k])}) contradicts the model (${JSON.stringify(base[k])})`);
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  torch.tidy(() => {
    const tensors: Record<string, Tensor> = { ...model.stateDict() };
    if (!model.config.bias) {
      const { device, dtype } = model.transformer.wte.weight;
      for (const [name, n] of biasShapes(model.config)) tensors[name] = torch.zeros([n], { device: device as Device, dtype });
    }
    saveSafetensors(path.join(dir, SAFETENSORS_FILE), tensors, { format: "pt" });
  });
  // transformers (5.x name) loads the weights in this dtype when asked for dtype="auto".
  const dtype = model.transformer.wte.weight.dtype;
  writeFileAtomic(path.join(dir, CONFIG_FILE), JSON.stringify({ ...base, dtype, ...extraConfig }, null, 2) + "\n");
}

/** Reads `dir/config.json` as plain JSON (our extra fields included); a file that is not a JSON object is a ConfigError. */
export function readHFConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, undefined, `invalid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new ConfigError(file, undefined, `must hold a JSON object, got ${showValue(json)}`);
  return json as Record<string, unknown>;
}

/**
 * Maps a transformers GPT-2 state dict to ours: adds the "transformer." prefix that GPT2Model
 * checkpoints lack, drops the tied lm_head.weight and the causal-mask buffers older checkpoints
 * carry, and (for a bias-free config) the zero biases saveGPT2 wrote. Returns a new object; the
 * tensors are the caller's.
 */
export function gpt2StateDictFromHF(tensors: Record<string, Tensor>, config: GPT2Config): Record<string, Tensor> {
  const names = Object.keys(tensors);
  const prefixed = names.some((n) => n.startsWith("transformer."));
  const drop = new Set(config.bias ? [] : biasShapes(config).map(([n]) => n));
  const out: Record<string, Tensor> = {};
  for (const n of names) {
    const key = prefixed || n.startsWith("lm_head.") ? n : `transformer.${n}`;
    if (key === "lm_head.weight") continue;
    if (/\.attn\.(bias|masked_bias)$/.test(key) && tensors[n]!.ndim !== 1) continue;
    if (drop.has(key)) continue;
    out[key] = tensors[n]!;
  }
  return out;
}

/** transformers' GPT-2 tensors for `c` with their shapes (Conv1D weights are [in, out]); biases only with `bias`. */
function gpt2Shapes(c: GPT2Config): Map<string, number[]> {
  const D = c.nEmbd;
  const out = new Map<string, number[]>([["transformer.wte.weight", [c.vocabSize, D]], ["transformer.wpe.weight", [c.nPositions, D]]]);
  const add = (name: string, w: number[], b: number) => {
    out.set(`${name}.weight`, w);
    if (c.bias) out.set(`${name}.bias`, [b]);
  };
  for (let i = 0; i < c.nLayer; i++) {
    const p = `transformer.h.${i}`;
    add(`${p}.ln_1`, [D], D);
    add(`${p}.attn.c_attn`, [D, 3 * D], 3 * D);
    add(`${p}.attn.c_proj`, [D, D], D);
    add(`${p}.ln_2`, [D], D);
    add(`${p}.mlp.c_fc`, [D, 4 * D], 4 * D);
    add(`${p}.mlp.c_proj`, [4 * D, D], D);
  }
  add("transformer.ln_f", [D], D);
  return out;
}

/** File tensor name -> ours, as gpt2StateDictFromHF maps them (null: not a weight of ours). */
function gpt2FileName(c: GPT2Config): (n: string) => string | null {
  const zeroBiases = new Set(c.bias ? [] : biasShapes(c).map(([n]) => n));
  return (n) => {
    const key = n.startsWith("transformer.") || n.startsWith("lm_head.") ? n : `transformer.${n}`;
    if (key === "lm_head.weight" || /\.attn\.(bias|masked_bias)$/.test(key) || zeroBiases.has(key)) return null;
    return key;
  };
}

export interface LoadGPT2Options {
  device?: Device;
  /** Floating-point dtype of the model (default: float32). */
  dtype?: DType;
}

/** Loads a Hugging Face GPT-2 folder (config.json + model.safetensors or shards). */
export function loadGPT2(dir: string, opts: LoadGPT2Options = {}): GPT2 {
  const config = fromHFConfig(readHFConfig(dir), path.join(dir, CONFIG_FILE));
  checkConfigAgainstWeights(path.join(dir, CONFIG_FILE), dir, gpt2Shapes(config), gpt2FileName(config));
  // Every weight is overwritten below (the load is strict): skip drawing them.
  const model = init.skipInit(() => new GPT2(config));
  const { tensors } = loadSafetensorsDir(dir);
  try {
    model.loadStateDict(gpt2StateDictFromHF(tensors, config));
  } catch (e) {
    model.dispose();
    throw new Error(`loadGPT2 ${dir}: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
  if (opts.device !== undefined || opts.dtype !== undefined) model.to({ device: opts.device, dtype: opts.dtype });
  return model;
}
