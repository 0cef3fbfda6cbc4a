// Small pieces the Hugging Face architectures share: RMSNorm computed the way transformers'
// LlamaRMSNorm does, the MLP activations, and initialisation in transformers' manner.

import { torch, F } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module, Linear, Embedding, LayerNorm, init } from "../nn/index.js";
import type { FactoryOptions } from "../nn/index.js";
import type { Activation } from "./hf-config.js";

/**
 * RMSNorm as transformers' LlamaRMSNorm: normalise in float32, cast back to the input dtype, then
 * scale by the weight. In float32 that is exactly the fused F.rmsNorm, which is used there.
 */
export class HFRMSNorm extends Module {
  readonly eps: number;
  readonly size: number;
  weight: Tensor;

  constructor(size: number, eps: number, f: FactoryOptions = {}) {
    super();
    this.size = size;
    this.eps = eps;
    this.weight = this.registerParameter("weight", torch.ones([size], f));
  }

  forward(x: Tensor): Tensor {
    if (x.dtype === "float32" && this.weight.dtype === "float32") return F.rmsNorm(x, [this.size], { weight: this.weight, eps: this.eps });
    const xf = x.float();
    const normed = xf.mul(xf.square().mean(-1, { keepdim: true }).add(this.eps).rsqrt()).to(x.dtype);
    return normed.mul(this.weight);
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
      init.ones_(m.weight);
    }
  }
}
