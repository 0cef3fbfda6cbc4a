// Shapes are plain number arrays; two are the same when they have the same dimensions in order.
import { sameItems } from "./arrays.js";

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return sameItems(a, b);
}
