// The fused GPT-2 block (native/fused.cc) against the same block composed from ordinary ops
// (`torch.setFusedPaths(false)`), which test/gpt2.test.ts checks against Hugging Face
// transformers: outputs, gradients of the input and of every weight, second-order gradients,
// GELU (computed as x * sigmoid(2u) in the fused block) and its derivative at edge values, frozen
// weights, and when the fused path must not apply; the same for the fused head and loss.
import { describe, it, expect, afterEach } from "vitest";
import { torch, F } from "../lib/torch/index.js";
import * as kernels from "../lib/torch/internal.js";
import type { DType, Tensor } from "../lib/torch/index.js";
import { GPT2, GPT2Block } from "../lib/models/index.js";
import { HookPoint } from "../lib/nn/index.js";

torch.setNumThreads(1);

afterEach(() => torch.setFusedPaths(true));

const tol: Record<string, number> = { float64: 1e-12, float32: 2e-5 };

function maxRelDiff(a: Tensor, b: Tensor): number {
  const scale = b.abs().max().item() + 1e-30;
  return a.sub(b).abs().max().item() / scale;
}

interface Run { out: Tensor; grads: Map<string, Tensor>; }

/** Forward of one block on h, backward of sum(out * w), gradients of h and every parameter. */
function runBlock(block: GPT2Block, h0: Tensor, fused: boolean): Run {
  torch.setFusedPaths(fused);
  const h = h0.detach().requiresGrad_(true);
  for (const p of block.parameters()) p.grad = null;
  const out = block.forward(h);
  const w = torch.linspace(-1, 1, out.numel, { dtype: out.dtype }).view(out.shape);
  out.mul(w).sum().backward();
  const grads = new Map<string, Tensor>([["h", h.grad!]]);
  for (const [n, p] of block.namedParameters()) grads.set(n, p.grad!);
  return { out: out.detach(), grads };
}

function makeModel(dtype: DType, cfg: Record<string, unknown> = {}): GPT2 {
  const m = new GPT2({ nLayer: 2, nEmbd: 48, nHead: 3, vocabSize: 97, nPositions: 320, dropout: 0, ...cfg }, { seed: 5, dtype });
  // Non-trivial LayerNorm affine parameters and biases, so that every gradient term matters.
  torch.manualSeed(11);
  torch.noGrad(() => {
    for (const [n, p] of m.namedParameters()) {
      if (n.includes("ln_")) p.add_(torch.randn(p.shape, { dtype }).mul(0.3));
      else if (n.endsWith("bias")) p.add_(torch.randn(p.shape, { dtype }).mul(0.1));
    }
  });
  return m;
}

/**
 * Checks d(penalty)/d(param) from a createGraph run against central differences of penalty at
 * a few elements of param (penalty(false) needs first-order gradients only).
 */
function expectSecondOrder(param: Tensor, penalty: (createGraph: boolean) => Tensor, elements: number[], minMagnitude: number): void {
  const [grad] = torch.autograd.grad([penalty(true)], [param]);
  const flat = param.view([-1]);
  const eps = 1e-5;
  for (const i of elements) {
    const at = (delta: number) => {
      torch.noGrad(() => flat.narrow(0, i, 1).add_(delta));
      const v = penalty(false).item();
      torch.noGrad(() => flat.narrow(0, i, 1).sub_(delta));
      return v;
    };
    const fd = (at(eps) - at(-eps)) / (2 * eps);
    const an = grad!.view([-1]).narrow(0, i, 1).item();
    expect(Math.abs(fd), `element ${i}`).toBeGreaterThan(minMagnitude);
    expect(Math.abs(an - fd), `element ${i}: ${an} vs ${fd}`).toBeLessThan(1e-6 * Math.max(minMagnitude, Math.abs(fd)) + 1e-9);
  }
}

describe("fused GPT-2 block", () => {
  for (const dtype of ["float64", "float32"] as const) {
    for (const [B, T] of [[3, 17], [1, 1], [2, 300]] as const) {
      it(`equals the composed block: ${dtype}, B ${B}, T ${T}`, () => {
        const m = makeModel(dtype);
        const block = [...m.blocks][1]!;
        torch.manualSeed(3);
        const h0 = torch.randn([B, T, 48], { dtype });
        const f = runBlock(block, h0, true);
        const c = runBlock(block, h0, false);
        expect(maxRelDiff(f.out, c.out)).toBeLessThan(tol[dtype]!);
        expect(f.grads.size).toBe(13);
        for (const [name, g] of c.grads) {
          const d = maxRelDiff(f.grads.get(name)!, g);
          expect(d, name).toBeLessThan(tol[dtype]!);
        }
      });
    }
  }

  it("with two threads: small and large blocks equal the composed block, and the thread count is restored", () => {
    // A node whose work is small runs its kernels on the calling thread alone (native/fused.cc,
    // SerialIfSmall), then gives the thread back its OpenMP and MKL counts.
    torch.setNumThreads(2);
    // Two threads split the composed block's reductions differently: sums that nearly cancel
    // (a LayerNorm bias gradient) then differ by a few 1e-12 relative, float64.
    const tol2 = 1e-10;
    try {
      const m = makeModel("float64");
      const block = [...m.blocks][0]!;
      for (const [B, T] of [[1, 8], [12, 300]] as const) {  // 8 x 48^2 rows x width^2, and 3600 x 48^2 (> 2^24)
        torch.manualSeed(9);
        const h0 = torch.randn([B, T, 48], { dtype: "float64" });
        const f = runBlock(block, h0, true);
        expect(torch.getNumThreads()).toBe(2);
        const c = runBlock(block, h0, false);
        expect(maxRelDiff(f.out, c.out)).toBeLessThan(tol2);
        for (const [name, g] of c.grads) expect(maxRelDiff(f.grads.get(name)!, g), name).toBeLessThan(tol2);
      }
      torch.setFusedPaths(true);
      const ids = torch.randint(0, 97, [2, 8]);
      m.forward(ids, { targets: ids }).loss!.backward();
      expect(torch.getNumThreads()).toBe(2);
    } finally {
      torch.setNumThreads(1);
    }
  });

  it("the whole model: the same loss and parameter gradients as the composed model", () => {
    const m = makeModel("float64");
    torch.manualSeed(4);
    const ids = torch.randint(0, 97, [4, 33]);
    const targets = torch.randint(0, 97, [4, 33]);
    const run = (fused: boolean) => {
      torch.setFusedPaths(fused);
      m.zeroGrad();
      const { loss } = m.forward(ids, { targets });
      loss!.backward();
      return { loss: loss!.item(), grads: m.namedParameters().map(([n, p]) => [n, p.grad!] as const) };
    };
    const f = run(true);
    const c = run(false);
    expect(Math.abs(f.loss - c.loss)).toBeLessThan(1e-12 * c.loss);
    for (let i = 0; i < c.grads.length; i++) expect(maxRelDiff(f.grads[i]![1], c.grads[i]![1]), c.grads[i]![0]).toBeLessThan(1e-11);
  });

  it("GELU's derivative at 0, at tiny and at large |x| (fc weight zero, so fc's output is its bias)", () => {
    for (const dtype of ["float64", "float32"] as const) {
      const m = makeModel(dtype);
      const block = [...m.blocks][0]!;
      const edge = [0, -0, 1e-30, -1e-30, 1e-6, -1e-6, 0.5, -0.5, 3, -3, 9, -9, 20, -20, 60, -60];
      torch.noGrad(() => {
        block.mlp.cFc.weight.zero_();
        const b = block.mlp.cFc.bias!;
        b.copy_(torch.tensor(Array.from({ length: b.numel }, (_, i) => edge[i % edge.length]!), { dtype }));
      });
      const h0 = torch.randn([2, 5, 48], { dtype });
      const f = runBlock(block, h0, true);
      const c = runBlock(block, h0, false);
      const fb = f.grads.get("mlp.c_fc.bias")!;
      const cb = c.grads.get("mlp.c_fc.bias")!;
      expect(fb.isfinite().all().item()).toBe(true);
      expect(maxRelDiff(f.out, c.out), `${dtype} forward`).toBeLessThan(dtype === "float64" ? 1e-12 : 1e-5);
      expect(maxRelDiff(fb, cb), dtype).toBeLessThan(dtype === "float64" ? 1e-12 : 1e-5);
    }
  });

  it("second-order gradients (createGraph) through the fused block match finite differences", () => {
    // The composed block cannot give them on the CPU (the flash kernel's backward is not
    // differentiable), so the reference is a central difference of first-order gradients.
    const m = makeModel("float64");
    const block = [...m.blocks][0]!;
    torch.manualSeed(8);
    const h0 = torch.randn([2, 6, 48], { dtype: "float64" });
    const w = block.mlp.cFc.weight;
    const penalty = (createGraph: boolean) => {
      const h = h0.detach().requiresGrad_(true);
      const [gh] = torch.autograd.grad([block.forward(h).pow(2).sum()], [h], { createGraph });
      return gh!.pow(2).sum();
    };
    expectSecondOrder(w, penalty, [0, 777, 5000], 1e-3);
  });

  it("frozen weights: only the gradients that are asked for", () => {
    const m = makeModel("float32");
    const block = [...m.blocks][0]!;
    for (const p of block.parameters()) p.requiresGrad_(false);
    const h0 = torch.randn([2, 7, 48]);
    const f = runBlock(block, h0, true);
    const c = runBlock(block, h0, false);
    expect(maxRelDiff(f.grads.get("h")!, c.grads.get("h")!)).toBeLessThan(2e-5);
    for (const [n, p] of block.namedParameters()) expect(p.grad, n).toBeNull();
  });

  it("does not apply, and the composed block runs, where something must observe or change the inside", () => {
    const m = makeModel("float32");
    const block = [...m.blocks][0]!;
    const h = torch.randn([1, 4, 48]);
    // A hook on any hook point sees the block's inside.
    let seen = 0;
    const hp = block.hookMlpOut;
    hp.setHook((x: Tensor) => { seen++; return x; });
    try {
      block.forward(h);
      expect(seen).toBe(1);
    } finally {
      hp.setHook(null);
    }
    expect(HookPoint.activeHooks).toBe(0);
    // Dropout in training mode: two forward passes differ.
    const d = makeModel("float32", { dropout: 0.5 });
    const db = [...d.blocks][0]!;
    db.train();
    const a = db.forward(h);
    const b = db.forward(h);
    expect(a.sub(b).abs().max().item()).toBeGreaterThan(0);
    db.eval();
    expect(db.forward(h).sub(db.forward(h)).abs().max().item()).toBe(0);
  });

  it("torch.gpt2Block answers undefined, never throws, for inputs it does not handle", () => {
    const m = makeModel("float32");
    const block = [...m.blocks][0]!;
    const w = {
      ln1Weight: block.ln1.weight, ln1Bias: block.ln1.bias,
      attnWeight: block.attn.cAttn.weight, attnBias: block.attn.cAttn.bias,
      projWeight: block.attn.cProj.weight, projBias: block.attn.cProj.bias,
      ln2Weight: block.ln2.weight, ln2Bias: block.ln2.bias,
      fcWeight: block.mlp.cFc.weight, fcBias: block.mlp.cFc.bias,
      mlpWeight: block.mlp.cProj.weight, mlpBias: block.mlp.cProj.bias,
    };
    const h = torch.randn([2, 3, 48]);
    expect(kernels.gpt2Block(h, w, 3, 1e-5)).toBeDefined();
    expect(kernels.gpt2Block(h.to({ dtype: "bfloat16" }), w, 3, 1e-5)).toBeUndefined();
    expect(kernels.gpt2Block(h.to({ dtype: "float64" }), w, 3, 1e-5)).toBeUndefined();
    expect(kernels.gpt2Block(torch.randn([2, 3, 40]), w, 3, 1e-5)).toBeUndefined();
    expect(kernels.gpt2Block(torch.randn([6, 48]), w, 3, 1e-5)).toBeUndefined();
    expect(kernels.gpt2Block(h, w, 5, 1e-5)).toBeUndefined();
    expect(kernels.gpt2Block(h, { ...w, fcBias: null }, 3, 1e-5)).toBeUndefined();
    expect(kernels.gpt2Block(h, { ...w, fcWeight: w.fcWeight.t() }, 3, 1e-5)).toBeUndefined();
    expect(() => kernels.gpt2Block("h" as unknown as Tensor, w, 3, 1e-5)).toThrow(/gpt2Block: argument 0 \(h\)/);
    torch.setFusedPaths(false);
    expect(kernels.gpt2Block(h, w, 3, 1e-5)).toBeUndefined();
  });

  it("a model without biases uses the composed block and still trains", () => {
    const m = makeModel("float32", { bias: false });
    const ids = torch.randint(0, 97, [2, 9]);
    const { loss } = m.forward(ids, { targets: ids });
    loss!.backward();
    expect(Number.isFinite(loss!.item())).toBe(true);
    expect(m.parameters().every((p) => p.grad !== null)).toBe(true);
  });

  describe("head and loss", () => {
    // h -> ln_f -> tied unembedding -> cross-entropy, with some targets ignored (-100).
    function headRun(m: GPT2, h0: Tensor, targets: Tensor, fused: boolean, useLogits: boolean, useLoss: boolean) {
      torch.setFusedPaths(fused);
      m.zeroGrad();
      const h = h0.detach().requiresGrad_(true);
      const fusedOut = kernels.gpt2HeadLoss(h, m.transformer.lnF.weight, m.transformer.lnF.bias, m.transformer.wte.weight, targets, -100, 1e-5);
      expect(fusedOut !== undefined).toBe(fused);
      let logits: Tensor, loss: Tensor;
      if (fusedOut !== undefined) [logits, loss] = fusedOut;
      else {
        logits = m.head(h);
        loss = F.crossEntropy(logits.flatten(0, 1), targets.flatten());
      }
      const w = torch.linspace(-1, 1, logits.numel, { dtype: logits.dtype }).view(logits.shape);
      let objective = torch.zeros([], { dtype: logits.dtype });
      if (useLogits) objective = objective.add(logits.mul(w).sum());
      if (useLoss) objective = objective.add(loss.mul(3));
      objective.backward();
      const t = m.transformer;
      return { logits: logits.detach(), loss: loss.item(), grads: [h.grad!, t.lnF.weight!.grad!, t.lnF.bias!.grad!, t.wte.weight.grad!] };
    }
    for (const dtype of ["float64", "float32"] as const) {
      for (const [useLogits, useLoss] of [[false, true], [true, false], [true, true]] as const) {
        it(`equals the composed head: ${dtype}, gradient through ${useLogits ? "logits" : ""}${useLogits && useLoss ? " and " : ""}${useLoss ? "loss" : ""}`, () => {
          const m = makeModel(dtype);
          torch.manualSeed(21);
          const h0 = torch.randn([3, 11, 48], { dtype });
          const targets = torch.randint(0, 97, [3, 11]);
          torch.noGrad(() => { targets.view([-1]).narrow(0, 4, 5).fill_(-100); });
          const f = headRun(m, h0, targets, true, useLogits, useLoss);
          const c = headRun(m, h0, targets, false, useLogits, useLoss);
          expect(maxRelDiff(f.logits, c.logits)).toBeLessThan(tol[dtype]!);
          expect(Math.abs(f.loss - c.loss)).toBeLessThan(tol[dtype]! * Math.abs(c.loss));
          for (let i = 0; i < 4; i++) expect(maxRelDiff(f.grads[i]!, c.grads[i]!), `grad ${i}`).toBeLessThan(tol[dtype]!);
        });
      }
    }

    it("second-order gradients through the fused head match finite differences", () => {
      const m = makeModel("float64");
      torch.manualSeed(22);
      const h0 = torch.randn([2, 5, 48], { dtype: "float64" });
      const targets = torch.randint(0, 97, [2, 5]);
      const lnW = m.transformer.lnF.weight!;
      const penalty = (createGraph: boolean) => {
        const h = h0.detach().requiresGrad_(true);
        const [, loss] = kernels.gpt2HeadLoss(h, lnW, m.transformer.lnF.bias, m.transformer.wte.weight, targets, -100, 1e-5)!;
        const [gh] = torch.autograd.grad([loss], [h], { createGraph });
        return gh!.pow(2).sum();
      };
      expectSecondOrder(lnW, penalty, [0, 17, 40], 1e-6);
    });

    it("answers undefined where it does not apply, and reports bad targets as the loss would", () => {
      const m = makeModel("float32");
      const t = m.transformer;
      const h = torch.randn([2, 3, 48]);
      const ok = torch.randint(0, 97, [2, 3]);
      expect(kernels.gpt2HeadLoss(h, t.lnF.weight, t.lnF.bias, t.wte.weight, ok, -100, 1e-5)).toBeDefined();
      expect(kernels.gpt2HeadLoss(h, null, t.lnF.bias, t.wte.weight, ok, -100, 1e-5)).toBeUndefined();
      expect(kernels.gpt2HeadLoss(h.to({ dtype: "bfloat16" }), t.lnF.weight, t.lnF.bias, t.wte.weight, ok, -100, 1e-5)).toBeUndefined();
      expect(kernels.gpt2HeadLoss(h, t.lnF.weight, t.lnF.bias, t.wte.weight, ok.to({ dtype: "int32" }), -100, 1e-5)).toBeUndefined();
      expect(kernels.gpt2HeadLoss(h, t.lnF.weight, t.lnF.bias, t.wte.weight, torch.randint(0, 97, [2, 4]), -100, 1e-5)).toBeUndefined();
      expect(() => kernels.gpt2HeadLoss(h, t.lnF.weight, t.lnF.bias, t.wte.weight, torch.full([2, 3], 500, { dtype: "int64" }), -100, 1e-5))
        .toThrow(/out of bounds/);
      const { loss } = m.forward(torch.randint(0, 97, [2, 3]), { targets: torch.full([2, 3], -100, { dtype: "int64" }) });
      expect(Number.isNaN(loss!.item())).toBe(true);
    });
  });
});
