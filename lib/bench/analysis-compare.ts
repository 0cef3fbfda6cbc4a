// The analysis against what a PyTorch user would write: `innerloop analyze` (its own function,
// analyzeDir, in a process of its own) and scripts/bench/torch_analysis.py (transformers' GPT-2
// with forward hooks, retain_grad, one backward per batch, the logit lens under no_grad) on the
// same random GPT-2 folder and the same token file, each with its library's default threads.
// The design fields of both are compared first; the times only mean something when they agree.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchModel } from "./configs.js";
import { runInnerloopAnalysis, runTorchAnalysis, type SpawnOptions } from "./sides.js";
import { median } from "./stats.js";
import { randomTokens } from "./tokens.js";

export interface AnalysisBenchConfig {
  name: string;
  model: BenchModel;
  windows: number;
  batchSize: number;
}

/** The two sizes: a small random GPT-2, and GPT-2 124M at its full context. */
export const ANALYSIS_CONFIGS: Readonly<Record<string, AnalysisBenchConfig>> = Object.freeze({
  small: { name: "small", model: { nLayer: 6, nEmbd: 256, nHead: 4, seqLen: 256, nPositions: 256, vocabSize: 8192 }, windows: 160, batchSize: 8 },
  "gpt2-124m": { name: "gpt2-124m", model: { nLayer: 12, nEmbd: 768, nHead: 12, seqLen: 1024, nPositions: 1024, vocabSize: 50257 }, windows: 4, batchSize: 2 },
});

/** What both sides read (and what make-model writes). */
export interface AnalysisSpec {
  modelDir: string;
  /** Little-endian uint16 token ids. */
  tokensFile: string;
  seqLen: number;
  batchSize: number;
  maxWindows: number;
  /** 0: the library's default (what a user gets). */
  threads: number;
  /** innerloop: where analyze writes analysis.json. */
  outDir: string;
  model: BenchModel;
  seed: number;
}

export interface AnalysisSideRun {
  side: "innerloop" | "pytorch";
  torch: string;
  threads: number;
  /** The analysis itself, model loading excluded (both sides time the same span). */
  seconds: number;
  /**
   * CPU time (user + system, all threads) of that span: on a machine shared with other work it
   * counts the analysis's own work (innerloop's includes reading the model's weights file).
   */
  cpuSeconds: number;
  /** The whole process: start-up, imports, loading the model, the analysis, writing results. */
  wallSeconds: number;
  maxRssKB: number;
}

export interface FieldAgreement {
  field: string;
  /** max |innerloop - PyTorch| over the field's entries. */
  maxAbsDiff: number;
  /** That divided by the field's largest |PyTorch| entry. */
  relDiff: number;
}

export interface AnalysisComparison {
  name: string;
  model: BenchModel;
  windows: number;
  batchSize: number;
  fields: FieldAgreement[];
  /** Every field within FIELD_TOLERANCE (relative to the field's scale). */
  agree: boolean;
  innerloop: AnalysisSideRun[];
  pytorch: AnalysisSideRun[];
  /** Median innerloop seconds / median PyTorch seconds (the analysis span). */
  ratio: number;
  /** The same for CPU time. */
  cpuRatio: number;
  /** innerloop's peak RSS / PyTorch's (largest over rounds). */
  rssRatio: number;
  /** The model's own compute for these fields, FLOPs (analysisFlops). */
  flops: number;
}

/**
 * FLOPs that any computation of the design fields must do, per analysed token, counting matrix
 * products only: the blocks' forward and backward (inputs and weights) 6·12·L·D² plus attention
 * 12·L·D·T (the PaLM estimate nanoGPT uses), the output layer's forward and its backward to its
 * input 4·V·D (its weight gradient is not needed: it is no block's parameter), and the logit lens
 * at h^0 … h^(L−1) 2·L·V·D (h^L's is the model's own loss).
 */
export function analysisFlopsPerToken(m: BenchModel): number {
  const { nLayer: L, nEmbd: D, seqLen: T, vocabSize: V } = m;
  return 6 * 12 * L * D * D + 12 * L * D * T + 4 * V * D + 2 * L * V * D;
}

/** Fields agree when max |difference| is at most this fraction of the field's largest value (float32 sums in different orders). */
export const FIELD_TOLERANCE = 1e-3;

/** The design fields (docs/analysis.md) both sides compute, as paths into analysis.json. */
const DESIGN_FIELDS = ["loss", "hiddenNorm.mean", "hiddenNorm.std", "gradNorm.mean", "update.normMean", "update.cosMean", "logitLens.loss", "paramGradNorm"];

function fieldAt(obj: unknown, path: string): number[] {
  let v: unknown = obj;
  for (const k of path.split(".")) v = (v as Record<string, unknown> | undefined)?.[k];
  if (v === undefined) throw new Error(`analysis comparison: field ${path} is missing`);
  return [v].flat(3).map(Number);
}

export function compareFields(innerloop: unknown, pytorch: unknown): FieldAgreement[] {
  return DESIGN_FIELDS.map((field) => {
    const a = fieldAt(innerloop, field);
    const b = fieldAt(pytorch, field);
    if (a.length !== b.length) throw new Error(`analysis comparison: ${field} has ${a.length} entries in innerloop's result and ${b.length} in PyTorch's`);
    let maxAbsDiff = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      // A NaN on either side must read as a disagreement, not vanish in Math.max.
      const d = Math.abs(a[i]! - b[i]!);
      maxAbsDiff = Number.isNaN(d) ? Infinity : Math.max(maxAbsDiff, d);
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    return { field, maxAbsDiff, relDiff: scale > 0 ? maxAbsDiff / scale : maxAbsDiff };
  });
}

export interface AnalysisBenchOptions extends SpawnOptions {
  dir: string;
  seed: number;
  /** Runs of each side, alternating (innerloop, PyTorch, PyTorch, innerloop, ...). */
  rounds: number;
  /** Windows analysed (default: the configuration's). */
  windows?: number;
  log: (line: string) => void;
}

export async function compareAnalysis(c: AnalysisBenchConfig, o: AnalysisBenchOptions): Promise<AnalysisComparison> {
  const windows = o.windows ?? c.windows;
  const base = join(o.dir, `analysis-${c.name}`);
  mkdirSync(base, { recursive: true });
  const tokensFile = join(base, "tokens.bin");
  const tokens = Uint16Array.from(randomTokens(windows * (c.model.seqLen + 1), c.model.vocabSize, o.seed));
  writeFileSync(tokensFile, Buffer.from(tokens.buffer));
  const spec: AnalysisSpec = {
    modelDir: join(base, "model"),
    tokensFile,
    seqLen: c.model.seqLen,
    batchSize: c.batchSize,
    maxWindows: windows,
    threads: 0,
    outDir: join(base, "out"),
    model: c.model,
    seed: o.seed,
  };
  const specFile = join(base, "spec.json");
  writeFileSync(specFile, JSON.stringify(spec));
  await runTorchAnalysis("make-model", specFile, o);

  type Line = Omit<AnalysisSideRun, "wallSeconds"> & { fields?: unknown };
  const il: AnalysisSideRun[] = [];
  const pt: AnalysisSideRun[] = [];
  let ptFields: unknown;
  const side = async (which: "innerloop" | "pytorch") => {
    const run = which === "innerloop" ? await runInnerloopAnalysis<Line>(specFile, o) : await runTorchAnalysis<Line>("analyze", specFile, o);
    const { fields, ...r } = run.result;
    if (which === "pytorch") ptFields = fields;
    (which === "innerloop" ? il : pt).push({ ...r, wallSeconds: run.wallSeconds });
    o.log(`  ${which}: ${r.seconds.toFixed(1)} s analysis, ${r.cpuSeconds.toFixed(1)} s CPU (${run.wallSeconds.toFixed(1)} s process), peak RSS ${(r.maxRssKB / 1024).toFixed(0)} MB`);
  };
  for (let k = 0; k < o.rounds; k++) {
    const order: Array<"innerloop" | "pytorch"> = k % 2 === 0 ? ["innerloop", "pytorch"] : ["pytorch", "innerloop"];
    for (const s of order) await side(s);
  }
  const ilFields = JSON.parse(readFileSync(join(spec.outDir, "analysis.json"), "utf8")) as unknown;
  const fields = compareFields(ilFields, ptFields);
  const maxRss = (rs: AnalysisSideRun[]) => Math.max(...rs.map((r) => r.maxRssKB));
  return {
    name: c.name,
    model: c.model,
    windows,
    batchSize: c.batchSize,
    fields,
    agree: fields.every((f) => f.relDiff <= FIELD_TOLERANCE),
    innerloop: il,
    pytorch: pt,
    ratio: median(il.map((r) => r.seconds)) / median(pt.map((r) => r.seconds)),
    cpuRatio: median(il.map((r) => r.cpuSeconds)) / median(pt.map((r) => r.cpuSeconds)),
    flops: analysisFlopsPerToken(c.model) * windows * c.model.seqLen,
    rssRatio: maxRss(il) / maxRss(pt),
  };
}
