// LayerNorm and RMSNorm over the last dimension(s).

import { torch, F } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";
import { checkPositiveInt } from "./linear.js";
import type { FactoryOptions } from "./options.js";

export interface LayerNormOptions extends FactoryOptions {
  eps?: number;
  /** Learn a weight (and bias, unless `bias` is false). Default true. */
  elementwiseAffine?: boolean;
  bias?: boolean;
}

export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(normalizedShape: number | number[], opts: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    for (const d of this.normalizedShape) checkPositiveInt("normalizedShape", d);
    this.eps = opts.eps ?? 1e-5;
    const f = { device: opts.device, dtype: opts.dtype };
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine
      ? this.registerParameter("weight", torch.ones(this.normalizedShape, f))
      : this.registerParameter("weight", null);
    this.bias =
      affine && (opts.bias ?? true)
        ? this.registerParameter("bias", torch.zeros(this.normalizedShape, f))
        : this.registerParameter("bias", null);
  }

  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, {
      weight: this.weight ?? undefined,
      bias: this.bias ?? undefined,
      eps: this.eps,
    });
  }
}

export interface RMSNormOptions extends FactoryOptions {
  /** Default 1e-6. */
  eps?: number;
  elementwiseAffine?: boolean;
}

export class RMSNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  weight: Tensor | null;

  constructor(normalizedShape: number | number[], opts: RMSNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    for (const d of this.normalizedShape) checkPositiveInt("normalizedShape", d);
    this.eps = opts.eps ?? 1e-6;
    this.weight =
      opts.elementwiseAffine ?? true
        ? this.registerParameter("weight", torch.ones(this.normalizedShape, { device: opts.device, dtype: opts.dtype }))
        : this.registerParameter("weight", null);
  }

  forward(x: Tensor): Tensor {
    return F.rmsNorm(x, this.normalizedShape, { weight: this.weight ?? undefined, eps: this.eps });
  }
}
