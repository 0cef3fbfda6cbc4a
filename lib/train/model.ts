/**
 * The model a run trains (GPT-2), built from the training configuration, and
 * its Hugging Face form in the run directory.
 */
import type { Device } from "../torch/index.js";
import { GPT2, loadGPT2, saveGPT2 } from "../models/index.js";
import type { TrainConfig } from "./config.js";

export type TrainModel = GPT2;

/** A new GPT-2 with GPT-2's initialisation, drawn from `config.seed`, on `config.device` (weights in float32). */
export function createModel(config: TrainConfig, vocabSize: number): TrainModel {
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

/** Writes config.json (GPT-2 fields + `extra`) and model.safetensors into `dir`. */
export function saveTrainModel(dir: string, model: TrainModel, extra: Record<string, unknown>): void {
  saveGPT2(dir, model, extra);
}

export function loadTrainModel(dir: string, device: Device): TrainModel {
  return loadGPT2(dir, { device, dtype: "float32" });
}
