// The small path of GPT-2's fused nodes (native/small_gpt2.cc: the block and the head as plain
// loops where libtorch's kernels cost more than the arithmetic) and the fused embedding node
// (native/fused.cc): checked against the same model composed of ordinary ops in float64
// (`torch.setFusedPaths(false)`, which test/gpt2.test.ts checks against transformers), at shapes
// that reach every edge of the loops: widths not a multiple of 16, heads of width 8, row counts
// not a multiple of 4, one token. Also: which sizes take the path, that INNERLOOP_SMALL_PATH=0
// trains to the same losses on libtorch's kernels, second-order gradients through the
// embedding, and that bad ids are still reported by the composed ops.
import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { torch } from "../lib/torch/index.js";
import type { DType, Tensor } from "../lib/torch/index.js";
import * as kernels from "../lib/torch/internal.js";
import { GPT2 } from "../lib/models/index.js";

torch.setNumThreads(1);
afterEach(() => torch.setFusedPaths(true));

function maxRelDiff(a: Tensor, b: Tensor): number {
  return torch.tidy(() => {
    const d = a.double().sub(b.double()).abs().max().item();
    return d / Math.max(b.double().abs().max().item(), 1e-30);
  });
}

/** The same weights for every dtype (drawn in float64, then converted). */
function makeModel(dtype: DType, nEmbd: number, nHead: number, vocabSize = 97): GPT2 {
  const m = new GPT2({ nLayer: 2, nEmbd, nHead, vocabSize, nPositions: 32, dropout: 0 }, { seed: 7, dtype: "float64" });
  // Non-trivial LayerNorm affine parameters and biases, so that every gradient term matters.
  torch.manualSeed(13);
  torch.noGrad(() => {
    for (const [n, p] of m.namedParameters()) {
      if (n.includes("ln_")) p.add_(torch.randn(p.shape, { dtype: "float64" }).mul(0.3));
      else if (n.endsWith("bias")) p.add_(torch.randn(p.shape, { dtype: "float64" }).mul(0.1));
    }
  });
  if (dtype !== "float64") m.to({ dtype });
  return m;
}

/** Loss and every parameter gradient of one forward/backward of the whole model. */
function lossAndGrads(m: GPT2, ids: Tensor, targets: Tensor, fused: boolean): { loss: number; grads: Array<[string, Tensor]> } {
  torch.setFusedPaths(fused);
  m.zeroGrad();
  const { loss } = m.forward(ids, { targets });
  loss.backward();
  return { loss: loss.item(), grads: m.namedParameters().map(([n, p]) => [n, p.grad!.detach().clone()] as [string, Tensor]) };
}

describe("the small path of the fused GPT-2 nodes", () => {
  it("applies to small blocks only, float32 and float64", () => {
    expect(kernels.smallBlockApplies(torch.zeros([1, 8, 64]), 4)).toBe(true); // the `micro` benchmark
    expect(kernels.smallBlockApplies(torch.zeros([3, 7, 40], { dtype: "float64" }), 5)).toBe(true);
    expect(kernels.smallBlockApplies(torch.zeros([8, 64, 64]), 4)).toBe(false); // `tiny`: libtorch's kernels
    expect(kernels.smallBlockApplies(torch.zeros([1, 8, 64], { dtype: "bfloat16" }), 4)).toBe(false);
    // Within the work limit, but its attention probabilities ([B, H, T, T]) would take 256 MiB.
    expect(kernels.smallBlockApplies(torch.zeros([1, 4096, 8]), 4)).toBe(false);
    expect(kernels.smallBlockApplies(torch.zeros([1, 512, 8]), 4)).toBe(true);
  });

  // [B, T] x width x heads: micro; widths 40 (heads of 8, 3C = 120 columns: partial vectors and a
  // partial 64-column block) with 21 rows; one token; a batch with ignored targets.
  const shapes = [[1, 8, 64, 4], [3, 7, 40, 5], [2, 1, 48, 3], [4, 5, 32, 2]] as const;
  for (const dtype of ["float64", "float32"] as const) {
    for (const [B, T, C, H] of shapes) {
      it(`the whole model's loss and every gradient equal the composed model: ${dtype}, B ${B}, T ${T}, width ${C}, ${H} heads`, () => {
        const m = makeModel(dtype, C, H);
        expect(kernels.smallBlockApplies(torch.zeros([B, T, C], { dtype }), H)).toBe(true);
        torch.manualSeed(B * 100 + T);
        const ids = torch.randint(0, 97, [B, T]);
        const targets = torch.randint(0, 97, [B, T]);
        if (B * T > 3) torch.noGrad(() => { targets.view([-1]).narrow(0, 1, 2).fill_(-100); });
        const fused = lossAndGrads(m, ids, targets, true);
        // The reference: composed ops in float64, on the same weights.
        const m64 = makeModel("float64", C, H);
        const ref = lossAndGrads(m64, ids, targets, false);
        // float32: the rounding of float32 weights and arithmetic against float64 (measured: at most 1.5e-6).
        const tol = dtype === "float64" ? 1e-12 : 1e-5;
        expect(Math.abs(fused.loss - ref.loss)).toBeLessThan(tol * Math.abs(ref.loss));
        for (let i = 0; i < ref.grads.length; i++) {
          expect(maxRelDiff(fused.grads[i]![1], ref.grads[i]![1]), ref.grads[i]![0]).toBeLessThan(tol);
        }
      });
    }
  }

  it("gradients of frozen weights are not computed, and h's gradient still is", () => {
    const m = makeModel("float64", 40, 5);
    const block = [...m.blocks][0]!;
    for (const [n, p] of block.namedParameters()) if (n.includes("c_fc") || n.includes("ln_1")) p.requiresGrad = false;
    const h = torch.randn([2, 6, 40], { dtype: "float64" }).requiresGrad_(true);
    const out = block.forward(h);
    out.pow(2).sum().backward();
    for (const [n, p] of block.namedParameters()) {
      if (n.includes("c_fc") || n.includes("ln_1")) expect(p.grad, n).toBeNull();
      else expect(p.grad, n).not.toBeNull();
    }
    torch.setFusedPaths(false);
    const h2 = h.detach().requiresGrad_(true);
    block.forward(h2).pow(2).sum().backward();
    expect(maxRelDiff(h.grad!, h2.grad!)).toBeLessThan(1e-12);
  });

  it("INNERLOOP_SMALL_PATH=0 runs libtorch's kernels instead, and trains to the same losses", () => {
    const script = `
      import { torch } from ${JSON.stringify(new URL("../lib/torch/index.ts", import.meta.url).pathname)};
      import * as kernels from ${JSON.stringify(new URL("../lib/torch/internal.ts", import.meta.url).pathname)};
      import { GPT2 } from ${JSON.stringify(new URL("../lib/models/index.ts", import.meta.url).pathname)};
      import { AdamW } from ${JSON.stringify(new URL("../lib/optim/index.ts", import.meta.url).pathname)};
      torch.setNumThreads(1);
      const m = new GPT2({ nLayer: 2, nEmbd: 64, nHead: 4, vocabSize: 256, nPositions: 8, dropout: 0 }, { seed: 3 });
      const opt = new AdamW(m.parameters(), { lr: 3e-3 });
      torch.manualSeed(9);
      const ids = torch.randint(0, 256, [1, 8]), targets = torch.randint(0, 256, [1, 8]);
      const losses = [];
      for (let i = 0; i < 30; i++) {
        const loss = m.forward(ids, { targets }).loss;
        loss.backward();
        losses.push(loss.item());
        opt.step();
        opt.zeroGrad();
      }
      console.log(JSON.stringify({ small: kernels.smallBlockApplies(torch.zeros([1, 8, 64]), 4), losses }));`;
    const run = (env: Record<string, string>) => {
      const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        env: { ...process.env, ...env },
        encoding: "utf8",
      });
      return JSON.parse(out.trim().split("\n").pop()!) as { small: boolean; losses: number[] };
    };
    const on = run({});
    const off = run({ INNERLOOP_SMALL_PATH: "0" });
    expect(on.small).toBe(true);
    expect(off.small).toBe(false);
    expect(on.losses[29]!).toBeLessThan(on.losses[0]! * 0.5); // it trains
    on.losses.forEach((l, i) => expect(Math.abs(l - off.losses[i]!), `step ${i}`).toBeLessThan(2e-5 * Math.abs(l)));
  });
});

describe("the fused embedding node", () => {
  it("wte[ids] + wpe[past ..]: values and gradients (repeated ids, an offset) equal the composed ops", () => {
    const m = makeModel("float64", 40, 5);
    const t = m.transformer;
    const ids = torch.tensor([[3, 5, 3, 3], [0, 96, 5, 3]], { dtype: "int64" });
    const run = (fused: boolean) => {
      torch.setFusedPaths(fused);
      m.zeroGrad();
      const e = m.embed(ids, 7);
      const w = torch.linspace(-1, 1, e.numel, { dtype: "float64" }).view(e.shape);
      e.mul(w).sum().backward();
      return { e: e.detach(), wte: t.wte.weight.grad!.clone(), wpe: t.wpe.weight.grad!.clone() };
    };
    const f = run(true);
    const c = run(false);
    expect(maxRelDiff(f.e, c.e)).toBe(0);
    expect(maxRelDiff(f.wte, c.wte)).toBeLessThan(1e-15);
    expect(maxRelDiff(f.wpe, c.wpe)).toBeLessThan(1e-15);
    expect(f.wpe.narrow(0, 0, 7).abs().max().item()).toBe(0); // rows before `past` get nothing
  });

  it("second-order gradients (createGraph) through it equal the composed ops", () => {
    const m = makeModel("float64", 32, 2);
    const ids = torch.tensor([[1, 2, 1, 4, 8]], { dtype: "int64" });
    const { wte, wpe } = m.transformer;
    const run = (fused: boolean) => {
      torch.setFusedPaths(fused);
      m.zeroGrad();
      // An objective whose gradient depends on the weights (a cube), so the second order is not zero.
      const e = m.embed(ids, 3);
      const [gte, gpe] = torch.autograd.grad([e.pow(3).sum()], [wte.weight, wpe.weight], { createGraph: true });
      gte!.pow(2).sum().add(gpe!.pow(2).sum()).backward();
      return [wte.weight.grad!.clone(), wpe.weight.grad!.clone()];
    };
    const f = run(true);
    const c = run(false);
    for (let i = 0; i < 2; i++) {
      expect(c[i]!.abs().max().item()).toBeGreaterThan(0);
      expect(maxRelDiff(f[i]!, c[i]!)).toBeLessThan(1e-13);
    }
  });

  it("does not apply to ids outside the table, which the composed ops report", () => {
    const m = makeModel("float32", 32, 2);
    const t = m.transformer;
    expect(kernels.gpt2Embed(torch.tensor([[1, 97]], { dtype: "int64" }), t.wte.weight, t.wpe.weight, 0)).toBeUndefined();
    expect(kernels.gpt2Embed(torch.tensor([[1, -1]], { dtype: "int64" }), t.wte.weight, t.wpe.weight, 0)).toBeUndefined();
    expect(kernels.gpt2Embed(torch.tensor([[1, 2]], { dtype: "int64" }), t.wte.weight, t.wpe.weight, 31)).toBeUndefined();
    expect(kernels.gpt2Embed(torch.tensor([[1, 2]], { dtype: "int64" }), t.wte.weight, t.wpe.weight, 30)).toBeDefined();
    expect(() => m.forward(torch.tensor([[1, 97]], { dtype: "int64" }))).toThrow(/index out of range|out of bounds/i);
  });
});
