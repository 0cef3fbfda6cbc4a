// Numeric comparison against reference values (PyTorch, float64) with dtype-aware tolerances.
import { expect } from "vitest";
import { Tensor } from "../../lib/torch/index.js";
import type { AnalysisResult } from "../../lib/analysis/result.js";

export interface Tolerance {
  rtol: number;
  /** Absolute tolerance, relative to max(1, max |expected|), so reductions of large values pass. */
  atol: number;
}

/** Tolerances for a result of the given dtype computed from float64 references. */
export function toleranceFor(dtype: string): Tolerance {
  switch (dtype) {
    case "float64":
      return { rtol: 1e-9, atol: 1e-12 };
    case "float32":
      return { rtol: 1e-5, atol: 1e-5 };
    case "float16":
      return { rtol: 2e-3, atol: 1e-3 };
    case "bfloat16":
      return { rtol: 1e-2, atol: 1e-2 };
    default:
      return { rtol: 0, atol: 0 };
  }
}

/** A JSON-encoded number: non-finite values are strings ("inf", "-inf", "nan"); bools count as 0/1. */
export function decodeNumber(v: number | string | boolean): number {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") return v;
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  if (v === "nan") return NaN;
  throw new Error(`bad encoded number ${JSON.stringify(v)}`);
}

/** Flat JS numbers of a tensor (any dtype, any device): int64 BigInts and bools become numbers. */
export function flatValues(t: Tensor): number[] {
  const ta = t.toTypedArray() as ArrayLike<number | bigint | boolean>;
  return Array.from(ta, (v) => Number(v));
}

/**
 * Element-wise |got - expected| <= atol*scale + rtol*|expected|, NaN matches NaN, infinities match
 * exactly. Reports the first few mismatches with their flat index.
 */
export function expectClose(
  got: Tensor | ArrayLike<number>,
  expected: ArrayLike<number | string | boolean>,
  tol: Tolerance = toleranceFor("float32"),
  label = "",
): void {
  const g = got instanceof Tensor ? flatValues(got) : Array.from(got, Number);
  const e = Array.from(expected, decodeNumber);
  expect(g.length, `${label}: number of elements`).toBe(e.length);
  let scale = 1;
  for (const v of e) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const bad: string[] = [];
  for (let i = 0; i < e.length; i++) {
    const ev = e[i]!;
    const gv = g[i]!;
    let ok: boolean;
    if (Number.isNaN(ev)) ok = Number.isNaN(gv);
    else if (!Number.isFinite(ev)) ok = gv === ev;
    else ok = Math.abs(gv - ev) <= tol.atol * scale + tol.rtol * Math.abs(ev);
    if (!ok && bad.length < 5) bad.push(`[${i}] got ${gv} expected ${ev}`);
  }
  expect(bad, `${label}: values differ (rtol ${tol.rtol}, atol ${tol.atol}*${scale})`).toEqual([]);
}

/**
 * Compares nested arrays of numbers (an analysis.json field) with a reference: |a - b| <= rel *
 * max(|b|, floor) at every position, where floor is the field's scale below which the error is
 * measured absolutely; null matches null only. Throws naming the first position that differs.
 */
export function expectNestedClose(actual: unknown, want: unknown, where: string, floor: number, rel: number): void {
  if (want === null) {
    expect(actual, where).toBeNull();
    return;
  }
  if (Array.isArray(want)) {
    expect(Array.isArray(actual), `${where} is an array`).toBe(true);
    expect((actual as unknown[]).length, `${where} length`).toBe(want.length);
    want.forEach((w, i) => expectNestedClose((actual as unknown[])[i], w, `${where}[${i}]`, floor, rel));
    return;
  }
  expect(typeof actual, where).toBe("number");
  const a = actual as number;
  const b = want as number;
  const tol = rel * Math.max(Math.abs(b), floor);
  if (!(Math.abs(a - b) <= tol)) throw new Error(`${where}: got ${a}, want ${b} (|diff| ${Math.abs(a - b)} > ${tol})`);
}

/** Largest |value| in nested arrays of numbers. */
export function nestedMaxAbs(x: unknown): number {
  if (Array.isArray(x)) return Math.max(0, ...x.map(nestedMaxAbs));
  return typeof x === "number" ? Math.abs(x) : 0;
}

/**
 * The DESIGN.md table's fields of an analysis result against a reference, within `rel` relative:
 * cosines with an absolute floor at their natural scale (1 x 1e-2), standard deviations at 1e-2 of
 * the field's largest value, everything else purely relative.
 */
export function expectCoreAnalysisClose(got: AnalysisResult, want: AnalysisResult, rel: number): void {
  const close = (a: unknown, w: unknown, where: string, floor: number) => expectNestedClose(a, w, where, floor, rel);
  close(got.loss, want.loss, "loss", 0);
  close(got.hiddenNorm.mean, want.hiddenNorm.mean, "hiddenNorm.mean", 0);
  close(got.hiddenNorm.std, want.hiddenNorm.std, "hiddenNorm.std", nestedMaxAbs(want.hiddenNorm.std) * 1e-2);
  close(got.gradNorm.mean, want.gradNorm.mean, "gradNorm.mean", 0);
  close(got.update.normMean, want.update.normMean, "update.normMean", 0);
  close(got.update.cosMean, want.update.cosMean, "update.cosMean", 1e-2);
  close(got.logitLens.loss, want.logitLens.loss, "logitLens.loss", 0);
  close(got.paramGradNorm, want.paramGradNorm, "paramGradNorm", 0);
}

/** max |got - want| <= rel * max |want|: agreement relative to the logits' scale. */
export function expectLogits(got: Tensor, want: number[], rel: number, label: string): void {
  const g = Array.from(got.float().cpu().toTypedArray() as Float32Array);
  expect(g.length, `${label}: element count`).toBe(want.length);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    worst = Math.max(worst, Math.abs(g[i]! - want[i]!));
  }
  expect(worst / scale, `${label}: max |diff| ${worst} vs scale ${scale}`).toBeLessThanOrEqual(rel);
}
