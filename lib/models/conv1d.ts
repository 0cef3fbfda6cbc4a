// Hugging Face's Conv1D: a linear layer whose weight is stored transposed, [in, out], so that
// y = x @ W + b. GPT-2 checkpoints use this layout; keeping it makes state dicts load as they are.

import { torch, F } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module, init } from "../nn/index.js";

export class Conv1D extends Module {
  readonly nIn: number;
  readonly nOut: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(nIn: number, nOut: number, opts: { bias?: boolean; std?: number } = {}) {
    super();
    this.nIn = nIn;
    this.nOut = nOut;
    this.weight = this.registerParameter("weight", init.normal_(torch.empty([nIn, nOut]), 0, opts.std ?? 0.02));
    this.bias = opts.bias ?? true ? this.registerParameter("bias", torch.zeros([nOut])) : this.registerParameter("bias", null);
  }

  forward(x: Tensor): Tensor {
    // linear(x, W^T, b) = x @ W + b, computed by one addmm on the untransposed storage.
    return F.linear(x, this.weight.transpose(0, 1), this.bias ?? undefined);
  }
}
