// Gradient clipping by the global L2 norm, as torch.nn.utils.clip_grad_norm_.

import { torch } from "../torch/index.js";
import * as kernels from "../torch/internal.js";
import type { Tensor } from "../torch/index.js";

type NativeClip = (params: Tensor[], maxNorm: number) => Tensor;

function checkMaxNorm(maxNorm: number): void {
  if (typeof maxNorm !== "number" || !(maxNorm > 0)) throw new RangeError(`clipGradNorm_: maxNorm must be > 0, got ${maxNorm}`);
}

/**
 * Scales the gradients of `params` in place so that their joint L2 norm is at most `maxNorm`
 * (Infinity: never), and returns the norm before clipping as a 0-dim float32 tensor on the
 * gradients' device, without waiting for the device. The caller owns the returned tensor.
 * Parameters without a gradient are skipped; with none at all the norm is 0.
 */
export function clipGradNormTensor_(params: Iterable<Tensor>, maxNorm: number): Tensor {
  checkMaxNorm(maxNorm);
  // An array is passed as it is: the same array every step lets the addon keep the list.
  const list = Array.isArray(params) ? (params as Tensor[]) : [...params];
  const native = (kernels as { clipGradNorm?: NativeClip }).clipGradNorm;
  if (typeof native === "function") return native(list, maxNorm);
  return torch.tidy(() =>
    torch.noGrad(() => {
      const grads: Tensor[] = [];
      for (const p of list) {
        const g = p.grad;
        if (g !== null) grads.push(g);
      }
      if (grads.length === 0) return torch.zeros([]);
      const total = torch.stack(grads.map((g) => g.norm(2).float())).norm(2);
      if (Number.isFinite(maxNorm)) {
        // PyTorch multiplies by min(1, maxNorm / (norm + 1e-6)).
        const coef = total.add(1e-6).reciprocal().mul(maxNorm).clamp(null, 1);
        for (const g of grads) g.mul_(coef.to(g.dtype));
      }
      return total;
    }),
  );
}

/**
 * Like clipGradNormTensor_, but returns the norm as a number (non-finite when a gradient is),
 * which waits for the device.
 */
export function clipGradNorm_(params: Iterable<Tensor>, maxNorm: number): number {
  const t = clipGradNormTensor_(params, maxNorm);
  try {
    return t.item();
  } finally {
    t.dispose();
  }
}
