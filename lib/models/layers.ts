// Small pieces the Hugging Face architectures share: RMSNorm computed the way transformers'
// RMSNorms do, the MLP activations, and initialisation in transformers' manner.

import { torch, F } from "../torch/index.js";
import type { Device, DType, Tensor } from "../torch/index.js";
import { Module, Linear, Embedding, LayerNorm, init } from "../nn/index.js";
import type { FactoryOptions } from "../nn/index.js";
import type { Activation } from "./hf-config.js";

/** Device, dtype and initialisation of a model being built. */
export interface BuildOptions {
  device?: Device;
  dtype?: DType;
  /** Initialise as transformers does (default true); false leaves the values to a weight load. */
  init?: boolean;
}

export interface RMSNormOptions extends FactoryOptions {
  /** Gemma: scale by (1 + weight) (the weight starts at 0). */
  unitOffset?: boolean;
  /** Gemma, OLMo 2: scale in float32 and cast afterwards (LLaMA casts, then scales). */
  scaleInFloat32?: boolean;
}

/**
 * RMSNorm as transformers computes it: normalise in float32, then either cast back to the input
 * dtype and scale by the weight (LlamaRMSNorm), or scale in float32 and cast (Olmo2RMSNorm;
 * GemmaRMSNorm, whose scale is 1 + weight). In float32 all of these are the fused F.rmsNorm.
 */
export class HFRMSNorm extends Module {
  readonly eps: number;
  readonly size: number;
  readonly unitOffset: boolean;
  private readonly scaleInFloat32: boolean;
  weight: Tensor;

  constructor(size: number, eps: number, f: RMSNormOptions = {}) {
    super();
    this.size = size;
    this.eps = eps;
    this.unitOffset = f.unitOffset ?? false;
    this.scaleInFloat32 = this.unitOffset || (f.scaleInFloat32 ?? false);
    this.weight = this.registerParameter("weight", (this.unitOffset ? torch.zeros : torch.ones)([size], { device: f.device, dtype: f.dtype }));
  }

  forward(x: Tensor): Tensor {
    const w = this.unitOffset ? this.weight.float().add(1) : this.weight;
    if (x.dtype === "float32" && w.dtype === "float32") return F.rmsNorm(x, [this.size], { weight: w, eps: this.eps });
    const xf = x.float();
    const normed = xf.mul(xf.square().mean(-1, { keepdim: true }).add(this.eps).rsqrt());
    return this.scaleInFloat32 ? normed.mul(w.float()).to(x.dtype) : normed.to(x.dtype).mul(w);
  }
}

export function activate(x: Tensor, a: Activation): Tensor {
  switch (a) {
    case "silu":
      return F.silu(x);
    case "gelu":
      return F.gelu(x);
    case "gelu_tanh":
      return F.gelu(x, { approximate: "tanh" });
    case "relu":
      return F.relu(x);
  }
}

/** transformers' _init_weights: Linear and Embedding weights N(0, std), biases 0, norms 1. */
export function initLikeHF(root: Module, std: number): void {
  for (const m of root.modules()) {
    if (m instanceof Linear) {
      init.normal_(m.weight, 0, std);
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof Embedding) {
      init.normal_(m.weight, 0, std);
    } else if (m instanceof LayerNorm) {
      if (m.weight) init.ones_(m.weight);
      if (m.bias) init.zeros_(m.bias);
    } else if (m instanceof HFRMSNorm) {
      (m.unitOffset ? init.zeros_ : init.ones_)(m.weight);
    }
  }
}
