// Optimizers against torch.optim: several steps of AdamW and SGD (weight decay, parameter groups,
// gradient clipping, a schedule) from the same initial weights and gradients
// (scripts/ref/gpt2_optim_reference.py), exact resume from a state dict, and the schedules.
import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { torch } from "../lib/torch/index.js";
import * as kernels from "../lib/torch/internal.js";
import type { Device, Tensor } from "../lib/torch/index.js";
import { loadSafetensors } from "../lib/torch/safetensors.js";
import { AdamW, SGD, clipGradNorm_, warmupCosine, constantLr, linearLr, weightDecayGroups } from "../lib/optim/index.js";
import type { Optimizer, BaseHyper } from "../lib/optim/index.js";
import { devices } from "./helpers/devices.js";
import { expectClose } from "./helpers/close.js";

// Test files run in parallel processes on few cores: one intra-op thread per process avoids
// oversubscription, which slows libtorch's CPU kernels down by orders of magnitude under load.
torch.setNumThreads(1);

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(here, "fixtures", "optim");

interface RefCase {
  name: string;
  optimizer: "AdamW" | "SGD";
  groups: "decay" | "one";
  hyper: Record<string, number | boolean>;
  clip: number | null;
  schedule: { lr: number; minLr: number; warmupSteps: number; decaySteps: number } | null;
  lrs: number[];
  norms: number[];
}
const ref = JSON.parse(fs.readFileSync(path.join(FIXTURE, "reference.json"), "utf8")) as {
  shapes: number[][];
  steps: number;
  cases: RefCase[];
};
const { tensors: refT } = loadSafetensors(path.join(FIXTURE, "reference.safetensors"));
for (const t of Object.values(refT)) torch.keep(t);

const TOL = { rtol: 2e-5, atol: 2e-6 };

function makeParams(device: Device): Tensor[] {
  return ref.shapes.map((_, i) => torch.keep(refT[`init.${i}`]!.to(device).clone().requiresGrad_(true)));
}

function makeOptimizer(c: RefCase, params: Tensor[], foreach?: false): Optimizer<BaseHyper> {
  const h = c.hyper as Record<string, number>;
  const groups =
    c.groups === "decay" ? weightDecayGroups(params, h.weightDecay!) : [{ params, weightDecay: h.weightDecay! }];
  if (c.optimizer === "AdamW") {
    return new AdamW(groups, { lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, foreach }) as unknown as Optimizer<BaseHyper>;
  }
  return new SGD(groups, {
    lr: h.lr,
    momentum: h.momentum,
    dampening: h.dampening,
    nesterov: c.hyper.nesterov as boolean,
  }) as unknown as Optimizer<BaseHyper>;
}

/** Runs steps [from, to) of case `c`; returns the clip norms. */
function runSteps(c: RefCase, opt: Optimizer<BaseHyper>, params: Tensor[], device: Device, from: number, to: number): number[] {
  const schedule = c.schedule === null ? null : warmupCosine(c.schedule);
  const norms: number[] = [];
  for (let k = from; k < to; k++) {
    torch.tidy(() => {
      params.forEach((p, i) => {
        p.grad = refT[`grad.${k}.${i}`]!.to(device).clone();
      });
    });
    if (c.clip !== null) norms.push(clipGradNorm_(params, c.clip));
    if (schedule !== null) opt.setLr(schedule(k));
    expect(opt.paramGroups[0]!.lr).toBeCloseTo(c.lrs[k]!, 12);
    opt.step();
    params.forEach((p, i) => expectClose(p, refT[`${c.name}.step${k}.${i}`]!.toTypedArray() as Float32Array, TOL, `${c.name} step ${k} param ${i}`));
    opt.zeroGrad();
  }
  return norms;
}

describe("optimizers match torch.optim", () => {
  for (const device of devices()) {
    for (const c of ref.cases) {
      const variants: Array<false | undefined> = c.optimizer === "AdamW" ? [undefined, false] : [undefined];
      for (const foreach of variants) {
        const label = `${c.name}${foreach === false ? " (reference path)" : ""} on ${device}`;
        it(label, () => {
          const params = makeParams(device);
          const opt = makeOptimizer(c, params, foreach);
          if (foreach === undefined && c.optimizer === "AdamW") expect((opt as unknown as AdamW).isFused).toBe(true);
          const live = torch.memory().liveTensors;
          const norms = runSteps(c, opt, params, device, 0, ref.steps);
          expectClose(norms, c.norms, TOL, "clip norms");
          // State was created on the first step only: nothing accumulates afterwards.
          const after = torch.memory().liveTensors;
          expect(after - live).toBe(Object.keys(opt.stateDict().tensors).length);
          opt.dispose();
          for (const p of params) p.dispose();
        });
      }
      it(`${c.name} resumes exactly from a state dict on ${device}`, () => {
        const params = makeParams(device);
        const opt = makeOptimizer(c, params);
        runSteps(c, opt, params, device, 0, 2);
        const sd = opt.stateDict();
        // Round-trip through JSON for the metadata, as a checkpoint does.
        const meta = JSON.parse(JSON.stringify(sd.meta)) as typeof sd.meta;
        const saved: Record<string, Tensor> = {};
        for (const [k, t] of Object.entries(sd.tensors)) saved[k] = torch.keep(t.clone());
        const params2 = params.map((p) => torch.keep(p.detach().clone().requiresGrad_(true)));
        opt.dispose();
        const opt2 = makeOptimizer(c, params2);
        opt2.setLr(123); // overwritten by the state
        opt2.loadStateDict({ meta, tensors: saved });
        expect(opt2.paramGroups[0]!.lr).toBeCloseTo(c.lrs[1]!, 12);
        runSteps(c, opt2, params2, device, 2, ref.steps);
        opt2.dispose();
        for (const t of [...params, ...params2, ...Object.values(saved)]) t.dispose();
      });
    }
  }
});

describe("optimizer details", () => {
  it("skips parameters without a gradient and validates its input", () => {
    const a = torch.keep(torch.ones([2]).requiresGrad_(true));
    const b = torch.keep(torch.ones([2]).requiresGrad_(true));
    const opt = new AdamW([a, b], { lr: 0.1 });
    a.grad = torch.keep(torch.ones([2]));
    opt.step();
    expect(b.toArray()).toEqual([1, 1]);
    expect((a.toArray() as number[])[0]).toBeLessThan(1);
    expect(Object.keys(opt.stateDict().tensors)).toEqual(["state.0.exp_avg", "state.0.exp_avg_sq"]);
    expect(opt.stateDict().meta.steps).toEqual({ "0": 1 });
    expect(() => new AdamW([a, a])).toThrow(/more than one group/);
    expect(() => new AdamW([a], { lr: -1 })).toThrow(/lr/);
    expect(() => new AdamW([a], { beta1: 1 })).toThrow(/beta1/);
    expect(() => new SGD([a], { nesterov: true })).toThrow(/nesterov/);
    expect(() => new AdamW([])).toThrow(/empty/);
    const sgd = new SGD([a], { lr: 0.1, momentum: 0.9 });
    expect(() => sgd.loadStateDict(opt.stateDict())).toThrow(/AdamW/);
    expect(() =>
      opt.loadStateDict({ meta: { ...opt.stateDict().meta, steps: { "0": 1 } }, tensors: { "state.0.exp_avg": torch.keep(torch.zeros([3])) } }),
    ).toThrow(/shape/);
    // Its own state dict (which holds its own tensors) loads back unchanged.
    const before = opt.stateDict().tensors["state.0.exp_avg"]!.toArray();
    opt.loadStateDict(opt.stateDict());
    expect(opt.stateDict().tensors["state.0.exp_avg"]!.toArray()).toEqual(before);
    expect(opt.stateDict().meta.steps).toEqual({ "0": 1 });
    opt.dispose();
    sgd.dispose();
    a.dispose();
    b.dispose();
  });

  it("groups parameters for weight decay by dimension", () => {
    const w = torch.keep(torch.zeros([3, 2]).requiresGrad_(true));
    const bias = torch.keep(torch.zeros([3]).requiresGrad_(true));
    const e = torch.keep(torch.zeros([2, 2, 2]).requiresGrad_(true));
    const groups = weightDecayGroups([w, bias, e], 0.1);
    expect(groups.length).toBe(2);
    expect(groups[0]!.params).toEqual([w, e]);
    expect(groups[0]!.weightDecay).toBe(0.1);
    expect(groups[1]!.params).toEqual([bias]);
    expect(groups[1]!.weightDecay).toBe(0);
    expect(weightDecayGroups({ parameters: () => [bias] }, 0.1)).toEqual([{ params: [bias], weightDecay: 0 }]);
    for (const t of [w, bias, e]) t.dispose();
  });

  it("clipGradNorm_ returns the norm and leaves small gradients alone", () => {
    const p = torch.keep(torch.zeros([4]).requiresGrad_(true));
    p.grad = torch.keep(torch.tensor([3, 4, 0, 0], { dtype: "float32" }));
    expect(clipGradNorm_([p], 10)).toBeCloseTo(5, 5);
    expectClose(p.grad!, [3, 4, 0, 0]);
    expect(clipGradNorm_([p], 1)).toBeCloseTo(5, 5);
    expectClose(p.grad!, [0.6, 0.8, 0, 0], { rtol: 1e-5, atol: 1e-6 });
    expect(clipGradNorm_([p], Infinity)).toBeCloseTo(1, 5);
    expect(() => clipGradNorm_([p], 0)).toThrow(/maxNorm/);
    p.dispose();
  });
});

describe("lists kept by the addon across steps", () => {
  // From the second call with the same array, the optimizer and the gradient utilities pass the
  // addon a handle to the list (lib/torch/fused.ts): what it sees must stay what the array holds.
  const param = (v: number[]) => torch.keep(torch.tensor(v, { dtype: "float32" }).requiresGrad_(true));
  const grad = (p: Tensor, v: number[]) => (p.grad = torch.keep(torch.tensor(v, { dtype: "float32" })));

  it("a parameter disposed after some steps is reported by the next step, zeroGrad and clipping", () => {
    const a = param([1, 2]);
    const b = param([3, 4]);
    const params = [a, b];
    const opt = new AdamW(params, { lr: 0.1 });
    for (let i = 0; i < 3; i++) {
      grad(a, [1, 1]);
      grad(b, [1, 1]);
      clipGradNorm_(params, 1);
      opt.step();
      opt.zeroGrad();
    }
    grad(a, [1, 1]);
    grad(b, [1, 1]);
    b.dispose();
    expect(() => opt.step()).toThrow(/element 1 of argument 0 \(params\) is a tensor that was disposed/);
    expect(() => clipGradNorm_(params, 1)).toThrow(/element 1 of argument 0 \(parameters\) is a tensor that was disposed/);
    expect(() => opt.zeroGrad()).toThrow(/element 1 of argument 0 \(params\) is a tensor that was disposed/);
    a.dispose();
  });

  it("an array changed in place between calls is read again", () => {
    const a = param([0, 0]);
    const b = param([0, 0]);
    const c = param([0, 0]);
    grad(a, [3, 4]);
    grad(b, [0, 0]);
    grad(c, [6, 8]);
    const list = [a, b];
    expect(clipGradNorm_(list, Infinity)).toBeCloseTo(5, 5);
    expect(clipGradNorm_(list, Infinity)).toBeCloseTo(5, 5);  // now through the kept list
    list[1] = c;
    expect(clipGradNorm_(list, Infinity)).toBeCloseTo(Math.hypot(3, 4, 6, 8), 5);
    list.pop();
    expect(clipGradNorm_(list, Infinity)).toBeCloseTo(5, 5);
    for (const t of [a, b, c]) t.dispose();
  });

  it("parameters whose step counts differ (one skipped a step) match the plain-op AdamW", () => {
    const run = (fused: boolean) => {
      const a = param([1, -2, 3]);
      const b = param([0.5, 0.25]);
      const opt = new AdamW([a, b], { lr: 0.05, weightDecay: 0.1, ...(fused ? {} : { foreach: false as const }) });
      expect(opt.isFused).toBe(fused);
      for (let i = 0; i < 6; i++) {
        grad(a, [0.1 * i, -0.2, 0.3]);
        if (i % 3 !== 1) grad(b, [0.4, -0.1 * i]);  // b has no gradient in steps 1 and 4
        opt.step();
        opt.zeroGrad();
      }
      const out = [...(a.toArray() as number[]), ...(b.toArray() as number[])];
      expect(opt.stateDict().meta.steps).toEqual({ "0": 6, "1": 4 });
      opt.dispose();
      a.dispose();
      b.dispose();
      return out;
    };
    const fused = run(true);
    const plain = run(false);
    // float32 on both sides, in different orders of operations
    for (let i = 0; i < fused.length; i++) expect(fused[i]).toBeCloseTo(plain[i]!, 5);
  });

  it("takes one step count as a number, and refuses a count below 1 or with incrementSteps", () => {
    const a = param([1, 2]);
    grad(a, [1, 1]);
    const m = torch.keep(torch.zeros([2]));
    const v = torch.keep(torch.zeros([2]));
    const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    expect(() => kernels.fusedAdamW([a], [m], [v], 0, o)).toThrow(/step count of at least 1/);
    expect(() => kernels.fusedAdamW([a], [m], [v], 1.5, o)).toThrow(/step count of at least 1/);
    expect(() => kernels.fusedAdamW([a], [m], [v], 1, { ...o, incrementSteps: true })).toThrow(/incrementSteps needs step tensors/);
    kernels.fusedAdamW([a], [m], [v], 1, o);
    // Adam's first step moves every coordinate by lr (m / sqrt(v) = sign(g) after bias correction).
    expectClose(a, [0.9, 1.9], { rtol: 1e-6, atol: 1e-6 });
    for (const t of [a, m, v]) t.dispose();
  });
});

describe("learning-rate schedules", () => {
  it("warmupCosine follows nanoGPT's formula", () => {
    const s = warmupCosine({ lr: 1, minLr: 0.1, warmupSteps: 4, decaySteps: 14 });
    expect(s(0)).toBeCloseTo(1 / 5, 12);
    expect(s(3)).toBeCloseTo(4 / 5, 12);
    expect(s(4)).toBeCloseTo(1, 12);
    expect(s(9)).toBeCloseTo(0.55, 12); // half way: the mean of lr and minLr
    expect(s(14)).toBeCloseTo(0.1, 12);
    expect(s(1000)).toBeCloseTo(0.1, 12);
    for (let k = 4; k < 14; k++) expect(s(k + 1)).toBeLessThanOrEqual(s(k));
    expect(warmupCosine({ lr: 1, decaySteps: 10 })(10)).toBeCloseTo(0.1, 12);
  });

  it("constant and linear", () => {
    const c = constantLr(0.5, { warmupSteps: 1 });
    expect(c(0)).toBeCloseTo(0.25, 12);
    expect(c(1)).toBe(0.5);
    expect(c(999)).toBe(0.5);
    const l = linearLr({ lr: 1, minLr: 0, warmupSteps: 0, decaySteps: 10 });
    expect(l(0)).toBe(1);
    expect(l(5)).toBeCloseTo(0.5, 12);
    expect(l(10)).toBe(0);
    expect(() => warmupCosine({ lr: -1, decaySteps: 3 })).toThrow(/lr/);
    expect(() => linearLr({ lr: 1, decaySteps: 1.5 })).toThrow(/decaySteps/);
  });
});
