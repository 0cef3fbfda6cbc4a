// HookPoint: an identity module placed at a named spot of a model's forward pass (TransformerLens
// style). With no hook set it returns its input untouched and costs one field check; with a hook
// set, the hook sees the activation and may return it or a replacement (to record it, call
// retainGrad() on it, patch it, ...).

import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

/** Receives the activation and the hook point's name; returns the tensor that flows on. */
export type HookFn = (x: Tensor, name: string) => Tensor;

export class HookPoint extends Module {
  /**
   * Hooks set right now, over all hook points. While it is 0 no hook can hold on to an activation,
   * so models may release each block's intermediate tensors as soon as the block is done.
   */
  static activeHooks = 0;
  /** Marks hook points for `Module.hookPoints()` without an import cycle. */
  readonly isHookPoint = true;
  /** The hook name (e.g. "blocks.0.hook_resid_pre"); null means "use the module path". */
  name: string | null;
  private hook: HookFn | null = null;

  constructor(name: string | null = null) {
    super();
    this.name = name;
  }

  /** Sets (or with null, clears) the hook function. */
  setHook(fn: HookFn | null): void {
    if (fn !== null && typeof fn !== "function") throw new TypeError("setHook: fn must be a function or null");
    HookPoint.activeHooks += (fn !== null ? 1 : 0) - (this.hook !== null ? 1 : 0);
    this.hook = fn;
  }

  get hasHook(): boolean {
    return this.hook !== null;
  }

  forward(x: Tensor): Tensor {
    const h = this.hook;
    return h === null ? x : h(x, this.name ?? "");
  }
}
