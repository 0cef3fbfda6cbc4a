/**
 * What a checkpoint holds and how it is written and read back:
 *
 *   config.json            GPT-2 fields (transformers) + `innerloop: { tokenizer, training, step }`
 *   model.safetensors      weights with transformers' names and layouts
 *   optimizer.safetensors  AdamW moments as `state.{i}.exp_avg|exp_avg_sq`; the optimizer's JSON
 *                          state (groups, step counts) in the safetensors metadata
 *   trainer_state.json     step, configuration, tokenizer, sampler PRNG state, torch RNG states
 *                          (base64 of torch.getRngState), data sizes
 *
 * All four are committed as one unit (checkpoint.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { torch, type Device } from "../torch/index.js";
import { loadOptimizer, saveOptimizer } from "../optim/index.js";
import type { AdamW, OptimizerStateDict } from "../optim/index.js";
import type { TokenizerJSON } from "../data/tokenizer.js";
import { writeFileAtomic } from "../util/atomic.js";
import { commitCheckpoint, recoverRunDir, OPTIMIZER_FILE, TRAINER_STATE_FILE } from "./checkpoint.js";
import type { TrainConfig } from "./config.js";
import { copyTokenizerFiles, loadTrainModel, saveTrainModel, type TrainModel } from "./model.js";

export interface TrainerState {
  format: 1;
  /** Optimizer steps done when the checkpoint was written. */
  step: number;
  config: TrainConfig;
  /** Null when the run trains on token ids without a tokenizer. */
  tokenizer: TokenizerJSON | null;
  /** The training window sampler's state (lib/data). */
  sampler: unknown;
  /** Token counts of the train and validation splits, to detect changed data on resume. */
  data: { trainTokens: number; valTokens: number };
  /** torch generator states, base64: `cpu` always, `cuda` when training ran on CUDA. */
  rng: { cpu: string; cuda?: string };
  optimizer: OptimizerStateDict["meta"];
}


function rngToBase64(device?: Device): string {
  return torch.tidy(() => {
    const s = device === undefined ? torch.getRngState() : torch.getRngState(device);
    const bytes = s.toTypedArray() as Uint8Array;
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  });
}

function rngFromBase64(b64: string, device?: Device): void {
  const bytes = new Uint8Array(Buffer.from(b64, "base64"));
  torch.tidy(() => {
    const t = torch.tensor(bytes, { dtype: "uint8" });
    if (device === undefined) torch.setRngState(t);
    else torch.setRngState(t, device);
  });
}

export interface CheckpointParts {
  model: TrainModel;
  optimizer: AdamW;
  state: Omit<TrainerState, "rng" | "optimizer">;
  /** Extra fields for config.json. */
  hfExtra: Record<string, unknown>;
  /** A Hugging Face tokenizer's folder: its files are copied into the checkpoint. */
  tokenizerDir?: string;
}

export function writeRunCheckpoint(runDir: string, parts: CheckpointParts): void {
  const device = parts.state.config.device;
  const sd = parts.optimizer.stateDict();
  const state: TrainerState = {
    ...parts.state,
    rng: { cpu: rngToBase64(), ...(device.startsWith("cuda") ? { cuda: rngToBase64(device) } : {}) },
    optimizer: sd.meta,
  };
  commitCheckpoint(runDir, (dir) => {
    saveTrainModel(dir, parts.model, parts.hfExtra);
    if (parts.tokenizerDir !== undefined) copyTokenizerFiles(parts.tokenizerDir, dir);
    saveOptimizer(path.join(dir, OPTIMIZER_FILE), parts.optimizer);
    writeFileAtomic(path.join(dir, TRAINER_STATE_FILE), JSON.stringify(state, null, 1) + "\n");
  });
}

export interface LoadedCheckpoint {
  state: TrainerState;
  /** The checkpoint's model: rebuilt from config.json, or its weights loaded into `into`. */
  loadModel(device: Device, into?: TrainModel): TrainModel;
  /** Restores the AdamW state onto `optimizer`, whose parameters live on `device`. */
  loadOptimizer(optimizer: AdamW, device: Device): void;
  /** Restores the torch RNG states (the CUDA one only when the run was and is on CUDA). */
  restoreRng(device: Device): void;
}

export function readTrainerState(runDir: string): TrainerState {
  recoverRunDir(runDir);
  const file = path.join(runDir, TRAINER_STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(fs.readFileSync(file, "utf8")) as TrainerState;
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  if (state?.format !== 1 || !Number.isInteger(state.step) || typeof state.config !== "object" || typeof state.rng?.cpu !== "string") {
    throw new Error(`${file} is not an innerloop trainer state (format 1)`);
  }
  return state;
}

export function readCheckpoint(runDir: string): LoadedCheckpoint {
  const state = readTrainerState(runDir);
  return {
    state,
    loadModel: (device, into) => loadTrainModel(runDir, device, into),
    loadOptimizer(optimizer, device) {
      loadOptimizer(path.join(runDir, OPTIMIZER_FILE), optimizer, { device, fallbackMeta: state.optimizer });
    },
    restoreRng(device) {
      rngFromBase64(state.rng.cpu);
      if (device.startsWith("cuda") && state.rng.cuda !== undefined && state.config.device.startsWith("cuda")) rngFromBase64(state.rng.cuda, device);
    },
  };
}
