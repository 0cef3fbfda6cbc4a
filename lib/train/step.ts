// One eager optimizer step, the code `innerloop train` runs and `innerloop bench` times (so that a
// step time measured by one holds for the other): for each micro-batch the loss (divided by the
// number of micro-batches) and its backward pass, the first micro-batch's forward pass possibly
// carrying a plugin's work along (plugins.ts, RideAlong); the loss read back; the total gradient
// norm clipped (and read back); the optimizer's update; the gradients dropped. A non-finite loss or
// gradient norm drops the gradients and stops the step before the update.

import { torch, type Tensor } from "../torch/index.js";
import { clipGradNorm_ } from "../optim/index.js";
import type { RideAlong } from "./plugins.js";

export interface EagerStepParts {
  params: Tensor[];
  optimizer: { step(): void; zeroGrad(): void };
  /** The loss of one micro-batch (the model's forward pass, under autocast where asked). */
  forwardLoss(inputs: Tensor, targets: Tensor): Tensor;
  gradAccum: number;
  /** The total gradient norm is scaled down to at most this; Infinity only measures it. */
  gradClip: number;
}

export interface MicroBatch {
  inputs: Tensor;
  targets: Tensor;
}

export interface EagerStepHooks {
  /** A forward pass of the first micro-batch that carries other work along, or null for the plain one. */
  rideAlong?(inputs: Tensor, targets: Tensor): RideAlong | null;
  /** After the backward passes, with the mean loss; returns the loss to report (data-parallel: the mean over ranks). */
  afterBackward?(loss: number): number;
  /** The error to throw when the loss or gradient norm is not finite (default: a plain Error). */
  nonFinite?(what: "loss" | "gradient norm", value: number): Error;
}

export interface EagerStepResult {
  /** Mean loss over the micro-batches. */
  loss: number;
  /** Total gradient norm before clipping. */
  gradNorm: number;
}

/** Drops the gradients; in a scope, because reading `p.grad` makes a wrapper that must be freed. */
export function dropGradients(optimizer: { zeroGrad(): void }): void {
  torch.tidy(() => optimizer.zeroGrad());
}

export function eagerTrainStep(s: EagerStepParts, next: (micro: number) => MicroBatch, hooks: EagerStepHooks = {}): EagerStepResult {
  const lossSum = torch.tidy(() => {
    let acc: Tensor | null = null;
    for (let micro = 0; micro < s.gradAccum; micro++) {
      const { inputs, targets } = next(micro);
      const ride = micro === 0 ? (hooks.rideAlong?.(inputs, targets) ?? null) : null;
      const loss = ride ? ride.loss : s.forwardLoss(inputs, targets);
      const scaled = s.gradAccum > 1 ? loss.div(s.gradAccum) : loss;
      (ride ? scaled.add(ride.extra) : scaled).backward();
      ride?.afterBackward();
      const l = loss.detach();
      acc = acc === null ? l : acc.add(l);
    }
    return acc!;
  });
  // Reading the loss waits for the device: the trainer needs it every step (metrics, the NaN check).
  let loss = (lossSum.item() as number) / s.gradAccum;
  lossSum.dispose();
  if (hooks.afterBackward) loss = hooks.afterBackward(loss);
  const stop = (what: "loss" | "gradient norm", value: number): Error => {
    dropGradients(s.optimizer);
    return hooks.nonFinite?.(what, value) ?? new Error(`${what} is ${String(value)}; the step was not taken`);
  };
  if (!Number.isFinite(loss)) throw stop("loss", loss);
  const gradNorm = clipGradNorm_(s.params, s.gradClip);
  if (!Number.isFinite(gradNorm)) throw stop("gradient norm", gradNorm);
  s.optimizer.step();
  dropGradients(s.optimizer);
  return { loss, gradNorm };
}
