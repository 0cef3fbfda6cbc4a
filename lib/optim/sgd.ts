// SGD with momentum, dampening, Nesterov and (coupled, L2) weight decay, as torch.optim.SGD.

import { torch } from "../torch/index.js";
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
    torch.tidy(() =>
      torch.noGrad(() => {
        for (const group of this.paramGroups) {
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
      }),
    );
  }
}
