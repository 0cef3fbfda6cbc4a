// The repeated analysis of a fixed set of windows (training-time snapshots): HeldOutAnalysis gives
// what analyzeModel gives, run after run and after the weights change; the Analyzer can be reused;
// the attention mass is the same computed window by window; the snapshot's thread choice.

import { describe, it, expect } from "vitest";
import { torch } from "../lib/torch/index.js";
import { GPT2 } from "../lib/models/index.js";
import { analyzeModel, HeldOutAnalysis } from "../lib/analysis/analyze.js";
import { Analyzer } from "../lib/analysis/analyzer.js";
import { adaptModel, type AnalysisModel } from "../lib/analysis/adapter.js";
import { frequencyBuckets } from "../lib/analysis/fits.js";
import { arrayTokenStream, readWindows } from "../lib/analysis/windows.js";
import { runWithCache } from "../lib/analysis/capture.js";
import { DeviceSum, StreamingMoments } from "../lib/analysis/stats.js";
import { AnalysisPlugin, ThreadChoice } from "../lib/analysis/plugin.js";
import type { AnalysisResult } from "../lib/analysis/result.js";

const T = 10;
const V = 29;
const make = (seed = 3): GPT2 => new GPT2({ vocabSize: V, nPositions: 16, nEmbd: 24, nLayer: 3, nHead: 3, dropout: 0.1 }, { seed });
// 7 windows of T+1 tokens and a remainder.
const tokens = Int32Array.from({ length: 7 * (T + 1) + 4 }, (_, i) => (i * 13 + (i >> 2)) % V);
const opts = { seqLen: T, batchSize: 3, maxWindows: 7 }; // batches of 3, 3 and 1 windows

/** Largest relative difference over every number of two results. */
function maxRelDiff(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-6);
  if (Array.isArray(a) && Array.isArray(b)) {
    expect(a.length).toBe(b.length);
    return Math.max(0, ...a.map((x, i) => maxRelDiff(x, b[i])));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    return Math.max(0, ...Object.keys(a).map((k) => maxRelDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])));
  }
  expect(a).toEqual(b);
  return 0;
}

describe("HeldOutAnalysis", () => {
  it("equals analyzeModel on every run, also after the weights change in place", () => {
    const model = make();
    model.train(); // the analysis switches to eval mode and back
    const m = model as unknown as AnalysisModel;
    const stream = arrayTokenStream(tokens);
    const held = new HeldOutAnalysis(m, stream, opts);
    const first = held.run();
    expect(first.windows).toBe(7);
    expect(maxRelDiff(first, analyzeModel(m, stream, opts))).toBeLessThan(1e-6);
    expect(maxRelDiff(held.run(), first)).toBe(0);
    expect(model.training).toBe(true);
    // An optimizer-like in-place update: the next run sees the new weights.
    torch.noGrad(() => {
      for (const p of model.parameters()) p.mul_(1.1);
    });
    const after = held.run();
    expect(maxRelDiff(after, first)).toBeGreaterThan(1e-3);
    expect(maxRelDiff(after, analyzeModel(m, stream, opts))).toBeLessThan(1e-6);
    expect(held.fits(m)).toBe(true);
    const other = make(4);
    expect(held.fits(other as unknown as AnalysisModel)).toBe(false);
    // New parameter tensors (a dtype change) no longer fit.
    model.to({ dtype: "float64" });
    expect(held.fits(m)).toBe(false);
    held.dispose();
    expect(() => held.run()).toThrow(/disposed/);
    other.dispose();
    model.dispose();
  });

  it("keeps the live-tensor count flat across runs and frees everything on dispose", () => {
    const model = make();
    const before = torch.memory().liveTensors;
    const held = new HeldOutAnalysis(model as unknown as AnalysisModel, arrayTokenStream(tokens), { ...opts, batchSize: 7 });
    held.run();
    const after1 = torch.memory().liveTensors;
    for (let i = 0; i < 3; i++) held.run();
    expect(torch.memory().liveTensors).toBe(after1);
    held.dispose();
    expect(torch.memory().liveTensors).toBe(before);
    model.dispose();
  });
});

describe("Analyzer", () => {
  const build = (model: GPT2, attn: { attnKernel?: "fused" | "scores"; attnChunkScores?: number } = {}) => {
    const m = model as unknown as AnalysisModel;
    const adapter = adaptModel(m);
    const counts = new Float64Array(V);
    for (let w = 0; w < 7; w++) for (let t = 0; t < T; t++) counts[tokens[w * (T + 1) + t]!]! += 1;
    return new Analyzer(m, adapter, { seqLen: T, device: "cpu", freqBuckets: 4, bucketOf: frequencyBuckets(counts, 4), ...attn });
  };
  const runAll = (a: Analyzer, batches: Array<[number, number]>): AnalysisResult => {
    const stream = arrayTokenStream(tokens);
    batches.forEach(([w0, w1], i) => a.addBatch(readWindows(stream, T, w0, w1), w0, i === batches.length - 1));
    return a.finish();
  };

  it("can be reused after finish(), and one batch given as last equals the same windows in several", () => {
    const model = make();
    const a = build(model);
    const split = runAll(a, [[0, 3], [3, 6], [6, 7]]);
    const again = runAll(a, [[0, 3], [3, 6], [6, 7]]);
    expect(maxRelDiff(again, split)).toBe(0);
    const whole = runAll(a, [[0, 7]]);
    // Equal top-k values (the embedding repeats with the tokens) may be listed in either order.
    const valuesOnly = (r: AnalysisResult) => ({ ...r, massive: { ...r.massive, layers: r.massive.layers.map((l) => l.values) } });
    expect(maxRelDiff(valuesOnly(whole), valuesOnly(split))).toBeLessThan(1e-5);
    // Nothing may follow the batch given as last.
    const stream = arrayTokenStream(tokens);
    a.addBatch(readWindows(stream, T, 0, 2), 0, true);
    expect(() => a.addBatch(readWindows(stream, T, 2, 3), 2)).toThrow(/after the one given as last/);
    a.reset();
    a.dispose();
    model.dispose();
  });

  it("gives the same attention mass from the fused kernel and from the scores, whole or window by window", () => {
    const model = make();
    const fused = runAll(build(model, { attnKernel: "fused" }), [[0, 7]]);
    const scores = runAll(build(model, { attnKernel: "scores" }), [[0, 7]]);
    const chunked = runAll(build(model, { attnKernel: "scores", attnChunkScores: 1 }), [[0, 7]]); // one window at a time
    expect(fused.attnFirstToken).not.toBeNull();
    expect(maxRelDiff(scores.attnFirstToken, fused.attnFirstToken)).toBeLessThan(1e-5);
    expect(maxRelDiff(chunked.attnFirstToken, scores.attnFirstToken)).toBeLessThan(1e-6);
    for (const row of fused.attnFirstToken!.mean) for (const v of row) expect(v).toBeGreaterThan(0);
    model.dispose();
  });

  it("finds the top-|h| values of a batch exactly (values and labels) as a full sort does", () => {
    const model = make();
    const r = runAll(build(model), [[0, 7]]);
    const stream = arrayTokenStream(tokens);
    model.eval();
    torch.tidy(() => {
      const ids = torch.tensor(readWindows(stream, T, 0, 7)).view([7, T + 1]).narrow(1, 0, T).to("int64");
      const cache = runWithCache(model, ids, { namesFilter: (n) => /hook_resid_pre$|blocks\.2\.hook_resid_post$/.test(n) });
      const names = [0, 1, 2].map((l) => `blocks.${l}.hook_resid_pre`).concat("blocks.2.hook_resid_post");
      names.forEach((n, l) => {
        const flat = cache.acts.get(n)!.abs().reshape([-1]);
        const want = flat.sort(0, { descending: true }).values.narrow(0, 0, 8).toArray() as number[];
        const got = r.massive.layers[l]!;
        got.values.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
        // Each label points at an entry with its value.
        got.values.forEach((v, i) => {
          const at = (got.windows[i]! * T + got.positions[i]!) * 24 + got.dims[i]!;
          expect(flat.narrow(0, at, 1).item()).toBeCloseTo(v, 6);
        });
      });
    });
    model.dispose();
  });
});

describe("reusable accumulators", () => {
  it("DeviceSum and StreamingMoments start again from zero after reset()", () => {
    const s = new DeviceSum([2], "cpu");
    s.add(torch.tensor([1, 2]));
    s.add(torch.tensor([3, 4]));
    expect(s.total.toArray()).toEqual([4, 6]);
    s.reset();
    expect(s.total.toArray()).toEqual([0, 0]);
    s.reset();
    s.add(torch.tensor([5, 7]));
    expect(s.total.toArray()).toEqual([5, 7]);
    s.dispose();

    const m = new StreamingMoments([2], "cpu");
    m.update(torch.tensor([[1, 10], [3, 30]]), 0);
    m.update(torch.tensor([[5, 50]]), 0);
    const r = m.result() as { mean: number[]; std: number[] };
    expect(r.mean).toEqual([3, 30]);
    expect(r.std[0]).toBeCloseTo(Math.sqrt(8 / 3), 12);
    m.reset();
    m.update(torch.tensor([[2, 4], [4, 8]]), 0);
    expect((m.result() as { mean: number[] }).mean).toEqual([3, 6]);
    m.dispose();
  });
});

describe("ThreadChoice", () => {
  it("times both settings alternately, then uses the faster and re-times the other every 16th call", () => {
    const c = new ThreadChoice(2);
    const seen: number[] = [];
    const time = (n: number): number => (n === 1 ? 10 : 14); // one thread is faster
    for (let i = 0; i < 6; i++) {
      const n = c.next();
      seen.push(n);
      c.record(n, time(n));
    }
    expect(seen).toEqual([2, 1, 2, 1, 2, 1]);
    expect(c.best()).toBe(1);
    const later: number[] = [];
    for (let i = 0; i < 26; i++) {
      const n = c.next();
      later.push(n);
      c.record(n, time(n));
    }
    // Calls 7..32: the base is re-timed at calls 16 and 32.
    expect(later.filter((n) => n === 2)).toHaveLength(2);
    expect(later[16 - 7]).toBe(2);
    expect(later[32 - 7]).toBe(2);
    // When the load changes and the base becomes faster, the choice follows.
    for (let i = 0; i < 40; i++) {
      const n = c.next();
      c.record(n, n === 1 ? 30 : 14);
    }
    expect(c.best()).toBe(2);
    expect(new ThreadChoice(1).next()).toBe(1);
  });

  it("a CPU snapshot leaves the process's thread count as it was", () => {
    const model = make();
    const p = new AnalysisPlugin({ runDir: "/nonexistent", every: 1, windows: 2, seqLen: T, batchSize: 2, flushSeconds: 1e9 });
    p.setup({ runDir: "", config: {} as never, model, tokenizer: null, valTokens: tokens, startStep: 0, resumed: false });
    const base = torch.getNumThreads();
    for (let i = 1; i <= 8; i++) {
      const s = p.snapshot(model as unknown as AnalysisModel, i);
      expect(s.windows).toBe(2);
      expect(torch.getNumThreads()).toBe(base);
    }
    p.dispose();
    model.dispose();
  });
});
