// Snapshots that ride along in a training step (lib/models/gpt2-probe.ts, native gpt2BlockProbe):
// the training rows' loss and gradients are exactly those of the step without the probe windows,
// what is captured of the probe windows equals a hooked pass of their own, the analysis from it
// equals the standalone analysis, and the trainer's timeline is the same as without riding along.

import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch, F, type Tensor, type DType } from "../lib/torch/index.js";
import * as kernels from "../lib/torch/internal.js";
import { GPT2 } from "../lib/models/index.js";
import { forwardProbed, probedForwardApplies } from "../lib/models/gpt2-probe.js";
import { runWithCache } from "../lib/analysis/capture.js";
import { HeldOutAnalysis } from "../lib/analysis/analyze.js";
import { arrayTokenStream, toTokenStream } from "../lib/analysis/windows.js";
import { AnalysisPlugin } from "../lib/analysis/plugin.js";
import { readTimeline, writeTimeline } from "../lib/analysis/files.js";
import type { AnalysisModel } from "../lib/analysis/adapter.js";
import type { AnalysisResult } from "../lib/analysis/result.js";
import { resolveConfig, type TrainConfig } from "../lib/train/config.js";
import { Trainer } from "../lib/train/trainer.js";
import { loadGPT2 } from "../lib/models/index.js";
import { expectNestedClose, nestedMaxAbs } from "./helpers/close.js";

const V = 61;
const T = 20;

function model(dtype: DType, seed = 3): GPT2 {
  const m = new GPT2({ vocabSize: V, nLayer: 3, nHead: 4, nEmbd: 32, nPositions: T, dropout: 0 }, { seed });
  return dtype === "float32" ? m : (m.to({ dtype }) as GPT2);
}

/** b windows of T+1 random tokens as [ids, targets] [b, T]. */
function windows(b: number): [Tensor, Tensor] {
  const w = torch.randint(0, V, [b, T + 1]);
  return [w.narrow(1, 0, T).contiguous(), w.narrow(1, 1, T).contiguous()];
}

const maxDiff = (a: Tensor, b: Tensor): number => a.sub(b).abs().max().item() as number;
const scale = (a: Tensor): number => a.abs().max().item() as number;

/**
 * Every numeric field of two analysis results within rel of each field's largest value (`relOf`
 * overrides it for top-level fields).
 */
function expectResultsClose(got: AnalysisResult, want: AnalysisResult, rel: number, relOf: Record<string, number> = {}): void {
  const walk = (g: unknown, w: unknown, where: string): void => {
    const field = where.split(".")[1]?.split("[")[0] ?? "";
    if (w !== null && typeof w === "object" && !Array.isArray(w)) {
      expect(Object.keys(g as object).sort(), where).toEqual(Object.keys(w).sort());
      for (const k of Object.keys(w)) walk((g as Record<string, unknown>)[k], (w as Record<string, unknown>)[k], `${where}.${k}`);
      return;
    }
    if (Array.isArray(w) && w.some((x) => x !== null && typeof x === "object" && !Array.isArray(x))) {
      expect((g as unknown[]).length, where).toBe(w.length);
      return w.forEach((x, i) => walk((g as unknown[])[i], x, `${where}[${i}]`));
    }
    if (typeof w === "string" || typeof w === "boolean") return void expect(g, where).toBe(w);
    expectNestedClose(g, w, where, nestedMaxAbs(w), relOf[field] ?? rel);
  };
  walk(got, want, "result");
}

describe("forwardProbed: the training rows are untouched", () => {
  for (const dtype of ["float32", "float64"] as const) {
    for (const r of [1, 3]) {
      it(`${dtype}, ${r} probe window(s): the same loss and bitwise the same parameter gradients as model.forward`, () => {
        torch.manualSeed(11);
        const m = model(dtype).train();
        const params = m.parameters();
        const [ids, targets] = windows(4);
        const [pids, ptargets] = windows(r);
        const plain = torch.tidy(() => {
          const loss = m.forward(ids, { targets }).loss!;
          loss.backward();
          return { loss: loss.item() as number, grads: torch.keep(params.map((p) => p.grad!.clone())) };
        });
        kernels.zeroGrad(params);
        const probed = torch.tidy(() => {
          const p = forwardProbed(m, ids, targets, pids, ptargets)!;
          expect(p).toBeDefined();
          p.loss.add(p.probeLoss).backward();
          return { loss: p.loss.item() as number, grads: torch.keep(params.map((q) => q.grad!.clone())) };
        });
        expect(probed.loss).toBe(plain.loss);
        plain.grads.forEach((g, i) => expect(maxDiff(probed.grads[i]!, g), m.namedParameters()[i]![0]).toBe(0));
        for (const t of [...plain.grads, ...probed.grads]) t.dispose();
        m.dispose();
      });
    }
  }
});

describe("forwardProbed: the capture equals a hooked pass of the probe windows", () => {
  for (const [dtype, rel] of [["float64", 1e-10], ["float32", 2e-5]] as const) {
    it(`${dtype}: h^l, ∂ℓ/∂h^l, attention and MLP outputs, first-key attention, parameter-gradient norms, logits and ℓ`, () => {
      torch.manualSeed(5);
      const m = model(dtype).train();
      const L = 3;
      const [ids, targets] = windows(3);
      const [pids, ptargets] = windows(2);
      torch.tidy(() => {
        const p = forwardProbed(m, ids, targets, pids, ptargets)!;
        p.loss.add(p.probeLoss).backward();
        kernels.zeroGrad(m.parameters());
        const cap = p.capture;

        m.eval();
        const resid = [...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`), `blocks.${L - 1}.hook_resid_post`];
        const parts = Array.from({ length: L }, (_, l) => [`blocks.${l}.hook_attn_out`, `blocks.${l}.hook_mlp_out`, `blocks.${l}.attn.hook_q`, `blocks.${l}.attn.hook_k`]).flat();
        const blockParams = Array.from({ length: L }, (_, l) => m.namedParameters().filter(([n]) => n.startsWith(`transformer.h.${l}.`)).map(([, q]) => q));
        const ref = runWithCache(m, pids, {
          namesFilter: [...resid, ...parts], withGrads: true, gradNamesFilter: resid, targets: ptargets, reduction: "sum", params: blockParams.flat(),
        });
        const close = (got: Tensor, want: Tensor, what: string) => expect(maxDiff(got, want), what).toBeLessThanOrEqual(rel * Math.max(scale(want), 1e-30));
        close(cap.loss, ref.loss!, "ℓ");
        close(cap.logits, ref.logits, "logits");
        resid.forEach((n, l) => {
          close(cap.resid[l]!, ref.acts.get(n)!, `h^${l}`);
          close(cap.residGrads[l]!, ref.grads.get(n)!, `∂ℓ/∂h^${l}`);
        });
        for (let l = 0; l < L; l++) {
          close(cap.attnOut[l]!, ref.acts.get(`blocks.${l}.hook_attn_out`)!, `attn_out ${l}`);
          close(cap.mlpOut[l]!, ref.acts.get(`blocks.${l}.hook_mlp_out`)!, `mlp_out ${l}`);
          // A[b, head, t, 0] from the scores and their softmax.
          const q = ref.acts.get(`blocks.${l}.attn.hook_q`)!;
          const k = ref.acts.get(`blocks.${l}.attn.hook_k`)!;
          const mask = torch.ones([T, T]).triu(1).gt(0);
          const scores = q.matmul(k.transpose(2, 3)).mul(1 / Math.sqrt(8)).maskedFill(mask, -Infinity);
          close(cap.firstKeyAttention[l]!, F.softmax(scores, 3).select(3, 0), `first-key attention ${l}`);
        }
        expect(cap.paramGradNorms.shape).toEqual([L, 12]);
        const norms = torch.stack(ref.paramGrads.map((g) => g.norm())).view([L, 12]);
        close(cap.paramGradNorms, norms, "parameter-gradient norms");
      });
      m.dispose();
    });
  }

  it("every parameter gradient of the probe rows is left out, also of the embeddings, the final norm and the tied unembedding", () => {
    torch.manualSeed(8);
    const m = model("float64").train();
    const [ids, targets] = windows(2);
    const [pids, ptargets] = windows(1);
    torch.tidy(() => {
      // The probe loss alone: no parameter may receive a gradient from it.
      const p = forwardProbed(m, ids, targets, pids, ptargets)!;
      p.probeLoss.backward();
      for (const [name, q] of m.namedParameters()) {
        const g = q.grad;
        expect(g === null || maxDiff(g, torch.zerosLike(g)) === 0, name).toBe(true);
      }
      // ... while the capture was filled.
      expect(scale(p.capture.residGrads[0]!)).toBeGreaterThan(0);
      expect(scale(p.capture.paramGradNorms)).toBeGreaterThan(0);
    });
    m.dispose();
  });

  it("does not apply (undefined, nothing computed) with dropout in training, a hook set, or the fused paths off", () => {
    const [ids, targets] = windows(2);
    const [pids, ptargets] = windows(1);
    const drop = new GPT2({ vocabSize: V, nLayer: 1, nHead: 2, nEmbd: 16, nPositions: T, dropout: 0.1 }, { seed: 1 }).train();
    expect(probedForwardApplies(drop)).toBe(false);
    expect(forwardProbed(drop, ids, targets, pids, ptargets)).toBeUndefined();
    drop.eval();
    expect(probedForwardApplies(drop)).toBe(true);
    drop.dispose();
    const m = model("float32");
    const hp = m.hookPoints().get("blocks.0.hook_resid_pre")!;
    hp.setHook((x) => x);
    expect(forwardProbed(m, ids, targets, pids, ptargets)).toBeUndefined();
    hp.setHook(null);
    torch.setFusedPaths(false);
    try {
      expect(forwardProbed(m, ids, targets, pids, ptargets)).toBeUndefined();
    } finally {
      torch.setFusedPaths(true);
    }
    expect(probedForwardApplies(m)).toBe(true);
    m.dispose();
  });

  it("refuses bad probe arguments with errors naming them", () => {
    const m = model("float32");
    const [ids, targets] = windows(2);
    const [pids] = windows(1);
    expect(() => forwardProbed(m, ids, targets, pids, targets)).toThrow(/probe ids and targets must both be \[r, 20\]/);
    const w = [...m.blocks][0]!.fusedWeights();
    const h = torch.zeros([2, T, 32]);
    const sinks = { rows: 1, gradIn: null, gradOut: torch.zeros([1, T, 32]), paramNorms: torch.zeros([12]) };
    expect(() => kernels.gpt2BlockProbe(h, w, 4, 1e-5, { ...sinks, rows: 3 })).toThrow(/probeRows must be at least 1 and at most the batch \(2\), got 3/);
    expect(() => kernels.gpt2BlockProbe(h, w, 4, 1e-5, { ...sinks, gradOut: torch.zeros([2, T, 32]) })).toThrow(/gradOut must be a contiguous CPU tensor \[1, 20, 32\]/);
    expect(() => kernels.gpt2BlockProbe(h, w, 4, 1e-5, { ...sinks, paramNorms: torch.zeros([11]) })).toThrow(/paramNorms must be a CPU tensor \[12\]/);
    expect(() => kernels.gpt2BlockProbe(h, w, 4, 1e-5, { ...sinks, gradIn: torch.zeros([1, T, 32], { dtype: "float64" }) })).toThrow(/gradIn must be/);
    m.dispose();
  });
});

describe("the analysis from a captured pass", () => {
  it("equals the standalone analysis of the same windows, field by field (float64)", () => {
    torch.manualSeed(21);
    const m = model("float64").train();
    const tokens = new Int32Array(3 * (T + 1)).map((_, i) => (i * 7919 + 13) % V);
    const ho = new HeldOutAnalysis(m as unknown as AnalysisModel, arrayTokenStream(tokens), { seqLen: T, batchSize: 3, maxWindows: 3 });
    const batch = ho.singleBatch!;
    expect(batch.b).toBe(3);
    const standalone = ho.run();
    const [ids, targets] = windows(4);
    const captured = torch.tidy(() => {
      const p = forwardProbed(m, ids, targets, batch.ids, batch.targets)!;
      p.loss.add(p.probeLoss).backward();
      return ho.runCaptured(p.capture);
    });
    kernels.zeroGrad(m.parameters());
    // The standalone pass computes the first-key attention from float32 copies of q and k.
    expectResultsClose(captured, standalone, 1e-9, { attnFirstToken: 1e-6 });
    // And again (the accumulators are reused).
    const again = torch.tidy(() => {
      const p = forwardProbed(m, ids, targets, batch.ids, batch.targets)!;
      p.loss.add(p.probeLoss).backward();
      return ho.runCaptured(p.capture);
    });
    expectResultsClose(again, captured, 0);
    ho.dispose();
    m.dispose();
  });
});

describe("the trainer with snapshots riding along", () => {
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-ride-"));
  const config = (analyzeEvery: number): TrainConfig => resolveConfig({
    data: "moby-dick", tokenizer: "char", nLayer: 2, nHead: 2, nEmbd: 32, seqLen: 24, batchSize: 4, steps: 6,
    lr: 3e-3, minLr: 3e-4, warmup: 2, evalEvery: 0, checkpointEvery: 0, dropout: 0, seed: 7,
    analyzeEvery, analyzeWindows: 3,
  });
  async function train(runDir: string, c: TrainConfig, o: { stopAtStep?: number; resume?: boolean } = {}): Promise<Trainer> {
    const trainer = await Trainer.create({ runDir, config: o.resume ? undefined : c, resume: o.resume, progress: { quiet: true }, stopAtStep: o.stopAtStep });
    if (c.analyzeEvery > 0) trainer.addPlugin(new AnalysisPlugin({ runDir, every: c.analyzeEvery, windows: c.analyzeWindows, seqLen: c.seqLen, batchSize: Math.min(c.batchSize, c.analyzeWindows), flushSeconds: 0, resumed: o.resume }));
    await trainer.run();
    trainer.close();
    return trainer;
  }
  const losses = (dir: string): number[] =>
    fs.readFileSync(path.join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss?: number }).filter((r) => r.loss !== undefined).map((r) => r.loss!);

  it("rides along except at the last step, leaves the loss curve bitwise unchanged, and each snapshot equals a fresh analysis of that step's weights", async () => {
    const dir = tmp();
    const plain = tmp();
    await train(dir, config(2));
    await train(plain, { ...config(0), analyzeEvery: 0 });
    expect(losses(dir)).toEqual(losses(plain));
    const snaps = readTimeline(dir)!.snapshots;
    expect(snaps.map((s) => s.step)).toEqual([2, 4, 6]);
    expect(snaps.map((s) => (s.meta as { rodeAlong?: boolean }).rodeAlong ?? false)).toEqual([true, true, false]);

    // Step 4's weights: the same run stopped after step 4 (same schedule), analysed afresh.
    const at4 = tmp();
    await train(at4, { ...config(0), analyzeEvery: 0 }, { stopAtStep: 4 });
    const m = loadGPT2(at4);
    const { loadCorpus } = await import("../lib/data/index.js");
    const corpus = loadCorpus("moby-dick", "char");
    const ho = new HeldOutAnalysis(m as unknown as AnalysisModel, toTokenStream(corpus.val), { seqLen: 24, batchSize: 3, maxWindows: 3 });
    const fresh = ho.run();
    ho.dispose();
    m.dispose();
    const { step: _s, meta: _m, ...snap4 } = snaps[1]!;
    expectResultsClose(snap4 as AnalysisResult, fresh, 2e-4);
  }, 60_000);

  it("with gradient accumulation the windows ride along in the first micro-batch only, and the loss curve is still unchanged", async () => {
    const dir = tmp();
    const plain = tmp();
    const c = { ...config(2), gradAccum: 2, steps: 4 };
    await train(dir, c);
    await train(plain, { ...c, analyzeEvery: 0 });
    expect(losses(dir)).toEqual(losses(plain));
    const snaps = readTimeline(dir)!.snapshots;
    expect(snaps.map((s) => [s.step, (s.meta as { rodeAlong?: boolean }).rodeAlong ?? false])).toEqual([[2, true], [4, false]]);
  }, 60_000);

  it("a run stopped while a snapshot was due takes it before it ends; one that lost it takes it when resumed", async () => {
    const dir = tmp();
    await train(dir, config(2), { stopAtStep: 4 });
    // Stopped after step 4: the snapshot due to ride along in step 5 was taken at the end.
    const t = readTimeline(dir)!;
    expect(t.snapshots.map((s) => [s.step, (s.meta as { rodeAlong?: boolean }).rodeAlong ?? false])).toEqual([[2, true], [4, false]]);
    // As if the process had been killed before step 5 finished: the timeline lacks step 4.
    writeTimeline(dir, { snapshots: t.snapshots.slice(0, 1) });
    await train(dir, config(2), { resume: true });
    const after = readTimeline(dir)!.snapshots;
    expect(after.map((s) => s.step)).toEqual([2, 4, 6]);
    // The recovered snapshot equals the one the stopped run had taken of the same weights.
    const { meta: _a, ...was } = t.snapshots[1]!;
    const { meta: _b, ...now } = after[1]!;
    expectResultsClose(now as unknown as AnalysisResult, was as unknown as AnalysisResult, 1e-6);
  }, 60_000);
});
