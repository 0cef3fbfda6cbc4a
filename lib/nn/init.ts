// Parameter initialisers. They fill tensors in place without recording gradients and draw from
// the global generator (torch.manualSeed), so a seeded model is built the same way every time.

import { torch } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

let skipping = 0;

/**
 * Runs `fn` with the random initialisers turned into no-ops: modules built inside keep whatever
 * their factories gave (uninitialised memory for torch.empty). For models whose weights are
 * loaded right after construction: it saves the time of drawing them and leaves the global
 * generator untouched.
 */
export function skipInit<T>(fn: () => T): T {
  skipping++;
  try {
    return fn();
  } finally {
    skipping--;
  }
}

export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  if (skipping > 0) return t;
  torch.noGrad(() => t.normal_(mean, std));
  return t;
}

export function uniform_(t: Tensor, a = 0, b = 1): Tensor {
  if (skipping > 0) return t;
  torch.noGrad(() => t.uniform_(a, b));
  return t;
}

export function zeros_(t: Tensor): Tensor {
  torch.noGrad(() => t.zero_());
  return t;
}

export function ones_(t: Tensor): Tensor {
  torch.noGrad(() => t.fill_(1));
  return t;
}

export function constant_(t: Tensor, value: number): Tensor {
  torch.noGrad(() => t.fill_(value));
  return t;
}
