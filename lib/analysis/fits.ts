// Host-side summaries computed from the (L+1)×T means: norm-versus-position power-law fits and
// the first-token ratio; and the token-frequency buckets (docs/analysis.md).

import type { PowerLawFit } from "./result.js";

/**
 * Least-squares fit of log(norm) = intercept + slope·log(p) over 1-based positions p = 2..T (the
 * first position is left out: its norm is an outlier in trained models). Null when T < 3 or a norm
 * is not positive.
 */
export function fitPowerLaw(norms: readonly number[]): PowerLawFit | null {
  const T = norms.length;
  if (T < 3) return null;
  const xs: number[] = [];
  const ys: number[] = [];
  for (let t = 1; t < T; t++) {
    const v = norms[t]!;
    if (!(v > 0) || !Number.isFinite(v)) return null;
    xs.push(Math.log(t + 1));
    ys.push(Math.log(v));
  }
  const n = xs.length;
  const xm = xs.reduce((a, b) => a + b, 0) / n;
  const ym = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - xm;
    const dy = ys[i]! - ym;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  const slope = sxy / sxx;
  const intercept = ym - slope * xm;
  let ssr = 0;
  for (let i = 0; i < n; i++) {
    const r = ys[i]! - (intercept + slope * xs[i]!);
    ssr += r * r;
  }
  const r2 = syy > 0 ? 1 - ssr / syy : 1;
  return { slope, intercept, r2, firstPosition: 2, lastPosition: T };
}

/** ‖h‖ mean at the first position divided by the mean over positions 2..T; null when T < 2. */
export function firstTokenRatio(norms: readonly number[]): number | null {
  if (norms.length < 2) return null;
  let s = 0;
  for (let t = 1; t < norms.length; t++) s += norms[t]!;
  const rest = s / (norms.length - 1);
  return rest > 0 ? norms[0]! / rest : null;
}

/**
 * Frequency buckets of token types from their counts among the analysed input tokens. Types are
 * ordered by count (descending; ties by id); a type whose preceding cumulative count is C goes to
 * bucket floor(K·C / total) (capped at K−1), so bucket 0 holds the most frequent types covering
 * about the first 1/K of all occurrences. Types that never occur get −1.
 */
export function frequencyBuckets(counts: ArrayLike<number>, k: number): Int32Array {
  const v = counts.length;
  const order = Array.from({ length: v }, (_, i) => i).sort((a, b) => counts[b]! - counts[a]! || a - b);
  let total = 0;
  for (let i = 0; i < v; i++) total += counts[i]!;
  const bucket = new Int32Array(v).fill(-1);
  let before = 0;
  for (const id of order) {
    const c = counts[id]!;
    if (c === 0) break;
    bucket[id] = Math.min(k - 1, Math.floor((before * k) / total));
    before += c;
  }
  return bucket;
}
