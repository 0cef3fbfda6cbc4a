// SGD with momentum, dampening, Nesterov and (coupled, L2) weight decay, as torch.optim.SGD.

import { torch } from "../torch/index.js";
import * as kernels from "../torch/internal.js";
import type { Tensor } from "../torch/index.js";
import { Optimizer, checkNonNegative } from "./optimizer.js";
import type { BaseHyper, ParamGroup, ParamsArg } from "./optimizer.js";
import { stripUndefined } from "./adamw.js";

export interface SGDHyper extends BaseHyper {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

const DEFAULTS: SGDHyper = { lr: 1e-3, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 };

export class SGD extends Optimizer<SGDHyper> {
  protected readonly typeName = "SGD";

  constructor(params: ParamsArg<SGDHyper>, opts: Partial<SGDHyper> = {}) {
    super(params, { ...DEFAULTS, ...stripUndefined(opts) });
  }

  protected override validateGroup(g: ParamGroup<SGDHyper>, gi: number): void {
    super.validateGroup(g, gi);
    checkNonNegative(`group ${gi} momentum`, g.momentum);
    checkNonNegative(`group ${gi} dampening`, g.dampening);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) {
      throw new RangeError(`group ${gi}: nesterov needs momentum > 0 and dampening 0`);
    }
  }

  protected checkStateNames(i: number, names: string[]): void {
    if (names.length !== 1 || names[0] !== "momentum_buffer") {
      throw new Error(`optimizer loadStateDict: SGD state of parameter ${i} must be momentum_buffer, got ${names.join(", ")}`);
    }
  }

  step(): void {
    const native = (kernels as { sgdStep?: NativeSgd }).sgdStep;
    torch.tidy(() =>
      torch.noGrad(() => {
        for (const group of this.paramGroups) {
          if (typeof native === "function") this.stepGroupNative(group, native);
          else this.stepGroupReference(group);
        }
      }),
    );
  }

  /** One native call per group (two when some parameters get their first momentum buffer). */
  private stepGroupNative(group: ParamGroup<SGDHyper>, native: NativeSgd): void {
    const { lr, momentum, dampening, nesterov, weightDecay } = group;
    const opts = { lr, momentum, dampening, weightDecay, nesterov };
    const fresh: Tensor[] = [];
    const freshBufs: Tensor[] = [];
    const old: Tensor[] = [];
    const oldBufs: Tensor[] = [];
    for (const p of group.params) {
      if (p.grad === null) continue;
      if (momentum === 0) {
        old.push(p);
        continue;
      }
      let s = this.state.get(p);
      const first = s === undefined;
      if (s === undefined) s = this.newState(p, ["momentum_buffer"]);
      s.step += 1;
      (first ? fresh : old).push(p);
      (first ? freshBufs : oldBufs).push(s.tensors.momentum_buffer!);
    }
    if (fresh.length > 0) native(fresh, freshBufs, opts, true);
    if (old.length > 0) native(old, momentum === 0 ? null : oldBufs, opts, false);
  }

  /** The same update with tensor ops, parameter by parameter. */
  private stepGroupReference(group: ParamGroup<SGDHyper>): void {
    const { lr, momentum, dampening, nesterov, weightDecay } = group;
    for (const p of group.params) {
      let d = p.grad;
      if (d === null) continue;
      if (weightDecay !== 0) d = d.add(p, { alpha: weightDecay });
      if (momentum !== 0) {
        let s = this.state.get(p);
        if (s === undefined) {
          // The first step's buffer is the gradient itself (no dampening), as in PyTorch.
          s = this.newState(p, ["momentum_buffer"]);
          s.tensors.momentum_buffer!.copy_(d);
        } else {
          s.tensors.momentum_buffer!.mul_(momentum).add_(d, { alpha: 1 - dampening });
        }
        s.step += 1;
        const buf = s.tensors.momentum_buffer!;
        d = nesterov ? d.add(buf, { alpha: momentum }) : buf;
      }
      p.add_(d, { alpha: -lr });
    }
  }
}

type NativeSgd = (
  params: Tensor[],
  momentumBuffers: Tensor[] | null,
  opts: { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean },
  firstStep: boolean,
) => void;
