/**
 * Training configuration: its fields, defaults, named presets and checks.
 *
 * Defaults suit a character-level model on the bundled `moby-dick` corpus on
 * a CPU: 4 layers x 128 wide, 128-token context, a few minutes of training.
 */
import type { Device } from "../torch/index.js";

export type TokenizerKind = "char" | "gpt2";
export type TrainDType = "float32" | "bfloat16";

export interface TrainConfig {
  /** `moby-dick` (bundled), a text file, a folder of text files, or a nanoGPT `.bin` file of uint16 ids. */
  data: string;
  tokenizer: TokenizerKind;
  /** Vocabulary size of `.bin` data (ids must be below it; the model gets at least this many rows). */
  vocabSize?: number;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  /** Context length T (GPT-2's n_positions). */
  seqLen: number;
  dropout: number;
  /** Sequences per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step (the effective batch is batchSize x gradAccum). */
  gradAccum: number;
  /** Total optimizer steps of the run. */
  steps: number;
  /** Peak learning rate, reached after `warmup` steps, then cosine decay to `minLr`. */
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0 = no clipping; the norm is logged either way). */
  gradClip: number;
  /** Evaluate the validation loss every N steps and at the end (0 = never). */
  evalEvery: number;
  /** Batches of `batchSize` windows per evaluation. */
  evalBatches: number;
  /** Write a checkpoint every N steps (0 = only at the end and on interruption). */
  checkpointEvery: number;
  seed: number;
  device: Device;
  /** `bfloat16` = bf16 autocast (and TF32 matmuls) on CUDA; weights and optimizer state stay float32. */
  dtype: TrainDType;
  /** Run the analysis plugin every N steps (0 = never). */
  analyzeEvery: number;
  /** Held-out windows the analysis plugin uses. */
  analyzeWindows: number;
}

export const DEFAULT_TRAIN_CONFIG: Readonly<TrainConfig> = Object.freeze({
  data: "moby-dick",
  tokenizer: "char",
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  seqLen: 128,
  dropout: 0,
  batchSize: 16,
  gradAccum: 1,
  steps: 1000,
  lr: 1e-3,
  minLr: 1e-4,
  warmup: 100,
  weightDecay: 0.1,
  gradClip: 1,
  evalEvery: 100,
  evalBatches: 10,
  checkpointEvery: 250,
  seed: 1337,
  device: "cpu",
  dtype: "float32",
  analyzeEvery: 0,
  analyzeWindows: 16,
});

/** Named model sizes (and the settings that go with them). */
export const PRESETS: Readonly<Record<string, Partial<TrainConfig>>> = Object.freeze({
  /** The smallest useful model: the one the tests train. */
  tiny: { nLayer: 2, nHead: 2, nEmbd: 64, seqLen: 64, batchSize: 16, lr: 3e-3, minLr: 3e-4, warmup: 20 },
  /** The defaults: 4 x 128, char-level. */
  small: { nLayer: 4, nHead: 4, nEmbd: 128, seqLen: 128 },
  /** nanoGPT's shakespeare-char size: 6 x 384, T 256 (a GPU, or patience). */
  medium: { nLayer: 6, nHead: 6, nEmbd: 384, seqLen: 256, batchSize: 64, dropout: 0.2, lr: 1e-3, minLr: 1e-4, warmup: 100 },
  /** GPT-2 small, 124M parameters, with the GPT-2 BPE tokenizer and GPT-2's training settings. */
  "gpt2-124m": {
    tokenizer: "gpt2",
    nLayer: 12,
    nHead: 12,
    nEmbd: 768,
    seqLen: 1024,
    batchSize: 8,
    gradAccum: 8,
    dropout: 0,
    lr: 6e-4,
    minLr: 6e-5,
    warmup: 700,
    weightDecay: 0.1,
    gradClip: 1,
  },
});

/**
 * Checks combinations that single fields cannot (each field's own range is
 * checked where it is parsed). Returns problems as `field: message` strings.
 */
export function configProblems(c: TrainConfig): string[] {
  const p: string[] = [];
  if (c.nEmbd % c.nHead !== 0) p.push(`n-embd (${c.nEmbd}) must be a multiple of n-head (${c.nHead})`);
  if (c.minLr > c.lr) p.push(`min-lr (${c.minLr}) must not exceed lr (${c.lr})`);
  if (c.dtype === "bfloat16" && !c.device.startsWith("cuda")) p.push(`dtype bfloat16 needs a CUDA device (device is ${c.device})`);
  if (c.data.endsWith(".bin") && c.tokenizer !== "gpt2") {
    p.push("a .bin file holds token ids of GPT-2's BPE: use --tokenizer gpt2 with it");
  }
  return p;
}

/** Fills missing fields from the defaults and an optional preset. */
export function resolveConfig(partial: Partial<TrainConfig>, preset?: string): TrainConfig {
  const base: TrainConfig = { ...DEFAULT_TRAIN_CONFIG };
  if (preset !== undefined) {
    const p = PRESETS[preset];
    if (!p) throw new RangeError(`unknown preset ${JSON.stringify(preset)}; presets: ${Object.keys(PRESETS).join(", ")}`);
    Object.assign(base, p);
  }
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (base as unknown as Record<string, unknown>)[k] = v;
  return base;
}
