// Linear: y = x W^T + b with W of shape [out, in] (PyTorch's layout).

import { torch, F } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";
import { uniform_ } from "./init.js";
import type { FactoryOptions } from "./options.js";

export interface LinearOptions extends FactoryOptions {
  bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    checkPositiveInt("inFeatures", inFeatures);
    checkPositiveInt("outFeatures", outFeatures);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const f = { device: opts.device, dtype: opts.dtype };
    // PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter("weight", uniform_(torch.empty([outFeatures, inFeatures], f), -bound, bound));
    this.bias =
      opts.bias ?? true
        ? this.registerParameter("bias", uniform_(torch.empty([outFeatures], f), -bound, bound))
        : this.registerParameter("bias", null);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias ?? undefined);
  }
}

export function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
}
