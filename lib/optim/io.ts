// Optimizer state on disk, for a custom training loop: one safetensors file holds the state
// tensors (AdamW's moments as `state.{i}.exp_avg|exp_avg_sq`) and, in its metadata, the JSON part
// of the state dict (hyperparameters of each group and step counts). The Trainer's checkpoints
// use the same file format (optimizer.safetensors).

import type { Device } from "../torch/index.js";
import { loadSafetensors, saveSafetensors } from "../torch/safetensors.js";
import type { BaseHyper, Optimizer, OptimizerStateDict } from "./optimizer.js";

/** The metadata key that holds the state dict's JSON part. */
export const OPTIMIZER_META_KEY = "innerloop.optimizer";

/** Writes `optimizer.stateDict()` to `file` (atomically: a crash leaves the old file or none). */
export function saveOptimizer(file: string, optimizer: Optimizer<BaseHyper>): void {
  if (typeof file !== "string" || file.length === 0) throw new TypeError("saveOptimizer: file must be a non-empty string");
  const sd = optimizer.stateDict();
  saveSafetensors(file, sd.tensors, { [OPTIMIZER_META_KEY]: JSON.stringify(sd.meta) });
}

export interface LoadOptimizerOptions {
  /** Where the state tensors are read to before they are copied into the optimizer (default: cpu). */
  device?: Device;
  /** The JSON part to use when the file has none (checkpoints of older versions kept it apart). */
  fallbackMeta?: OptimizerStateDict["meta"];
}

/**
 * Restores a state written by saveOptimizer into `optimizer`, which must have the same parameter
 * groups (sizes and shapes) as the one saved; the tensors read are released afterwards.
 */
export function loadOptimizer(file: string, optimizer: Optimizer<BaseHyper>, opts: LoadOptimizerOptions = {}): void {
  if (typeof file !== "string" || file.length === 0) throw new TypeError("loadOptimizer: file must be a non-empty string");
  const { tensors, metadata } = loadSafetensors(file, opts.device === undefined ? {} : { device: opts.device });
  try {
    const text = metadata[OPTIMIZER_META_KEY];
    let meta = opts.fallbackMeta;
    if (text !== undefined) {
      try {
        meta = JSON.parse(text) as OptimizerStateDict["meta"];
      } catch (e) {
        throw new Error(`loadOptimizer: ${file}: metadata ${OPTIMIZER_META_KEY} is not JSON (${(e as Error).message})`);
      }
    }
    if (meta === undefined) throw new Error(`loadOptimizer: ${file} has no ${OPTIMIZER_META_KEY} metadata: not written by saveOptimizer`);
    optimizer.loadStateDict({ meta, tensors });
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
