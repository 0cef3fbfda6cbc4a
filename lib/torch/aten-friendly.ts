// Common operators beyond the hand-written table, in the camelCase API with PyTorch's
// signatures and defaults. Each is one call of the generic caller (torch.aten), so they need no
// native code of their own.
import { aten } from "./aten.js";
import type { Tensor } from "./tensor.js";

/** The error function, element-wise (torch.erf). */
export function erf(input: Tensor): Tensor { return aten.erf(input); }
/** Reverses the order of elements along `dims` (torch.flip). */
export function flip(input: Tensor, dims: number[]): Tensor { return aten.flip(input, dims); }
/** Rolls elements along `dims`, or over the flattened tensor when `dims` is omitted (torch.roll). */
export function roll(input: Tensor, shifts: number | number[], dims: number | number[] = []): Tensor {
  return aten.roll(input, shifts, dims);
}
/** Indices that sort `input` along `dim` (torch.argsort). */
export function argsort(input: Tensor, dim = -1, opts?: { descending?: boolean; stable?: boolean }): Tensor {
  return opts?.stable === undefined
    ? aten.argsort(input, dim, opts?.descending ?? false)
    : aten.argsort(input, { stable: opts.stable, dim, descending: opts.descending ?? false });
}
/** Indices of the non-zero elements, one row per element (torch.nonzero). */
export function nonzero(input: Tensor): Tensor { return aten.nonzero(input); }
/** The elements where the boolean `mask` is true, as a 1-D tensor (torch.masked_select). */
export function maskedSelect(input: Tensor, mask: Tensor): Tensor { return aten.masked_select(input, mask); }
/** Einstein summation (torch.einsum): `einsum("ij,jk->ik", a, b)`. */
export function einsum(equation: string, ...operands: Tensor[]): Tensor { return aten.einsum(equation, operands); }
/** A complex tensor viewing a real one whose last dimension has size 2 (real, imaginary). */
export function viewAsComplex(input: Tensor): Tensor { return aten.view_as_complex(input); }
/** A real tensor viewing a complex one, with a last dimension of size 2 (real, imaginary). */
export function viewAsReal(input: Tensor): Tensor { return aten.view_as_real(input); }
