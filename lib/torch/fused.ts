// Native whole-model optimizer steps and gradient utilities: one call per step
// runs libtorch's fused / foreach kernels over every parameter.
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";

export interface AdamWStepOptions { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }

/** One AdamW step (torch's fused kernel) over params with gradients; state tensors are updated in place. */
export function fusedAdamW(params: Tensor[], expAvgs: Tensor[], expAvgSqs: Tensor[], steps: Tensor[], o: AdamWStepOptions): void {
  native.fusedAdamW(params, expAvgs, expAvgSqs, steps, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay);
}

export interface SgdStepOptions { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }

/** One SGD step; momentumBuffers are used when momentum != 0 (firstStep initialises them). */
export function sgdStep(params: Tensor[], momentumBuffers: Tensor[] | null, o: SgdStepOptions, firstStep: boolean): void {
  native.sgd(params, momentumBuffers, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, firstStep);
}

/** Scales gradients so their total norm is at most maxNorm; returns the norm before clipping (0-dim tensor, not synchronised). */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): Tensor {
  return native.clipGradNorm(params, maxNorm, normType);
}

/** Sets every parameter's gradient to null. */
export function zeroGrad(params: Tensor[]): void { native.zeroGrad(params); }

/** Which parameters have a gradient (without wrapping each gradient). */
export function hasGrads(params: Tensor[]): boolean[] { return native.hasGrads(params); }
