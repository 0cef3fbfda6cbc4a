// Activation modules (stateless wrappers of the functional forms).

import { F } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

export class GELU extends Module {
  readonly approximate: "none" | "tanh";

  constructor(opts: { approximate?: "none" | "tanh" } = {}) {
    super();
    this.approximate = opts.approximate ?? "none";
    if (this.approximate !== "none" && this.approximate !== "tanh") {
      throw new TypeError(`GELU approximate must be 'none' or 'tanh', got '${String(this.approximate)}'`);
    }
  }

  forward(x: Tensor): Tensor {
    return F.gelu(x, { approximate: this.approximate });
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return F.silu(x);
  }
}
