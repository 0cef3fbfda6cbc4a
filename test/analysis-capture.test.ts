// runWithCache: records exactly the selected hook points, gradients agree with an independent
// autograd computation, hooks never outlive the call, and nothing is left behind.

import { describe, it, expect } from "vitest";
import { torch, F } from "../lib/torch/index.js";
import { GPT2 } from "../lib/models/index.js";
import { runWithCache } from "../lib/analysis/capture.js";

const devices = ["cpu", ...(torch.cuda.isAvailable() ? ["cuda"] : [])] as const;

describe.each(devices)("runWithCache (%s)", (device) => {
  const make = () => {
    const m = new GPT2({ vocabSize: 31, nPositions: 12, nEmbd: 16, nLayer: 2, nHead: 2, dropout: 0.2 }, { seed: 11, device: device as "cpu" });
    m.eval();
    const ids = torch.randint(0, 31, [3, 9], { device: device as "cpu" });
    const tgt = torch.randint(0, 31, [3, 9], { device: device as "cpu" });
    return { m, ids, tgt };
  };

  it("records only the selected hook points, and no hook stays set", () => {
    const { m, ids } = make();
    torch.tidy(() => {
      const names = ["blocks.0.hook_resid_pre", "blocks.1.hook_mlp_out", "blocks.1.attn.hook_q"];
      const c = runWithCache(m, ids, { namesFilter: names });
      expect([...c.acts.keys()].sort()).toEqual([...names].sort());
      expect(c.grads.size).toBe(0);
      expect(c.loss).toBeNull();
      expect(c.acts.get("blocks.1.attn.hook_q")!.shape).toEqual([3, 2, 9, 8]);
      expect(c.acts.get("blocks.0.hook_resid_pre")!.shape).toEqual([3, 9, 16]);
      const re = runWithCache(m, ids, { namesFilter: /hook_resid_post$/ });
      expect([...re.acts.keys()].sort()).toEqual(["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]);
    });
    for (const hp of m.hookPoints().values()) expect(hp.hasHook).toBe(false);
    expect(() => runWithCache(m, ids, { namesFilter: ["blocks.9.hook_resid_pre"] })).toThrow(/no hook point 'blocks.9.hook_resid_pre'/);
    m.dispose();
  });

  it("gradients equal autograd through the final norm and unembedding, and the blocks", () => {
    const { m, ids, tgt } = make();
    torch.tidy(() => {
      const last = "blocks.1.hook_resid_post";
      const c = runWithCache(m, ids, { namesFilter: ["blocks.1.hook_resid_pre", last], withGrads: true, targets: tgt });
      // ∂ℓ/∂h^L by hand: decode a detached copy of h^L that requires grad.
      const hL = c.acts.get(last)!.detach().requiresGrad_(true);
      const manual = torch.enableGrad(() => {
        const logits = m.decode(hL);
        const loss = F.crossEntropy(logits.reshape([-1, 31]), tgt.reshape([-1]), { reduction: "sum" });
        return torch.autograd.grad([loss], [hL])[0]!;
      });
      const diff = c.grads.get(last)!.sub(manual).abs().max().item() as number;
      expect(diff).toBeLessThan(1e-5);
      // ∂ℓ/∂h^1 by hand: run block 1 and the head on a detached h^1.
      const h1 = c.acts.get("blocks.1.hook_resid_pre")!.detach().requiresGrad_(true);
      const g1 = torch.enableGrad(() => {
        const logits = m.head(m.blocks.at(1).forward(h1));
        const loss = F.crossEntropy(logits.reshape([-1, 31]), tgt.reshape([-1]), { reduction: "sum" });
        return torch.autograd.grad([loss], [h1])[0]!;
      });
      expect(c.grads.get("blocks.1.hook_resid_pre")!.sub(g1).abs().max().item() as number).toBeLessThan(1e-5);
      // 'mean' reduction divides the same gradient by the number of targets.
      const cm = runWithCache(m, ids, { namesFilter: [last], withGrads: true, targets: tgt, reduction: "mean" });
      expect(cm.grads.get(last)!.mul(27).sub(c.grads.get(last)!).abs().max().item() as number).toBeLessThan(1e-5);
      expect(cm.loss!.item() as number).toBeCloseTo((c.loss!.item() as number) / 27, 5);
    });
    // Parameters' .grad are untouched (autograd.grad, not backward).
    for (const p of m.parameters()) expect(p.grad).toBeNull();
    m.dispose();
  });

  it("frees everything with dispose() and keeps the live-tensor count flat", () => {
    const { m, ids, tgt } = make();
    const params = m.parameters().slice(0, 3);
    const before = torch.memory().liveTensors;
    for (let i = 0; i < 5; i++) {
      const c = runWithCache(m, ids, { namesFilter: (n) => n.endsWith("hook_resid_pre"), withGrads: true, targets: tgt, params });
      expect(c.paramGrads).toHaveLength(3);
      c.dispose();
    }
    expect(torch.memory().liveTensors).toBe(before);
    m.dispose();
  });

  it("clears the hooks even when the forward pass throws", () => {
    const { m } = make();
    const bad = torch.randint(0, 31, [2, 20], { device: device as "cpu" }); // longer than nPositions
    expect(() => runWithCache(m, bad, { namesFilter: /hook/ })).toThrow(/exceeds nPositions/);
    for (const hp of m.hookPoints().values()) expect(hp.hasHook).toBe(false);
    m.dispose();
  });
});
