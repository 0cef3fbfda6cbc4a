// Figures that overlay several inputs (training runs and analyses of pretrained checkpoints).
// Models of different depth compare on relative depth: layer l of a model with L blocks sits at
// l/L (0 = embeddings, 1 = the last block's output) and block l, which maps h^l to h^(l+1), at
// (l + ½)/L. Positions stay in tokens, so inputs of different T share the position axis.

import { chart, fitRange, W, type Figure } from "./figures.js";
import type { CompareInput } from "./inputs.js";

const inputColor = (labels: readonly string[]) => ({
  field: "input",
  type: "nominal",
  title: "input",
  sort: labels,
  scale: { domain: labels, scheme: labels.length <= 10 ? "category10" : "category20" },
  legend: { labelLimit: 320, symbolType: "stroke", symbolStrokeWidth: 3 },
});

const mean = (row: readonly number[]): number => row.reduce((a, b) => a + b, 0) / Math.max(1, row.length);
const finite = (v: number | null | undefined): v is number => v !== null && v !== undefined && Number.isFinite(v);

/** The relative depths at which norm-against-position panels are drawn. */
export const PANEL_DEPTHS = [0, 0.25, 0.5, 0.75, 1];

/** A line chart of one per-layer value against relative depth, one line per input. */
function perDepth(name: string, title: string, caption: string, inputs: readonly CompareInput[], value: (a: NonNullable<CompareInput["analysis"]>, l: number) => number | null | undefined, opts: { blocks?: boolean; yTitle: string; logY?: boolean }): Figure {
  const values: Array<Record<string, string | number>> = [];
  for (const inp of inputs) {
    const a = inp.analysis;
    if (!a) continue;
    const L = a.layers - 1;
    const rows = opts.blocks ? L : L + 1;
    for (let l = 0; l < rows; l++) {
      const v = value(a, l);
      if (!finite(v) || (opts.logY && v <= 0)) continue;
      values.push({ input: inp.label, layer: l, depth: opts.blocks ? (l + 0.5) / L : l / L, value: v });
    }
  }
  const labels = inputs.map((i) => i.label);
  return chart(name, title, caption, values, { type: "line", point: { size: 40 }, strokeWidth: 2 }, {
    x: { field: "depth", type: "quantitative", title: opts.blocks ? "relative depth of block l, (l + ½)/L" : "relative depth l/L (0 = embeddings, 1 = last block)", scale: { domain: [0, 1] } },
    y: { field: "value", type: "quantitative", title: opts.yTitle, scale: opts.logY ? { type: "log" } : { zero: false } },
    color: inputColor(labels),
    tooltip: [{ field: "input" }, { field: "layer" }, { field: "value", format: ".4g" }],
  });
}

/** Figures comparing the final analyses of the inputs (those that have one). */
export function compareAnalysisFigures(inputs: readonly CompareInput[]): Figure[] {
  const withA = inputs.filter((i) => i.analysis);
  if (withA.length === 0) return [];
  const labels = inputs.map((i) => i.label);
  const figs: Figure[] = [];

  const nvp: Array<Record<string, string | number>> = [];
  for (const inp of withA) {
    const a = inp.analysis!;
    const L = a.layers - 1;
    for (const d of PANEL_DEPTHS) {
      const l = Math.round(d * L);
      a.hiddenNorm.mean[l]?.forEach((v, t) => {
        if (v > 0 && Number.isFinite(v)) nvp.push({ input: inp.label, panel: `l/L ≈ ${d}`, layer: l, position: t + 1, value: v });
      });
    }
  }
  figs.push({
    name: "compare_norm_vs_position",
    title: "Hidden-state norm against position at matching relative depths",
    caption: `Mean ‖h^l_t‖ against position (log-log), one panel per relative depth l/L ∈ {${PANEL_DEPTHS.join(", ")}} (for each input the layer nearest to it: l = round(d·L)), one colour per input. Norms are in each model's own units; the shapes (slopes) compare across models.`,
    spec: {
      title: "‖h^l_t‖ against position at relative depths l/L",
      data: { values: nvp },
      facet: { row: { field: "panel", type: "nominal", title: "relative depth", sort: PANEL_DEPTHS.map((d) => `l/L ≈ ${d}`) } },
      resolve: { scale: { y: "independent" } },
      spec: {
        width: W,
        height: 150,
        mark: { type: "line", strokeWidth: 1.8 },
        encoding: {
          x: { field: "position", type: "quantitative", title: "position t (1-based, log scale)", scale: { type: "log", nice: false } },
          y: { field: "value", type: "quantitative", title: "mean ‖h^l_t‖ (log)", scale: { type: "log", nice: false } },
          color: inputColor(labels),
          tooltip: [{ field: "input" }, { field: "layer" }, { field: "position" }, { field: "value", format: ".4g" }],
        },
      },
    },
  });
  const ranges = [...new Set(withA.map((i) => fitRange(i.analysis!)))].join(", ");
  figs.push(
    perDepth("compare_slope", "Power-law slope of norm against position per relative depth", `Slope b of the least-squares fit log‖h^l_t‖ = a + b·log t over positions ${ranges} (t = 1 left out), per layer at relative depth l/L.`, withA, (a, l) => a.normFit[l]?.slope, { yTitle: "slope b" }),
  );
  figs.push(
    perDepth("compare_first_token", "First-token norm ratio per relative depth", "Mean ‖h^l‖ at the first position divided by the mean over the other positions, per layer at relative depth l/L (log scale): where in depth each model's first-token outlier forms.", withA, (a, l) => a.firstTokenRatio[l], { yTitle: "first-token ratio (log scale)", logY: true }),
  );
  figs.push(
    perDepth("compare_update_cos", "Update/gradient cosine per relative depth", "Mean over positions of cos(u^l_t, −∂ℓ/∂h^l_t), u^l = h^(l+1) − h^l, for block l at relative depth (l + ½)/L: above 0 the block moves the representation down the loss.", withA, (a, l) => mean(a.update.cosMean[l] ?? []), { blocks: true, yTitle: "mean cos(u^l, −∂ℓ/∂h^l)" }),
  );
  figs.push(
    perDepth("compare_logit_lens", "Logit-lens loss per relative depth", "Cross-entropy (nats) when h^l is decoded with the model's final norm and unembedding, per layer at relative depth l/L; at 1 it is the model's loss. Models with different vocabularies have losses on different scales.", withA, (a, l) => a.logitLens.loss[l], { yTitle: "cross-entropy (nats)" }),
  );
  return figs;
}

/** Line chart of per-step values of the training runs, one colour per run. */
function overSteps(name: string, title: string, caption: string, labels: readonly string[], values: Array<Record<string, string | number>>, yTitle: string, extra: Record<string, unknown> = {}): Figure {
  return chart(name, title, caption, values, { type: "line", strokeWidth: 1.8, ...extra }, {
    x: { field: "step", type: "quantitative", title: "training step" },
    y: { field: "value", type: "quantitative", title: yTitle, scale: { zero: false } },
    color: inputColor(labels),
    ...("series" in (values[0] ?? {}) ? { strokeDash: { field: "series", type: "nominal", title: "series" } } : {}),
  });
}

/** Most points a per-step curve draws; longer runs are averaged over consecutive steps. */
export const MAX_CURVE_POINTS = 2000;

/** Rows averaged in bins of `k` consecutive rows (k = ceil(n / max)), each at its bin's last step. */
export function binMeans(rows: ReadonlyArray<{ step: number; value: number }>, max = MAX_CURVE_POINTS): { k: number; points: Array<{ step: number; value: number }> } {
  const k = Math.max(1, Math.ceil(rows.length / max));
  if (k === 1) return { k, points: [...rows] };
  const points: Array<{ step: number; value: number }> = [];
  for (let i = 0; i < rows.length; i += k) {
    const bin = rows.slice(i, i + k);
    points.push({ step: bin[bin.length - 1]!.step, value: bin.reduce((a, r) => a + r.value, 0) / bin.length });
  }
  return { k, points };
}

/** Timelines of the training runs on one step axis. */
export function compareTimelineFigures(inputs: readonly CompareInput[]): Figure[] {
  const runs = inputs.filter((i) => i.kind === "training run");
  if (runs.length === 0) return [];
  const labels = inputs.map((i) => i.label);
  const figs: Figure[] = [];
  const loss: Array<Record<string, string | number>> = [];
  let binned = 1;
  for (const r of runs) {
    const { k, points } = binMeans(r.steps.filter((s) => finite(s.loss)).map((s) => ({ step: s.step, value: s.loss })));
    binned = Math.max(binned, k);
    for (const p of points) loss.push({ input: r.label, series: "training loss", ...p });
    for (const e of r.evals) if (finite(e.valLoss)) loss.push({ input: r.label, series: "validation loss", step: e.step, value: e.valLoss });
  }
  if (loss.length > 0) {
    figs.push(overSteps("compare_loss", "Training and validation loss of the runs", `Mean training loss of each optimizer step (solid${binned > 1 ? `; for runs of more than ${MAX_CURVE_POINTS} steps averaged over up to ${binned} consecutive steps` : ""}) and validation loss (dashed), from each run's metrics.jsonl, in nats.`, labels, loss, "cross-entropy (nats)"));
  }
  const withT = runs.filter((r) => r.timeline.length > 0);
  if (withT.length > 0) {
    const held: Array<Record<string, string | number>> = [];
    const slope: Array<Record<string, string | number>> = [];
    const cos: Array<Record<string, string | number>> = [];
    for (const r of withT) {
      for (const s of r.timeline) {
        const L = s.layers - 1;
        if (finite(s.loss)) held.push({ input: r.label, step: s.step, value: s.loss });
        const b = s.normFit[L]?.slope;
        if (finite(b)) slope.push({ input: r.label, step: s.step, value: b });
        const c = mean(s.update.cosMean.map((row) => mean(row)));
        if (finite(c)) cos.push({ input: r.label, step: s.step, value: c });
      }
    }
    const pt = { point: { size: 20 } };
    figs.push(overSteps("compare_timeline_loss", "Held-out loss at the analysis snapshots", "Mean cross-entropy on each run's fixed held-out analysis windows at every snapshot.", labels, held, "held-out cross-entropy (nats)", pt));
    figs.push(overSteps("compare_timeline_slope", "Last layer's power-law slope over training", "Slope b of log‖h^L_t‖ = a + b·log t (t = 1 left out) in the last layer at every snapshot of each run.", labels, slope, "slope b (last layer)", pt));
    figs.push(overSteps("compare_timeline_cos", "Mean update/gradient cosine over training", "cos(u^l_t, −∂ℓ/∂h^l_t) averaged over positions and blocks at every snapshot of each run.", labels, cos, "mean cos(u, −∂ℓ/∂h)", pt));
  }
  return figs;
}
