// Dropout: zeroes elements with probability p in training mode; the identity (no call at all) in
// eval mode or when p is 0.

import { F } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    if (!(typeof p === "number" && p >= 0 && p < 1)) throw new RangeError(`dropout p must be in [0, 1), got ${p}`);
    this.p = p;
  }

  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? F.dropout(x, { p: this.p, training: true }) : x;
  }
}
