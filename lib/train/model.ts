/**
 * The model a run trains, and its form in the run directory.
 *
 * Any causal language model can be trained: a `Module` whose `forward(ids, { targets })` returns
 * `{ logits, loss }` (the `CausalLM` interface). The CLI builds a GPT-2 from the configuration or
 * loads a pretrained one (`--init`). In the run directory a GPT-2 is a Hugging Face GPT-2
 * checkpoint, a LLaMA-family or GPT-NeoX model that family's checkpoint (savePretrained), and any
 * other model its state dict in model.safetensors with a config.json that names its class.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Device, Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";
import { GPT2, GPTNeoX, Llama, loadGPT2, loadPretrained, readHFConfig, saveGPT2, savePretrained, gpt2StateDictFromHF, CONFIG_FILE } from "../models/index.js";
import { loadWeightsInto } from "../models/hf-weights.js";
import { loadSafetensorsDir, saveSafetensors, SAFETENSORS_FILE } from "../torch/safetensors.js";
import { writeFileAtomic } from "../util/atomic.js";
import type { TrainConfig } from "./config.js";

/**
 * What the trainer trains: a Module (parameters, state dict, train/eval) whose forward pass takes
 * token ids [B, T] (int64) and next-token targets [B, T] and returns the logits and the mean
 * cross-entropy loss (a float32 scalar). GPT2, Llama and GPTNeoX implement it. Analysis snapshots
 * need TransformerLens-style hook points as well (`blocks.{l}.hook_resid_pre`, ...; see
 * docs/analysis.md).
 */
export type CausalLM = Module & {
  forward(ids: Tensor, opts: { targets: Tensor }): { logits: Tensor; loss: Tensor };
};

export type TrainModel = CausalLM;

/** A new GPT-2 with GPT-2's initialisation, drawn from `config.seed`, on `config.device` (weights in float32). */
export function createModel(config: TrainConfig, vocabSize: number): GPT2 {
  return new GPT2(
    {
      vocabSize,
      nPositions: config.seqLen,
      nEmbd: config.nEmbd,
      nLayer: config.nLayer,
      nHead: config.nHead,
      dropout: config.dropout,
      bias: true,
    },
    { seed: config.seed, device: config.device },
  );
}

/** The vocabulary size a model declares in its `config` (GPT2, Llama, GPTNeoX), or undefined. */
export function modelVocabSize(model: TrainModel): number | undefined {
  const v = (model as { config?: { vocabSize?: unknown } }).config?.vocabSize;
  return typeof v === "number" ? v : undefined;
}

/** Writes the model into `dir`: its family's Hugging Face checkpoint, or its state dict for other models. */
export function saveTrainModel(dir: string, model: TrainModel, extra: Record<string, unknown>): void {
  if (model instanceof GPT2) return saveGPT2(dir, model, extra);
  if (model instanceof Llama || model instanceof GPTNeoX) return savePretrained(dir, model, { extraConfig: extra });
  saveSafetensors(path.join(dir, SAFETENSORS_FILE), model.stateDict(), { format: "pt" });
  // No model_type: transformers cannot load a class it does not know, and innerloop rebuilds it
  // only from the caller's own instance (resume with `model`).
  writeFileAtomic(path.join(dir, CONFIG_FILE), JSON.stringify({ architectures: [model.constructor.name], ...extra }, null, 2) + "\n");
}

/**
 * The model of a checkpoint on `device`. With `into`, the weights are loaded into that instance
 * (any model); without, the model is rebuilt from config.json (GPT-2, LLaMA family, GPT-NeoX).
 */
export function loadTrainModel(dir: string, device: Device, into?: TrainModel): TrainModel {
  if (into === undefined) {
    const type = readHFConfig(dir).model_type;
    if (type === undefined) {
      throw new Error(`${path.join(dir, CONFIG_FILE)} holds a model of a class innerloop cannot rebuild by itself: pass that model (a new instance) to resume`);
    }
    if (type === "gpt2") return loadGPT2(dir, { device, dtype: "float32" });
    return loadPretrained(dir, { device, dtype: "float32" }) as TrainModel;
  }
  if (into instanceof GPT2) {
    const { tensors } = loadSafetensorsDir(dir);
    try {
      into.loadStateDict(gpt2StateDictFromHF(tensors, into.config));
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
  } else {
    loadWeightsInto(into, dir);
  }
  return into;
}

/** Copies a Hugging Face tokenizer's files (tokenizer.json, tokenizer_config.json) into `dir`. */
export function copyTokenizerFiles(fromDir: string, dir: string): void {
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    const src = path.join(fromDir, f);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(dir, f));
  }
}
