// analyzeModel: the whole analysis of a model on a token stream (docs/analysis.md), batch by
// batch. Only one batch of activations exists at a time.

import type { Device } from "../torch/index.js";
import { adaptModel, type AnalysisModel } from "./adapter.js";
import { Analyzer } from "./analyzer.js";
import { frequencyBuckets } from "./fits.js";
import type { AnalysisResult } from "./result.js";
import { planWindows, readWindows, type TokenStream } from "./windows.js";

export interface AnalyzeOptions {
  seqLen: number;
  batchSize: number;
  maxWindows?: number;
  /** Device of the model (default: the device of its first parameter). */
  device?: Device | string;
  topK?: number;
  /** Number of token-frequency buckets (default 4). */
  freqBuckets?: number;
  /** Most logits the logit lens decodes at once (default 2^24). */
  lensChunkLogits?: number;
  /** Called after every batch with windows done and windows in all. */
  onProgress?(done: number, total: number): void;
}

/** Counts every input token (the first T of each window) over the planned windows. */
function countInputs(stream: TokenStream, seqLen: number, batches: Array<[number, number]>, vocab: number): Float64Array {
  let counts = new Float64Array(Math.max(vocab, 1));
  for (const [w0, w1] of batches) {
    const tok = readWindows(stream, seqLen, w0, w1);
    for (let w = 0; w < w1 - w0; w++) {
      for (let t = 0; t < seqLen; t++) {
        const id = tok[w * (seqLen + 1) + t]!;
        if (id < 0) throw new RangeError(`data: negative token id ${id}`);
        if (id >= counts.length) {
          const grown = new Float64Array(id + 1);
          grown.set(counts);
          counts = grown;
        }
        counts[id]! += 1;
      }
    }
  }
  return counts;
}

export function analyzeModel(model: AnalysisModel, stream: TokenStream, opts: AnalyzeOptions): AnalysisResult {
  const adapter = adaptModel(model);
  const plan = planWindows(stream.length, opts.seqLen, opts.batchSize, opts.maxWindows);
  const maxPos = maxPositions(model);
  if (maxPos !== undefined && opts.seqLen > maxPos) {
    throw new RangeError(`seqLen ${opts.seqLen} exceeds the model's context length ${maxPos}`);
  }
  const counts = countInputs(stream, plan.seqLen, plan.batches, adapter.vocabSize);
  if (adapter.vocabSize > 0 && counts.length > adapter.vocabSize) {
    throw new RangeError(`data: token id ${counts.length - 1} is outside the model's vocabulary of ${adapter.vocabSize}`);
  }
  const K = opts.freqBuckets ?? 4;
  const device = opts.device ?? model.namedParameters()[0]?.[1].device ?? "cpu";
  const analyzer = new Analyzer(model, adapter, {
    seqLen: plan.seqLen,
    device,
    topK: opts.topK,
    freqBuckets: K,
    bucketOf: frequencyBuckets(counts, K),
    lensChunkLogits: opts.lensChunkLogits,
  });
  try {
    for (const [w0, w1] of plan.batches) {
      analyzer.addBatch(readWindows(stream, plan.seqLen, w0, w1), w0);
      opts.onProgress?.(w1, plan.windows);
    }
    return analyzer.finish();
  } finally {
    analyzer.dispose();
  }
}

function maxPositions(model: AnalysisModel): number | undefined {
  const cfg = (model as unknown as { config?: Record<string, unknown> }).config;
  if (!cfg) return undefined;
  for (const k of ["nPositions", "n_positions", "blockSize", "maxPositionEmbeddings", "max_position_embeddings"]) {
    if (typeof cfg[k] === "number") return cfg[k] as number;
  }
  return undefined;
}
