// Seeds and generator states (for exact resume of training runs).
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";

/** Seeds the default generators of the CPU and every CUDA device. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`manualSeed: seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}
/** The default generator's state for a device (a uint8 tensor). */
export function getRngState(device: string = "cpu"): Tensor { return native.getRngState(device); }
export function setRngState(state: Tensor, device: string = "cpu"): void { native.setRngState(state, device); }
