// analyzeModel: the whole analysis of a model on a token stream (docs/analysis.md), batch by
// batch. Only one batch of activations exists at a time.
//
// HeldOutAnalysis: the same analysis of a fixed, small set of windows, repeated (training-time
// snapshots). Everything that depends only on the windows (the plan, token counts and frequency
// buckets, the batches' token tensors on the device) and the accumulators are made once.

import { torch } from "../torch/index.js";
import type { Device, Tensor } from "../torch/index.js";
import type { ProbeCapture } from "../models/gpt2-probe.js";
import { adaptModel, type AnalysisModel } from "./adapter.js";
import { Analyzer, type PreparedBatch } from "./analyzer.js";
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

/** What both entry points check and derive before the first batch. */
function plan(model: AnalysisModel, stream: TokenStream, opts: AnalyzeOptions) {
  const adapter = adaptModel(model);
  const windows = planWindows(stream.length, opts.seqLen, opts.batchSize, opts.maxWindows);
  const maxPos = maxPositions(model);
  if (maxPos !== undefined && opts.seqLen > maxPos) {
    throw new RangeError(`seqLen ${opts.seqLen} exceeds the model's context length ${maxPos}`);
  }
  const counts = countInputs(stream, windows.seqLen, windows.batches, adapter.vocabSize);
  if (adapter.vocabSize > 0 && counts.length > adapter.vocabSize) {
    throw new RangeError(`data: token id ${counts.length - 1} is outside the model's vocabulary of ${adapter.vocabSize}`);
  }
  const K = opts.freqBuckets ?? 4;
  const device = opts.device ?? model.namedParameters()[0]?.[1].device ?? "cpu";
  const analyzer = new Analyzer(model, adapter, {
    seqLen: windows.seqLen,
    device,
    topK: opts.topK,
    freqBuckets: K,
    bucketOf: frequencyBuckets(counts, K),
    lensChunkLogits: opts.lensChunkLogits,
  });
  return { windows, analyzer };
}

/**
 * The CPU buffer cache an analysis on the CPU keeps while it runs (unless INNERLOOP_CPU_CACHE_MB
 * says otherwise): its backward pass and logit lens free and take the same large buffers batch
 * after batch, and with the default 256 MiB many were unmapped and mapped again, their fresh pages
 * zeroed by the kernel (system time 2.3 of 13 s of CPU). Measured with the `npm run bench` models
 * (BENCHMARKS.md), alternating runs: a 6 x 256 GPT-2 on 48 windows (6 batches) 6.59 / 6.19 / 5.81 s
 * at 256 MiB against 5.99 / 5.65 / 5.68 s, peak RSS 841 -> 972 MB (PyTorch's script: 1.3 GB);
 * GPT-2 124M on 4 windows (2 batches) 45.6 against 46.3 s, no gain, RSS 4.35 -> 4.63 GB (PyTorch's
 * script: 6.0 GB). The bound is restored, and the cache trimmed to it, when the analysis ends.
 */
const ANALYSIS_CPU_CACHE_BYTES = 1 << 30;

export function analyzeModel(model: AnalysisModel, stream: TokenStream, opts: AnalyzeOptions): AnalysisResult {
  const { windows, analyzer } = plan(model, stream, opts);
  const device = String(opts.device ?? model.namedParameters()[0]?.[1].device ?? "cpu");
  const raise = device === "cpu" && process.env.INNERLOOP_CPU_CACHE_MB === undefined &&
    torch.cpuCacheLimit() < ANALYSIS_CPU_CACHE_BYTES;
  const before = raise ? torch.setCpuCacheLimit(ANALYSIS_CPU_CACHE_BYTES) : null;
  try {
    for (const [w0, w1] of windows.batches) {
      analyzer.addBatch(readWindows(stream, windows.seqLen, w0, w1), w0, w1 === windows.windows);
      opts.onProgress?.(w1, windows.windows);
    }
    return analyzer.finish();
  } finally {
    analyzer.dispose();
    if (before !== null) torch.setCpuCacheLimit(before);
  }
}

/**
 * The analysis of one model on a fixed set of windows, to be repeated as the model's weights
 * change (in place). Gives the same result as `analyzeModel(model, stream, opts)` each time.
 * Holds the windows' tokens on the device until `dispose()`.
 */
export class HeldOutAnalysis {
  private readonly analyzer: Analyzer;
  private readonly batches: PreparedBatch[];
  /** The model's parameters when the analysis was set up (to notice replaced tensors). */
  private readonly paramList: Tensor[];
  /** The device the analysis runs on. */
  readonly device: string;
  private disposed = false;

  constructor(readonly model: AnalysisModel, stream: TokenStream, private readonly opts: AnalyzeOptions) {
    const { windows, analyzer } = plan(model, stream, opts);
    this.analyzer = analyzer;
    this.batches = [];
    try {
      for (const [w0, w1] of windows.batches) this.batches.push(analyzer.prepareBatch(readWindows(stream, windows.seqLen, w0, w1), w0));
    } catch (err) {
      this.dispose();
      throw err;
    }
    this.paramList = model.namedParameters().map(([, p]) => p);
    this.device = String(opts.device ?? this.paramList[0]?.device ?? "cpu");
  }

  /**
   * Whether this analysis still fits `model`: the same object with the same parameter tensors
   * (a model moved to another device or dtype has new ones).
   */
  fits(model: AnalysisModel): boolean {
    if (this.disposed || model !== this.model) return false;
    const now = model.namedParameters();
    if (now.length !== this.paramList.length) return false;
    for (let i = 0; i < now.length; i++) if (now[i]![1] !== this.paramList[i]) return false;
    return true;
  }

  /** Analyses the windows with the model's current weights. */
  run(): AnalysisResult {
    if (this.disposed) throw new Error("HeldOutAnalysis: already disposed");
    const total = this.batches.reduce((n, b) => n + b.b, 0);
    let done = 0;
    try {
      for (const [i, batch] of this.batches.entries()) {
        this.analyzer.addPrepared(batch, i === this.batches.length - 1);
        done += batch.b;
        this.opts.onProgress?.(done, total);
      }
      return this.analyzer.finish();
    } catch (err) {
      this.analyzer.reset();
      throw err;
    }
  }

  /** The windows as one prepared batch (ids and targets on the device), or null when they take several. */
  get singleBatch(): PreparedBatch | null {
    return this.batches.length === 1 ? this.batches[0]! : null;
  }

  /**
   * The analysis from a forward and backward pass of `singleBatch` that ran elsewhere, in a
   * training step that carried the windows along (lib/models/gpt2-probe.ts), with the model's
   * current weights.
   */
  runCaptured(capture: ProbeCapture): AnalysisResult {
    if (this.disposed) throw new Error("HeldOutAnalysis: already disposed");
    const batch = this.singleBatch;
    if (!batch) throw new Error("HeldOutAnalysis.runCaptured: the windows take more than one batch");
    try {
      this.analyzer.addCaptured(batch, capture);
      return this.analyzer.finish();
    } catch (err) {
      this.analyzer.reset();
      throw err;
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of this.batches) b.dispose();
    this.analyzer.dispose();
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
