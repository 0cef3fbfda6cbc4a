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
  /**
   * 'char' (vocabulary from the corpus), 'gpt2' (GPT-2's BPE), the path of a Hugging Face
   * tokenizer.json (or of the folder holding it), or null for a .bin of token ids of any tokenizer.
   */
  tokenizer: TokenizerKind | string | null;
  /** The model's vocabulary, exactly (token ids must be below it); default: the tokenizer's. */
  vocabSize?: number;
  /** Element type of .bin token files: uint16 (ids up to 65,535, nanoGPT's) or uint32. */
  binDtype?: "uint16" | "uint32";
  /** Start from this pretrained Hugging Face checkpoint (GPT-2, LLaMA family, GPT-NeoX) instead of a new GPT-2. */
  init?: string;
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
  /**
   * Capture the whole training step into a CUDA graph after a few eager steps and replay it
   * (lib/train/graph-step.ts): one launch per step instead of one per kernel. CUDA, one process.
   */
  cudaGraph?: boolean;
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

type FieldRule =
  | { kind: "int" | "number"; min: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "string" }
  | { kind: "tokenizer" }
  | { kind: "boolean" };

/** Each field's type and range (the CLI's flags allow the same values). */
const FIELD_RULES: Readonly<Record<keyof TrainConfig, FieldRule & { optional?: boolean }>> = {
  data: { kind: "string" },
  tokenizer: { kind: "tokenizer" },
  vocabSize: { kind: "int", min: 1, max: 2 ** 31 - 1, optional: true },
  binDtype: { kind: "enum", values: ["uint16", "uint32"], optional: true },
  init: { kind: "string", optional: true },
  nLayer: { kind: "int", min: 1 },
  nHead: { kind: "int", min: 1 },
  nEmbd: { kind: "int", min: 1 },
  seqLen: { kind: "int", min: 1 },
  dropout: { kind: "number", min: 0, max: 1, maxExclusive: true },
  batchSize: { kind: "int", min: 1 },
  gradAccum: { kind: "int", min: 1 },
  steps: { kind: "int", min: 1 },
  lr: { kind: "number", min: 0, minExclusive: true },
  minLr: { kind: "number", min: 0 },
  warmup: { kind: "int", min: 0 },
  weightDecay: { kind: "number", min: 0 },
  gradClip: { kind: "number", min: 0 },
  evalEvery: { kind: "int", min: 0 },
  evalBatches: { kind: "int", min: 1 },
  checkpointEvery: { kind: "int", min: 0 },
  seed: { kind: "int", min: 0, max: Number.MAX_SAFE_INTEGER },
  device: { kind: "string" },
  dtype: { kind: "enum", values: ["float32", "bfloat16"] },
  analyzeEvery: { kind: "int", min: 0 },
  analyzeWindows: { kind: "int", min: 1 },
  cudaGraph: { kind: "boolean", optional: true },
};

function fieldProblem(name: string, rule: FieldRule, v: unknown): string | undefined {
  const got = ` (got ${JSON.stringify(v)})`;
  switch (rule.kind) {
    case "string":
      return typeof v === "string" && v !== "" ? undefined : `${name} must be a non-empty string${got}`;
    case "enum":
      return typeof v === "string" && rule.values.includes(v) ? undefined : `${name} must be one of ${rule.values.join(", ")}${got}`;
    case "boolean":
      return typeof v === "boolean" ? undefined : `${name} must be true or false${got}`;
    case "tokenizer":
      return v === null || (typeof v === "string" && v !== "") ? undefined : `${name} must be char, gpt2, a tokenizer.json path or null${got}`;
    default: {
      const kind = rule.kind === "int" ? "an integer" : "a number";
      const range = `${rule.minExclusive ? ">" : ">="} ${rule.min}${rule.max !== undefined ? ` and ${rule.maxExclusive ? "<" : "<="} ${rule.max}` : ""}`;
      const ok =
        typeof v === "number" &&
        Number.isFinite(v) &&
        (rule.kind === "number" || Number.isSafeInteger(v)) &&
        (rule.minExclusive ? v > rule.min : v >= rule.min) &&
        (rule.max === undefined || (rule.maxExclusive ? v < rule.max : v <= rule.max));
      return ok ? undefined : `${name} must be ${kind} ${range}${got}`;
    }
  }
}

/**
 * Every problem of a configuration: unknown fields, each field's type and
 * range, and combinations that single fields cannot check. Messages name the
 * field (camelCase, as in trainer_state.json and config.json).
 */
export function configProblems(c: TrainConfig, opts: { dataGiven?: boolean } = {}): string[] {
  const p: string[] = [];
  if (c === null || typeof c !== "object") return ["the training configuration must be an object"];
  for (const k of Object.keys(c)) if (!(k in FIELD_RULES)) p.push(`unknown field ${k}`);
  for (const [k, rule] of Object.entries(FIELD_RULES)) {
    const v = (c as unknown as Record<string, unknown>)[k];
    if (v === undefined && rule.optional) continue;
    const problem = fieldProblem(k, rule, v);
    if (problem) p.push(problem);
  }
  if (typeof c.device === "string" && !/^(cpu|cuda|cuda:\d+)$/.test(c.device)) p.push(`device must be cpu, cuda or cuda:N (got ${JSON.stringify(c.device)})`);
  if (p.length > 0) return p;
  if (c.nEmbd % c.nHead !== 0) p.push(`n-embd (${c.nEmbd}) must be a multiple of n-head (${c.nHead})`);
  if (c.minLr > c.lr) p.push(`min-lr (${c.minLr}) must not exceed lr (${c.lr})`);
  if (c.dtype === "bfloat16" && !c.device.startsWith("cuda")) p.push(`dtype bfloat16 needs a CUDA device (device is ${c.device})`);
  if (c.cudaGraph === true && !c.device.startsWith("cuda")) p.push(`cuda-graph needs a CUDA device (device is ${c.device})`);
  const bin = c.data.endsWith(".bin");
  if (opts.dataGiven === true) {
    // Data given to the Trainer directly: read as token ids, whatever the tokenizer.
  } else if (bin && c.tokenizer === "char") {
    p.push("a .bin file holds token ids, which a char tokenizer cannot read: give --vocab-size N (token ids of any tokenizer), --tokenizer gpt2 or --tokenizer path/tokenizer.json");
  } else if (bin && c.tokenizer === null && c.vocabSize === undefined && c.init === undefined) {
    p.push("a .bin file of token ids without a tokenizer needs --vocab-size N (the model's vocabulary; every id must be below it)");
  } else if (!bin && c.tokenizer === null && c.init === undefined) {
    p.push(`data ${c.data} is text: it needs a tokenizer (char, gpt2 or path/tokenizer.json)`);
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
