// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, as
// torch.optim.AdamW. The update of all parameters of a group is one native call
// (torch._fusedAdamW) where the addon provides it.

import { torch } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Optimizer, checkNonNegative } from "./optimizer.js";
import type { BaseHyper, ParamGroup, ParamsArg } from "./optimizer.js";

export interface AdamWHyper extends BaseHyper {
  beta1: number;
  beta2: number;
  eps: number;
}

export interface AdamWOptions extends Partial<AdamWHyper> {
  /** Use the TypeScript reference update instead of the fused native one. */
  foreach?: false;
}

const DEFAULTS: AdamWHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

type FusedAdamW = (
  params: Tensor[],
  expAvgs: Tensor[],
  expAvgSqs: Tensor[],
  steps: Tensor[],
  opts: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
) => void;

export class AdamW extends Optimizer<AdamWHyper> {
  protected readonly typeName = "AdamW";
  private readonly fused: FusedAdamW | null;

  constructor(params: ParamsArg<AdamWHyper>, opts: AdamWOptions = {}) {
    const { foreach, ...hyper } = opts;
    super(params, { ...DEFAULTS, ...stripUndefined(hyper) });
    const native = (torch as unknown as { fusedAdamW?: FusedAdamW }).fusedAdamW;
    this.fused = foreach === false || typeof native !== "function" ? null : native;
  }

  /** True when steps run through the fused native kernel. */
  get isFused(): boolean {
    return this.fused !== null;
  }

  protected override validateGroup(g: ParamGroup<AdamWHyper>, gi: number): void {
    super.validateGroup(g, gi);
    for (const k of ["beta1", "beta2"] as const) {
      if (!(g[k] >= 0 && g[k] < 1)) throw new RangeError(`group ${gi} ${k} must be in [0, 1), got ${g[k]}`);
    }
    checkNonNegative(`group ${gi} eps`, g.eps);
  }

  protected checkStateNames(i: number, names: string[]): void {
    if (!names.includes("exp_avg") || !names.includes("exp_avg_sq") || names.length !== 2) {
      throw new Error(`optimizer loadStateDict: AdamW state of parameter ${i} must be exp_avg and exp_avg_sq, got ${names.join(", ")}`);
    }
  }

  step(): void {
    torch.tidy(() =>
      torch.noGrad(() => {
        for (const group of this.paramGroups) this.stepGroup(group);
      }),
    );
  }

  private stepGroup(group: ParamGroup<AdamWHyper>): void {
    const params: Tensor[] = [];
    const grads: Tensor[] = [];
    const expAvgs: Tensor[] = [];
    const expAvgSqs: Tensor[] = [];
    const counts: number[] = [];
    // The fused kernel reads the gradients itself: ask which exist instead of wrapping each one.
    const present = torch.hasGrads(group.params);
    for (let i = 0; i < group.params.length; i++) {
      if (!present[i]) continue;
      const p = group.params[i]!;
      const s = this.state.get(p) ?? this.newState(p, ["exp_avg", "exp_avg_sq"]);
      s.step += 1;
      params.push(p);
      if (this.fused === null) grads.push(p.grad!);
      expAvgs.push(s.tensors.exp_avg!);
      expAvgSqs.push(s.tensors.exp_avg_sq!);
      counts.push(s.step);
    }
    if (params.length === 0) return;
    const { lr, beta1, beta2, eps, weightDecay } = group;
    if (this.fused !== null) {
      // The kernel reads each parameter's step, already incremented (as torch.optim passes it),
      // and each parameter's .grad itself. One scalar per distinct count: normally a single
      // tensor shared by the whole group.
      const device = params[0]!.device;
      const byCount = new Map<number, Tensor>();
      const steps = counts.map((c) => {
        let t = byCount.get(c);
        if (t === undefined) byCount.set(c, (t = torch.full([], c, { dtype: "float32", device: device as never })));
        return t;
      });
      this.fused(params, expAvgs, expAvgSqs, steps, { lr, beta1, beta2, eps, weightDecay });
      return;
    }
    for (let i = 0; i < params.length; i++) {
      adamwReference(params[i]!, grads[i]!, expAvgs[i]!, expAvgSqs[i]!, counts[i]!, group);
    }
  }
}

/** One AdamW update of one parameter with plain tensor ops (torch.optim.AdamW's formula). */
function adamwReference(p: Tensor, g: Tensor, m: Tensor, v: Tensor, step: number, h: AdamWHyper): void {
  p.mul_(1 - h.lr * h.weightDecay);
  m.mul_(h.beta1).add_(g, { alpha: 1 - h.beta1 });
  v.mul_(h.beta2).add_(g.mul(g), { alpha: 1 - h.beta2 });
  const bc1 = 1 - Math.pow(h.beta1, step);
  const bc2 = 1 - Math.pow(h.beta2, step);
  const denom = v.sqrt().div_(Math.sqrt(bc2)).add_(h.eps);
  p.add_(m.div(denom), { alpha: -h.lr / bc1 });
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
