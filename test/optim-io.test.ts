// Optimizer state on disk for a custom loop (saveOptimizer / loadOptimizer), and AdamW's PyTorch
// spelling `betas: [b1, b2]`.
import { afterAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch, F } from "../lib/torch/index.js";
import type { Tensor } from "../lib/torch/index.js";
import { Linear } from "../lib/nn/index.js";
import { AdamW, saveOptimizer, loadOptimizer } from "../lib/optim/index.js";
import { saveSafetensors, loadSafetensors } from "../lib/torch/safetensors.js";

torch.setNumThreads(1);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-optim-io-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fixed batch per step, from a seeded generator, so that both runs see the same data. */
function batch(step: number): { x: Tensor; y: Tensor } {
  torch.manualSeed(1000 + step);
  return { x: torch.keep(torch.randn([16, 8], { dtype: "float32" })), y: torch.keep(torch.randint(0, 4, [16], { dtype: "int64" })) };
}

function trainSteps(model: Linear, opt: AdamW, from: number, to: number): void {
  for (let s = from; s < to; s++) {
    const { x, y } = batch(s);
    torch.tidy(() => {
      opt.zeroGrad();
      F.crossEntropy(model.forward(x), y).backward();
      opt.step();
    });
    x.dispose();
    y.dispose();
  }
}

function weights(model: Linear): Float32Array[] {
  return model.parameters().map((p) => p.toTypedArray() as Float32Array);
}

describe("saveOptimizer / loadOptimizer", () => {
  it("a custom loop saved, reloaded into fresh objects and continued matches an uninterrupted run bitwise", () => {
    torch.manualSeed(0);
    const a = new Linear(8, 4);
    const optA = new AdamW(a.parameters(), { lr: 0.05, betas: [0.8, 0.95], weightDecay: 0.1 });
    trainSteps(a, optA, 0, 10);

    // The interrupted run: 5 steps, save model and optimizer, rebuild both from disk, 5 more.
    torch.manualSeed(0);
    const b = new Linear(8, 4);
    const optB = new AdamW(b.parameters(), { lr: 0.05, betas: [0.8, 0.95], weightDecay: 0.1 });
    trainSteps(b, optB, 0, 5);
    const modelFile = path.join(tmp, "model.safetensors");
    const optFile = path.join(tmp, "optimizer.safetensors");
    saveSafetensors(modelFile, b.stateDict());
    saveOptimizer(optFile, optB);

    torch.manualSeed(99); // different initial weights: everything must come from the files
    const c = new Linear(8, 4);
    const { tensors } = loadSafetensors(modelFile);
    c.loadStateDict(tensors);
    for (const t of Object.values(tensors)) t.dispose();
    const optC = new AdamW(c.parameters(), { lr: 1, betas: [0.5, 0.5] }); // hyperparameters come from the file too
    loadOptimizer(optFile, optC);
    expect(optC.paramGroups[0]!.beta1).toBe(0.8);
    expect(optC.paramGroups[0]!.lr).toBe(0.05);
    trainSteps(c, optC, 5, 10);

    const wa = weights(a);
    const wc = weights(c);
    expect(wc.length).toBe(wa.length);
    for (let i = 0; i < wa.length; i++) expect(Buffer.from(wc[i]!.buffer).equals(Buffer.from(wa[i]!.buffer))).toBe(true);
    // And the run without the reload really differs from a run that skipped the saved state.
    const d = new Linear(8, 4);
    d.loadStateDict(b.stateDict());
    trainSteps(d, new AdamW(d.parameters(), { lr: 0.05, betas: [0.8, 0.95], weightDecay: 0.1 }), 5, 10);
    expect(Buffer.from(weights(d)[0]!.buffer).equals(Buffer.from(wa[0]!.buffer))).toBe(false);
  });

  it("refuses a file that is not an optimizer state, naming it", () => {
    const file = path.join(tmp, "plain.safetensors");
    saveSafetensors(file, { w: torch.zeros([2], { dtype: "float32" }) });
    const p = torch.zeros([2], { dtype: "float32", requiresGrad: true });
    expect(() => loadOptimizer(file, new AdamW([p]))).toThrow(/plain\.safetensors has no innerloop\.optimizer metadata/);
    expect(() => saveOptimizer("", new AdamW([p]))).toThrow(/saveOptimizer: file must be a non-empty string/);
  });
});

describe("AdamW betas", () => {
  const p = () => [torch.zeros([2], { dtype: "float32", requiresGrad: true })];
  it("betas: [b1, b2] sets beta1 and beta2", () => {
    const g = new AdamW(p(), { betas: [0.85, 0.97] }).paramGroups[0]!;
    expect([g.beta1, g.beta2]).toEqual([0.85, 0.97]);
    const same = new AdamW(p(), { betas: [0.85, 0.97], beta1: 0.85 }).paramGroups[0]!;
    expect(same.beta1).toBe(0.85);
  });
  it("betas that contradict beta1/beta2, or are malformed, are errors naming them", () => {
    expect(() => new AdamW(p(), { betas: [0.9, 0.95], beta2: 0.999 })).toThrow(/betas \[0\.9, 0\.95\] contradicts beta2: 0\.999/);
    expect(() => new AdamW(p(), { betas: [0.9] as unknown as [number, number] })).toThrow(/betas must be a pair of numbers/);
    expect(() => new AdamW(p(), { betas: [0.9, 1.5] })).toThrow(/beta2 must be in \[0, 1\)/);
  });
});
