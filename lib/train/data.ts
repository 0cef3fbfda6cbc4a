/**
 * The data of a run: the corpus tokenized with the run's tokenizer, its
 * train/validation split (lib/data's documented split: the last 10% of the
 * token stream is validation), and the batch samplers the trainer draws from.
 */
import * as path from "node:path";
import type { Device, Tensor } from "../torch/index.js";
import { HfTokenizer, loadCorpus, RandomWindowSampler, type Tokenizer, type TokenizerJSON, type TokenizerKind, type TokenSource } from "../data/index.js";
import type { TrainConfig } from "./config.js";

export interface BatchSampler {
  /**
   * The next batch: inputs and targets, int64 [batchSize, seqLen] on `device`. With `rows`, only
   * rows [start, end) of it (data-parallel ranks each take their share of the same global batch).
   */
  next(device: Device, rows?: { start: number; end: number }): { inputs: Tensor; targets: Tensor };
  /** Makes the next `count` batches ready for `next` (a source that produces them asynchronously). */
  prefetch?(count: number): Promise<void>;
  state(): unknown;
  setState(state: unknown): void;
}

export interface RunData {
  /** The run's tokenizer; null when the data are token ids of a tokenizer the run does not know. */
  tokenizer: Tokenizer | null;
  tokenizerJSON: TokenizerJSON | null;
  /** The token streams; null for data given as batches (an async iterable). */
  train: TokenSource | null;
  val: TokenSource | null;
  trainTokens: number;
  valTokens: number;
  /** Rows of the model's embedding: the tokenizer's vocabulary, for GPT-2 BPE padded to a multiple of 64 (faster matmuls). */
  modelVocabSize: number;
  /** The training sampler (its state goes into checkpoints). */
  trainSampler(seed: number): BatchSampler;
  /** A fresh validation sampler: the same windows every time it is made with the same seed. */
  valSampler(seed: number): BatchSampler;
  close(): void;
}

/** Validation windows come from their own stream of random positions, independent of training's. */
export const VAL_SEED_OFFSET = 0x5eed;

export function sampler(source: TokenSource, seed: number, batchSize: number, seqLen: number): BatchSampler {
  const s = new RandomWindowSampler(source, { seed });
  return {
    next(device, rows) {
      const starts = s.nextStarts(batchSize, seqLen);
      const { x, y } = s.batchAt(rows ? starts.slice(rows.start, rows.end) : starts, seqLen, { device });
      return { inputs: x, targets: y };
    },
    state: () => s.state(),
    setState: (st) => s.setState(st as ReturnType<RandomWindowSampler["state"]>),
  };
}

export function padVocab(n: number, multiple = 64): number {
  return Math.ceil(n / multiple) * multiple;
}

/**
 * The vocabulary of the model a run builds: exactly `vocabSize` when given (token ids must be below
 * it), else the tokenizer's (GPT-2's BPE padded to a multiple of 64, for faster matmuls).
 */
export function runVocabSize(tokenizer: Tokenizer | null, vocabSize: number | undefined): number {
  if (vocabSize !== undefined) return vocabSize;
  if (tokenizer === null) throw new RangeError("vocabSize is required for token ids without a tokenizer");
  return tokenizer.kind === "gpt2" ? padVocab(tokenizer.vocabSize) : tokenizer.vocabSize;
}

/**
 * The run's tokenizer from its configuration: 'char' (built from the corpus), 'gpt2', a Hugging
 * Face tokenizer.json (or the folder that holds one), or none for a .bin of token ids.
 */
function tokenizerSpec(config: TrainConfig): TokenizerKind | Tokenizer | null {
  const t = config.tokenizer;
  if (t === null || t === undefined) return null;
  if (t === "char" || t === "gpt2") return t;
  return HfTokenizer.fromDir(t.endsWith(".json") ? path.dirname(t) : t);
}

/** Loads the corpus of `config.data`; `tokenizerJSON` (from a checkpoint) fixes the tokenizer on resume. */
export function loadRunData(config: TrainConfig, tokenizerJSON?: TokenizerJSON | null): RunData {
  const spec = tokenizerJSON ?? tokenizerSpec(config);
  const corpus = loadCorpus(config.data, spec, { vocabSize: config.vocabSize, binDType: config.binDtype });
  const { tokenizer, train, val } = corpus;
  const need = config.seqLen + 1;
  if (train.length < need) {
    throw new RangeError(`data ${config.data}: the training split has ${train.length} tokens, fewer than one window of seq-len + 1 = ${need}`);
  }
  if (config.evalEvery > 0 && val.length < need) {
    throw new RangeError(`data ${config.data}: the validation split has ${val.length} tokens, fewer than one window of seq-len + 1 = ${need} (or set --eval-every 0)`);
  }
  if (tokenizer !== null && config.vocabSize !== undefined && config.vocabSize < tokenizer.vocabSize && !config.data.endsWith(".bin")) {
    throw new RangeError(`vocabSize (${config.vocabSize}) is below the ${tokenizer.kind} tokenizer's vocabulary (${tokenizer.vocabSize}): text tokenized with it would not fit`);
  }
  return {
    tokenizer,
    tokenizerJSON: tokenizer?.toJSON() ?? null,
    train,
    val,
    trainTokens: train.length,
    valTokens: val.length,
    modelVocabSize: runVocabSize(tokenizer, config.vocabSize),
    trainSampler: (seed) => sampler(train, seed, config.batchSize, config.seqLen),
    valSampler: (seed) => sampler(val, seed + VAL_SEED_OFFSET, config.batchSize, config.seqLen),
    close: () => corpus.close(),
  };
}
