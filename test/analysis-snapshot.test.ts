// Training-time analysis snapshots (`innerloop train --analyze-every N`): the timeline file, its
// contents against a fresh analysis of the saved model, no effect on training, and resume.

import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";
import { loadGPT2 } from "../lib/models/index.js";
import { resolveConfig, type TrainConfig } from "../lib/train/config.js";
import { runTraining } from "../lib/train/run.js";
import { registerTrainerPlugin } from "../lib/train/plugins.js";
import { createAnalysisPlugin } from "../lib/analysis/plugin.js";
import { analyzeModel } from "../lib/analysis/analyze.js";
import { toTokenStream } from "../lib/analysis/windows.js";
import { readTimeline } from "../lib/analysis/files.js";
import type { AnalysisModel } from "../lib/analysis/adapter.js";

registerTrainerPlugin("analysis", createAnalysisPlugin);

const sink = { write: () => true } as unknown as NodeJS.WritableStream;

function config(steps: number, analyzeEvery: number): TrainConfig {
  return resolveConfig({
    data: "moby-dick", tokenizer: "char", nLayer: 2, nHead: 2, nEmbd: 32, seqLen: 24, batchSize: 4, steps,
    lr: 3e-3, minLr: 3e-4, warmup: 2, evalEvery: 0, checkpointEvery: 0, dropout: 0.1, seed: 7,
    analyzeEvery, analyzeWindows: 5,
  });
}

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-snap-"));
const losses = (dir: string): number[] =>
  fs.readFileSync(path.join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss?: number }).filter((r) => r.loss !== undefined).map((r) => r.loss!);

describe("analysis snapshots during training", () => {
  let dir: string;
  let plain: string;
  beforeAll(async () => {
    dir = tmp();
    plain = tmp();
    await runTraining({ runDir: dir, resume: false, config: config(6, 2), stdout: sink, stderr: sink });
    await runTraining({ runDir: plain, resume: false, config: config(6, 0), stdout: sink, stderr: sink });
  });

  it("writes timeline.json with a snapshot every N steps and every analysis field", () => {
    const t = readTimeline(dir)!;
    expect(t.snapshots.map((s) => s.step)).toEqual([2, 4, 6]);
    for (const s of t.snapshots) {
      expect(s.windows).toBe(5);
      expect(s.seqLen).toBe(24);
      expect(s.layers).toBe(3);
      expect(s.hiddenNorm.mean).toHaveLength(3);
      expect(s.hiddenNorm.mean[0]).toHaveLength(24);
      expect(s.hiddenNorm.std[2]).toHaveLength(24);
      expect(s.gradNorm.mean).toHaveLength(3);
      expect(s.update.normMean).toHaveLength(2);
      expect(s.update.cosMean[1]).toHaveLength(24);
      expect(s.logitLens.loss).toHaveLength(3);
      expect(s.paramGradNorm).toHaveLength(2);
      expect(s.loss).toBeGreaterThan(0);
      expect(s.logitLens.loss[2]).toBeCloseTo(s.loss, 10);
      for (const row of s.update.cosMean) for (const c of row) expect(Math.abs(c)).toBeLessThanOrEqual(1);
      expect(typeof (s.meta as { analysisMs: number }).analysisMs).toBe("number");
    }
    // The model learns: held-out loss falls between the first and the last snapshot.
    expect(t.snapshots[2]!.loss).toBeLessThan(t.snapshots[0]!.loss);
  });

  it("the last snapshot equals a fresh analysis of the saved model on the first K held-out windows", () => {
    const t = readTimeline(dir)!;
    const last = t.snapshots[t.snapshots.length - 1]!;
    const model = loadGPT2(dir);
    // The run's validation split, re-read through the corpus loader the trainer uses.
    return import("../lib/data/index.js").then(({ loadCorpus }) => {
      const corpus = loadCorpus("moby-dick", "char");
      const fresh = analyzeModel(model as unknown as AnalysisModel, toTokenStream(corpus.val), { seqLen: 24, batchSize: 4, maxWindows: 5 });
      model.dispose();
      expect(fresh.windows).toBe(5);
      expect(fresh.loss).toBeCloseTo(last.loss, 5);
      fresh.hiddenNorm.mean.forEach((row, l) => row.forEach((v, i) => expect(v).toBeCloseTo(last.hiddenNorm.mean[l]![i]!, 4)));
      fresh.update.cosMean.forEach((row, l) => row.forEach((v, i) => expect(v).toBeCloseTo(last.update.cosMean[l]![i]!, 5)));
      fresh.paramGradNorm.forEach((v, l) => expect(v).toBeCloseTo(last.paramGradNorm[l]!, 5));
    });
  });

  it("does not change training: the loss curve equals a run without analysis", () => {
    expect(losses(dir)).toEqual(losses(plain));
  });

  it("a resumed run keeps earlier snapshots and continues the timeline", async () => {
    const r = tmp();
    await runTraining({ runDir: r, resume: false, config: config(4, 2), stdout: sink, stderr: sink });
    const before = readTimeline(r)!.snapshots;
    expect(before.map((s) => s.step)).toEqual([2, 4]);
    await runTraining({ runDir: r, resume: true, overrides: { steps: 6 }, stdout: sink, stderr: sink });
    const t = readTimeline(r)!;
    expect(t.snapshots.map((s) => s.step)).toEqual([2, 4, 6]);
    // The snapshots from before the resume are kept as they were.
    expect(t.snapshots.slice(0, 2)).toEqual(before.slice(0, 2));
  });

  it("leaves the live-tensor count flat across snapshots", async () => {
    const { AnalysisPlugin } = await import("../lib/analysis/plugin.js");
    const model = loadGPT2(dir);
    const { loadCorpus } = await import("../lib/data/index.js");
    const corpus = loadCorpus("moby-dick", "char");
    const p = new AnalysisPlugin({ runDir: tmp(), every: 1, windows: 3, seqLen: 24, batchSize: 2, flushSeconds: 0 });
    p.setup({ runDir: "", config: config(1, 1), model, tokenizer: null, valTokens: corpus.val, startStep: 0, resumed: false });
    p.snapshot(model as unknown as AnalysisModel, 1);
    const before = torch.memory().liveTensors;
    for (let i = 2; i < 6; i++) p.snapshot(model as unknown as AnalysisModel, i);
    expect(torch.memory().liveTensors).toBe(before);
    model.dispose();
  });
});
