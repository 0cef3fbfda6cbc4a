// The usual weight-decay grouping (nanoGPT's): every parameter with two or more dimensions
// (matrices, embeddings) decays; biases, norm weights and other 1-D parameters do not.

import type { Tensor } from "../torch/index.js";

export interface DecayGroup {
  params: Tensor[];
  weightDecay: number;
}

/** Splits parameters into a decayed group and a no-decay group (empty groups are left out). */
export function weightDecayGroups(
  params: Iterable<Tensor> | { parameters(): Tensor[] },
  weightDecay: number,
): DecayGroup[] {
  const list = "parameters" in params && typeof params.parameters === "function" ? params.parameters() : [...(params as Iterable<Tensor>)];
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const p of list) {
    if (!p.requiresGrad) continue;
    (p.ndim >= 2 ? decay : noDecay).push(p);
  }
  const groups: DecayGroup[] = [];
  if (decay.length > 0) groups.push({ params: decay, weightDecay });
  if (noDecay.length > 0) groups.push({ params: noDecay, weightDecay: 0 });
  return groups;
}
