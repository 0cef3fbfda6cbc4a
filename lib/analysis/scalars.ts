// An analysis's per-layer summary measures as flat scalars named for TensorBoard: one tag per
// measure and layer (layers zero-padded so that they sort), grouped by measure.

import type { AnalysisResult } from "./result.js";

const mean = (row: readonly number[]): number => row.reduce((a, b) => a + b, 0) / Math.max(1, row.length);

/**
 * analysis/loss; per layer l (0 = embeddings): analysis/norm_mean/l03 (mean over positions of
 * mean ‖h^l_t‖), analysis/grad_norm_mean/l03, analysis/norm_slope/l03 (power-law slope),
 * analysis/first_token_ratio/l03, analysis/logit_lens_loss/l03; per block l:
 * analysis/update_cos/b02 (mean cos(u^l_t, −∂ℓ/∂h^l_t)) and analysis/param_grad_norm/b02.
 * Values that are not finite (a fit that could not be made) are left out.
 */
export function snapshotScalars(r: AnalysisResult): Record<string, number> {
  const out: Record<string, number> = {};
  const put = (tag: string, v: number | null | undefined) => {
    if (v !== null && v !== undefined && Number.isFinite(v)) out[tag] = v;
  };
  const width = String(r.layers).length;
  const id = (p: string, l: number) => `${p}${String(l).padStart(width, "0")}`;
  put("analysis/loss", r.loss);
  for (let l = 0; l < r.layers; l++) {
    put(`analysis/norm_mean/${id("l", l)}`, mean(r.hiddenNorm.mean[l] ?? []));
    put(`analysis/grad_norm_mean/${id("l", l)}`, mean(r.gradNorm.mean[l] ?? []));
    put(`analysis/norm_slope/${id("l", l)}`, r.normFit[l]?.slope);
    put(`analysis/first_token_ratio/${id("l", l)}`, r.firstTokenRatio[l]);
    put(`analysis/logit_lens_loss/${id("l", l)}`, r.logitLens.loss[l]);
  }
  for (let l = 0; l < r.layers - 1; l++) {
    put(`analysis/update_cos/${id("b", l)}`, mean(r.update.cosMean[l] ?? []));
    put(`analysis/param_grad_norm/${id("b", l)}`, r.paramGradNorm[l]);
  }
  return out;
}
