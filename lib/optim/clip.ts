// Gradient clipping by the global L2 norm, as torch.nn.utils.clip_grad_norm_.

import { torch } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

type NativeClip = (params: Tensor[], maxNorm: number) => number;

/**
 * Scales the gradients of `params` in place so that their joint L2 norm is at most `maxNorm`, and
 * returns the norm before clipping (non-finite when a gradient is). Parameters without a gradient
 * are skipped. One native call where the addon provides it.
 */
export function clipGradNorm_(params: Iterable<Tensor>, maxNorm: number): number {
  if (typeof maxNorm !== "number" || !(maxNorm > 0)) throw new RangeError(`clipGradNorm_: maxNorm must be > 0, got ${maxNorm}`);
  const list = [...params];
  const native = (torch as unknown as { _clipGradNorm?: NativeClip })._clipGradNorm;
  if (typeof native === "function") return native(list, maxNorm);
  return torch.tidy(() =>
    torch.noGrad(() => {
      const grads: Tensor[] = [];
      for (const p of list) {
        const g = p.grad;
        if (g !== null) grads.push(g);
      }
      if (grads.length === 0) return 0;
      const total = torch.stack(grads.map((g) => g.norm(2).float())).norm(2);
      const totalNorm = total.item() as number;
      // PyTorch multiplies by min(1, maxNorm / (norm + 1e-6)).
      const coef = maxNorm / (totalNorm + 1e-6);
      if (coef < 1) for (const g of grads) g.mul_(coef);
      return totalNorm;
    }),
  );
}
