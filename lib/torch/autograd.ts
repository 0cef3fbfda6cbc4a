// Autograd entry points and grad-mode / autocast regions.
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";
import type { DType } from "./types.js";

/** Gradients of outputs with respect to inputs (torch.autograd.grad); unused inputs give null when allowUnused. */
export function grad(
  outputs: Tensor | Tensor[],
  inputs: Tensor | Tensor[],
  opts?: { gradOutputs?: Tensor | Tensor[] | null; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean },
): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  const g = opts?.gradOutputs == null ? undefined : Array.isArray(opts.gradOutputs) ? opts.gradOutputs : [opts.gradOutputs];
  return native.autogradGrad(outs, ins, g, opts?.retainGraph, opts?.createGraph ?? false, opts?.allowUnused ?? false);
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = native.setGradEnabled(enabled);
  let restoreNow = true;
  try {
    const out = fn();
    if (out instanceof Promise) {
      // Grad mode is per thread, not per async context: an async function would
      // leak its mode into whatever runs while it awaits.
      restoreNow = false;
      native.setGradEnabled(prev);
      throw new TypeError("noGrad/enableGrad: the function returned a Promise; pass a synchronous function");
    }
    return out;
  } finally {
    if (restoreNow) native.setGradEnabled(prev);
  }
}

/** Runs fn without recording operations for autograd. */
export function noGrad<T>(fn: () => T): T { return withGradMode(false, fn); }
/** Runs fn with autograd recording, even inside noGrad. */
export function enableGrad<T>(fn: () => T): T { return withGradMode(true, fn); }
export function isGradEnabled(): boolean { return native.isGradEnabled(); }
export function setGradEnabled(enabled: boolean): boolean { return native.setGradEnabled(enabled); }

/** Runs fn with automatic mixed precision on a device type ('cuda' or 'cpu'), e.g. bfloat16. */
export function autocast<T>(device: string, dtype: DType, fn: () => T): T {
  const deviceType = device.startsWith("cuda") ? "cuda" : device;
  const [prevEnabled, prevDtype] = native.autocastEnter(deviceType, dtype);
  try {
    return fn();
  } finally {
    native.autocastExit(deviceType, prevEnabled, prevDtype);
  }
}
