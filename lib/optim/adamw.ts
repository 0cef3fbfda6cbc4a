// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, as
// torch.optim.AdamW. The update of all parameters of a group is one native call
// (lib/torch/internal.ts) where the addon provides it.
//
// Capturable mode (torch.optim.AdamW(capturable=True)): the step counts live in tensors on the
// parameters' device and are incremented there, and the learning rate is a tensor the kernel reads
// when it runs, so that a step captured into a CUDA graph (torch.cuda.CudaGraph) counts its steps
// and follows the schedule on every replay. Nothing in a capturable step reads a value back.

import { torch } from "../torch/index.js";
import * as kernels from "../torch/internal.js";
import type { Tensor } from "../torch/index.js";
import { Optimizer, checkNonNegative } from "./optimizer.js";
import type { BaseHyper, OptimizerStateDict, ParamGroup, ParamState, ParamsArg } from "./optimizer.js";
import { sameItems } from "../util/arrays.js";

export interface AdamWHyper extends BaseHyper {
  beta1: number;
  beta2: number;
  eps: number;
}

const DEFAULTS: AdamWHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export interface AdamWOptions extends Partial<AdamWHyper> {
  /** PyTorch's spelling of beta1 and beta2: `betas: [0.9, 0.95]`. Give either this or beta1/beta2 (equal values may repeat). */
  betas?: readonly [number, number];
  /** Use the TypeScript reference update instead of the fused native one. */
  foreach?: false;
  /**
   * Step counts and learning rate in tensors on the parameters' device, for steps captured into a
   * CUDA graph. The state dict is the same as without it.
   */
  capturable?: boolean;
}

type FusedAdamW = (
  params: Tensor[],
  expAvgs: Tensor[],
  expAvgSqs: Tensor[],
  steps: Tensor[] | number,
  opts: { lr: number | Tensor; beta1: number; beta2: number; eps: number; weightDecay: number; incrementSteps?: boolean },
) => void;

export class AdamW extends Optimizer<AdamWHyper> {
  protected readonly typeName = "AdamW";
  private readonly fused: FusedAdamW | null;
  readonly capturable: boolean;
  /** Capturable mode: each parameter's step count on its device (authoritative; ParamState.step is synced on save). */
  private readonly deviceSteps = new Map<Tensor, Tensor>();
  /** Capturable mode: each group's learning rate as a tensor, and the value last written into it. */
  private readonly lrTensors = new Map<ParamGroup<AdamWHyper>, { t: Tensor; value: number }>();
  /** What holds a captured step of this optimizer (its state must then stay where it is). */
  private captor: object | null = null;

  constructor(params: ParamsArg<AdamWHyper>, opts: AdamWOptions = {}) {
    const { foreach, capturable, betas, ...rest } = opts ?? {};
    const hyper = { ...stripUndefined(rest), ...betasToHyper(betas, rest) };
    super(params, { ...DEFAULTS, ...hyper });
    const native = (kernels as { fusedAdamW?: FusedAdamW }).fusedAdamW;
    this.fused = foreach === false || typeof native !== "function" ? null : native;
    if (capturable !== undefined && typeof capturable !== "boolean") {
      throw new TypeError(`AdamW: capturable must be a boolean, got ${typeof capturable}`);
    }
    this.capturable = capturable === true;
    if (this.capturable && this.fused === null) {
      throw new Error("AdamW: capturable needs the fused native kernel (not available with foreach: false)");
    }
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
        for (const group of this.paramGroups) {
          if (this.capturable) this.stepGroupCapturable(group);
          else this.stepGroup(group);
        }
      }),
    );
  }

  /**
   * Capturable mode: writes each group's current learning rate into the tensor the kernel reads.
   * step() does it itself when it runs eagerly; before replaying a captured step, call this
   * (a capture records the kernels, not this host-side write).
   */
  refreshLr(): void {
    if (!this.capturable) return;
    for (const group of this.paramGroups) this.lrTensor(group);
  }

  private lrTensor(group: ParamGroup<AdamWHyper>): Tensor {
    let e = this.lrTensors.get(group);
    if (e === undefined) {
      const p = group.params[0]!;
      // float32 on a GPU (what libtorch's CUDA kernel reads), float64 on the CPU (read exactly).
      const dtype = p.device === "cpu" ? "float64" : "float32";
      const t = torch.keep(torch.full([], group.lr, { dtype, device: p.device as never }));
      this.lrTensors.set(group, (e = { t, value: group.lr }));
    } else if (e.value !== group.lr && !torch.cuda.isCapturing()) {
      e.t.fill_(group.lr);
      e.value = group.lr;
    }
    return e.t;
  }

  /**
   * The lists the fused kernel takes for `items`: the same arrays as the group's last step while
   * they hold the same tensors, so that the addon keeps them (fusedAdamW).
   */
  private stateLists(group: ParamGroup<AdamWHyper>, items: Array<{ p: Tensor; s: ParamState }>): StateLists {
    const lists = unzipState(items);
    const last = this.lastLists.get(group);
    if (last !== undefined && sameItems(last.params, lists.params) && sameItems(last.expAvgs, lists.expAvgs) &&
        sameItems(last.expAvgSqs, lists.expAvgSqs)) {
      return last;
    }
    this.lastLists.set(group, lists);
    return lists;
  }
  private readonly lastLists = new WeakMap<ParamGroup<AdamWHyper>, StateLists>();

  private stepGroupCapturable(group: ParamGroup<AdamWHyper>): void {
    // Creating state inside a capture would record zero-filling kernels that every replay runs.
    const capturing = torch.cuda.isCapturing();
    const items = this.withGradsAndState(group, !capturing);
    if (items.length === 0) return;
    const steps = items.map(({ p, s }) => {
      let step = this.deviceSteps.get(p);
      if (step === undefined) {
        if (capturing) throw new Error(NO_STATE_WHILE_CAPTURING);
        step = torch.keep(torch.full([], s.step, { dtype: "float32", device: p.device as never }));
        this.deviceSteps.set(p, step);
      }
      return step;
    });
    const { beta1, beta2, eps, weightDecay } = group;
    const { params, expAvgs, expAvgSqs } = this.stateLists(group, items);
    this.fused!(params, expAvgs, expAvgSqs, steps, { lr: this.lrTensor(group), beta1, beta2, eps, weightDecay, incrementSteps: true });
  }

  /**
   * The group's parameters that have a gradient (the fused kernel reads the gradients itself: ask
   * which exist instead of wrapping each one), with their state, made here on first use when
   * `mayCreate`.
   */
  private withGradsAndState(group: ParamGroup<AdamWHyper>, mayCreate: boolean): Array<{ p: Tensor; s: ParamState }> {
    const present = kernels.hasGrads(group.params);
    const items: Array<{ p: Tensor; s: ParamState }> = [];
    for (let i = 0; i < group.params.length; i++) {
      if (!present[i]) continue;
      const p = group.params[i]!;
      let s = this.state.get(p);
      if (s === undefined) {
        if (!mayCreate) throw new Error(NO_STATE_WHILE_CAPTURING);
        s = this.newState(p, ["exp_avg", "exp_avg_sq"]);
      }
      items.push({ p, s });
    }
    return items;
  }

  /**
   * Marks this optimizer's step as captured in a CUDA graph by `owner` (null: no longer). While it
   * is, what would free or replace the state or the gradients the graph reads and writes in place
   * (loadStateDict, zeroGrad, dispose) throws instead of silently breaking the graph.
   */
  capturedBy(owner: object | null): void {
    this.captor = owner;
  }

  private checkNotCaptured(what: string): void {
    if (this.captor !== null) {
      throw new Error(`AdamW.${what}: this optimizer's step is captured in a CUDA graph; dispose the captured step first`);
    }
  }

  override zeroGrad(): void {
    this.checkNotCaptured("zeroGrad");
    super.zeroGrad();
  }

  override loadStateDict(sd: OptimizerStateDict): void {
    this.checkNotCaptured("loadStateDict");
    super.loadStateDict(sd);
  }

  override dispose(): void {
    this.checkNotCaptured("dispose");
    super.dispose();
  }

  /** The step counts of capturable mode are read back from the device here (this waits for it). */
  override stateDict(): OptimizerStateDict {
    if (this.capturable) {
      if (torch.cuda.isCapturing()) throw new Error("AdamW.stateDict: not while a CUDA graph is capturing");
      for (const [p, t] of this.deviceSteps) this.state.get(p)!.step = Math.round(t.item() as number);
    }
    return super.stateDict();
  }

  protected override afterStateLoaded(p: Tensor): void {
    this.deviceSteps.get(p)?.dispose();
    this.deviceSteps.delete(p);
  }

  protected override disposeState(): void {
    for (const t of this.deviceSteps.values()) t.dispose();
    this.deviceSteps.clear();
    for (const e of this.lrTensors.values()) e.t.dispose();
    this.lrTensors.clear();
    super.disposeState();
  }

  private stepGroup(group: ParamGroup<AdamWHyper>): void {
    const items = this.withGradsAndState(group, true);
    if (items.length === 0) return;
    for (const { s } of items) s.step += 1;
    const { params, expAvgs, expAvgSqs } = this.stateLists(group, items);
    const { lr, beta1, beta2, eps, weightDecay } = group;
    if (this.fused !== null) {
      // The kernel reads each parameter's step, already incremented (as torch.optim passes it),
      // and each parameter's .grad itself. Normally one count for the whole group, passed as a
      // number; otherwise one scalar tensor per distinct count.
      const first = items[0]!.s.step;
      if (items.every(({ s }) => s.step === first)) {
        this.fused(params, expAvgs, expAvgSqs, first, { lr, beta1, beta2, eps, weightDecay });
        return;
      }
      const device = params[0]!.device;
      const byCount = new Map<number, Tensor>();
      const steps = items.map(({ s }) => {
        let t = byCount.get(s.step);
        if (t === undefined) byCount.set(s.step, (t = torch.full([], s.step, { dtype: "float32", device: device as never })));
        return t;
      });
      this.fused(params, expAvgs, expAvgSqs, steps, { lr, beta1, beta2, eps, weightDecay });
      return;
    }
    for (const { p, s } of items) adamwReference(p, p.grad!, s.tensors.exp_avg!, s.tensors.exp_avg_sq!, s.step, group);
  }
}

const NO_STATE_WHILE_CAPTURING = "AdamW: a captured step needs the optimizer's state: run one step eagerly before capturing";

interface StateLists {
  params: Tensor[];
  expAvgs: Tensor[];
  expAvgSqs: Tensor[];
}

/** The lists the fused kernel takes, in the order of `items`. */
function unzipState(items: Array<{ p: Tensor; s: ParamState }>): StateLists {
  return {
    params: items.map(({ p }) => p),
    expAvgs: items.map(({ s }) => s.tensors.exp_avg!),
    expAvgSqs: items.map(({ s }) => s.tensors.exp_avg_sq!),
  };
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

/** `betas: [b1, b2]` as beta1/beta2; a contradicting beta1 or beta2 beside it is an error. */
function betasToHyper(betas: unknown, o: Partial<AdamWHyper>): Partial<AdamWHyper> {
  if (betas === undefined) return {};
  if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === "number")) {
    throw new TypeError(`AdamW: betas must be a pair of numbers [beta1, beta2], got ${JSON.stringify(betas)}`);
  }
  const [beta1, beta2] = betas as [number, number];
  for (const [name, v] of [["beta1", beta1], ["beta2", beta2]] as const) {
    const given = o[name];
    if (given !== undefined && given !== v) {
      throw new RangeError(`AdamW: betas [${beta1}, ${beta2}] contradicts ${name}: ${given}; give one of them`);
    }
  }
  return { beta1, beta2 };
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
