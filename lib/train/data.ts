/**
 * The data of a run: the corpus tokenized with the run's tokenizer, its
 * train/validation split (lib/data's documented split: the last 10% of the
 * token stream is validation), and the batch samplers the trainer draws from.
 */
import type { Device, Tensor } from "../torch/index.js";
import { loadCorpus, RandomWindowSampler, type Tokenizer, type TokenizerJSON, type TokenSource } from "../data/index.js";
import type { TrainConfig } from "./config.js";

export interface BatchSampler {
  /**
   * The next batch: inputs and targets, int64 [batchSize, seqLen] on `device`. With `rows`, only
   * rows [start, end) of it (data-parallel ranks each take their share of the same global batch).
   */
  next(device: Device, rows?: { start: number; end: number }): { inputs: Tensor; targets: Tensor };
  state(): unknown;
  setState(state: unknown): void;
}

export interface RunData {
  tokenizer: Tokenizer;
  tokenizerJSON: TokenizerJSON;
  train: TokenSource;
  val: TokenSource;
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
const VAL_SEED_OFFSET = 0x5eed;

function sampler(source: TokenSource, seed: number, batchSize: number, seqLen: number): BatchSampler {
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

/** Loads the corpus of `config.data`; `tokenizerJSON` (from a checkpoint) fixes the tokenizer on resume. */
export async function loadRunData(config: TrainConfig, tokenizerJSON?: TokenizerJSON): Promise<RunData> {
  const corpus = loadCorpus(config.data, tokenizerJSON ?? config.tokenizer, { vocabSize: config.vocabSize });
  const { tokenizer, train, val } = corpus;
  const need = config.seqLen + 1;
  if (train.length < need) {
    throw new RangeError(`data ${config.data}: the training split has ${train.length} tokens, fewer than one window of seq-len + 1 = ${need}`);
  }
  if (config.evalEvery > 0 && val.length < need) {
    throw new RangeError(`data ${config.data}: the validation split has ${val.length} tokens, fewer than one window of seq-len + 1 = ${need} (or set --eval-every 0)`);
  }
  const vocab = Math.max(tokenizer.vocabSize, config.vocabSize ?? 0);
  return {
    tokenizer,
    tokenizerJSON: tokenizer.toJSON(),
    train,
    val,
    trainTokens: train.length,
    valTokens: val.length,
    modelVocabSize: tokenizer.kind === "gpt2" ? padVocab(vocab) : vocab,
    trainSampler: (seed) => sampler(train, seed, config.batchSize, config.seqLen),
    valSampler: (seed) => sampler(val, seed + VAL_SEED_OFFSET, config.batchSize, config.seqLen),
    close: () => corpus.close(),
  };
}
