// The report's figures as Vega-Lite specifications, built from analysis.json (one model state)
// and timeline.json (snapshots over training). Each figure has a file name, a title and a
// sentence saying what it shows; captions that depend on the data are written from it.

import type { AnalysisResult } from "../result.js";
import type { Snapshot } from "../files.js";
import type { VLSpec } from "./render.js";

export interface Figure {
  /** File name without extension. */
  name: string;
  title: string;
  caption: string;
  spec: VLSpec;
}

export const W = 560;
export const H = 300;

/** A figure of one chart of the standard size: one data table, one mark, its encoding. */
export function chart(name: string, title: string, caption: string, values: unknown[], mark: Record<string, unknown>, encoding: Record<string, unknown>): Figure {
  return { name, title, caption, spec: { title, width: W, height: H, data: { values }, mark, encoding } };
}

/** Axis tick values for positions 1..T: 1 and round multiples (1-2-5 steps), at most about `n`. */
function ticks(T: number, n = 12): number[] {
  if (T <= n) return Array.from({ length: T }, (_, i) => i + 1);
  let step = 1;
  for (let e = 0; step * n < T; e++) step = [1, 2, 5][e % 3]! * 10 ** Math.floor(e / 3);
  const out: number[] = [1];
  for (let p = step; p <= T; p += step) out.push(p);
  if (T - out[out.length - 1]! >= step / 2) out.push(T);
  return out;
}

/** Log-scale tick values spanning [lo, hi]: 1, 2, 5, 10, 20, 50, ... */
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  // Within about a decade, 1-2-5 leaves too few labels; use more mantissas there.
  const mant = Math.log10(hi / lo) < 1.3 ? [1, 1.5, 2, 3, 4, 5, 6, 7, 8] : [1, 2, 5];
  for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of mant) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(Number(v.toPrecision(3)));
    }
  }
  return out;
}

/** A log scale fitted to the data (no rounding out to whole decades), with readable ticks. */
function logDomain(vals: number[]): Record<string, unknown> {
  const pos = vals.filter((v) => v > 0 && Number.isFinite(v));
  if (pos.length === 0) return { type: "log" };
  const lo = Math.min(...pos) * 0.9;
  const hi = Math.max(...pos) * 1.1;
  return { type: "log", domain: [lo, hi], nice: false };
}

function logAxis(vals: number[]): Record<string, unknown> {
  const scale = logDomain(vals);
  const d = scale.domain as [number, number] | undefined;
  return d ? { scale, axis: { values: logTicks(d[0], d[1]) } } : { scale };
}

/**
 * Colour of a line per layer: the ordered "turbo" ramp, which keeps depth readable and spans more
 * hue than viridis; above 12 layers neighbouring layers also differ in dash pattern (layerDash), so
 * that lines stay apart at 48 layers. Two lines get two categorical colours.
 */
export const layerColor = (L1: number, title = "layer l") => ({
  field: "layer",
  type: "ordinal",
  title,
  scale: { scheme: L1 <= 2 ? "category10" : "turbo" },
  legend: { symbolType: "stroke", symbolStrokeWidth: 3, symbolOpacity: 1, columns: Math.ceil(L1 / 16), symbolLimit: 0 },
});

/** Dash patterns cycled over layers when there are more than 12 (see layerColor). */
export const DASHES: number[][] = [[1, 0], [6, 3], [2, 2]];

export function layerDash(L1: number): Record<string, unknown> {
  if (L1 <= 12) return {};
  return { strokeDash: { field: "dash", type: "nominal", scale: { domain: DASHES.map((_, i) => i), range: DASHES }, legend: null } };
}

export interface HeatmapOptions {
  /** Divide each row by its mean over positions, so that every layer's pattern over position shows. */
  perLayer?: boolean;
}

function heatmap(name: string, title: string, caption: string, m0: number[][], valueTitle: string, rowTitle: string, opts: HeatmapOptions = {}): Figure {
  const firstRow = 0;
  const m = opts.perLayer ? m0.map(normaliseRow) : m0;
  if (opts.perLayer) {
    valueTitle = `${valueTitle} ÷ layer mean`;
    caption = `${caption} Each layer's row is divided by its mean over positions (per-layer normalisation), so the colour shows each layer's pattern over position, not the differences between layers.`;
  }
  const rows = m.length;
  const T = m[0]?.length ?? 0;
  // Each cell overlaps its right neighbour slightly so that anti-aliasing leaves no seams.
  const overlap = T > 40 ? 0.3 : 0;
  const values: Array<Record<string, number>> = [];
  for (let l = 0; l < rows; l++) {
    for (let t = 0; t < T; t++) {
      const v = m[l]![t]!;
      if (v > 0 && Number.isFinite(v)) values.push({ layer: l + firstRow, position: t + 1, x0: t + 0.5, x1: t + 1.5 + overlap, value: v });
    }
  }
  const cellH = Math.max(14, Math.min(36, 300 / Math.max(rows, 1)));
  let lo = Infinity;
  let hi = 0;
  for (const v of values) {
    lo = Math.min(lo, v.value!);
    hi = Math.max(hi, v.value!);
  }
  return {
    name,
    title,
    caption,
    spec: {
      title,
      width: W,
      height: cellH * rows,
      data: { values },
      // Cells span [t − ½, t + ½] on a continuous axis.
      mark: { type: "rect", strokeWidth: 0, clip: true },
      encoding: {
        x: { field: "x0", type: "quantitative", title: "position t (1-based)", scale: { domain: [0.5, T + 0.5], nice: false, zero: false }, axis: { values: ticks(T), labelAngle: 0, grid: false } },
        x2: { field: "x1" },
        y: { field: "layer", type: "ordinal", title: rowTitle, sort: "descending", scale: { paddingInner: 0, paddingOuter: 0 } },
        color: { field: "value", type: "quantitative", title: valueTitle, scale: { type: "log", scheme: "viridis" }, legend: { gradientLength: Math.max(120, cellH * rows - 20), values: logTicks(lo, hi), titleLimit: 300 } },
        tooltip: [{ field: "layer" }, { field: "position" }, { field: "value", format: ".4g" }],
      },
    },
  };
}

/**
 * Lines of a per-(layer, position) quantity against position, one per layer, on log-log axes;
 * with `std`, a band of mean ± one std over windows around each line (its lower edge clipped to
 * the plot, as a log axis has no room below zero).
 */
function curvesLogLog(m: number[][], yTitle: string, std?: number[][], extra: Array<Record<string, unknown>> = []) {
  const values: Array<Record<string, number>> = [];
  let lo = Infinity;
  let hi = 0;
  m.forEach((row, l) =>
    row.forEach((v, t) => {
      if (v > 0 && Number.isFinite(v)) {
        values.push({ layer: l, dash: l % DASHES.length, position: t + 1, value: v });
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }),
  );
  const T = m[0]?.length ?? 1;
  const xTicks = logTicks(1, T).filter((v) => Number.isInteger(v));
  const x = { field: "position", type: "quantitative", title: "position t (1-based, log scale)", scale: { type: "log", domain: [1, T], nice: false }, axis: { values: xTicks } };
  const bands: Array<Record<string, unknown>> = [];
  if (std) {
    const floor = lo * 0.9;
    const band: Array<Record<string, number>> = [];
    for (const v of values) {
      const s = std[v.layer!]?.[v.position! - 1];
      if (s === undefined || !Number.isFinite(s)) continue;
      band.push({ layer: v.layer!, position: v.position!, lower: Math.max(floor, v.value! - s), upper: v.value! + s });
      hi = Math.max(hi, v.value! + s);
    }
    bands.push({
      data: { values: band },
      mark: { type: "area", opacity: 0.13, clip: true },
      encoding: { x: { ...x, title: null }, y: { field: "lower", type: "quantitative" }, y2: { field: "upper" }, color: layerColor(m.length) },
    });
  }
  return {
    width: W,
    height: H,
    layer: [
      ...bands,
      {
        data: { values },
        mark: { type: "line", point: { size: 18 }, strokeWidth: 1.8 },
        encoding: {
          x,
          y: { field: "value", type: "quantitative", title: yTitle, scale: { type: "log", domain: [lo * 0.9, hi * 1.1], nice: false }, axis: { values: logTicks(lo * 0.9, hi * 1.1) } },
          color: layerColor(m.length),
          ...layerDash(m.length),
        },
      },
      ...extra,
    ],
  };
}

/** A row divided by the mean of its positive finite entries (all-NaN rows stay as they are). */
function normaliseRow(row: readonly number[]): number[] {
  const ok = row.filter((v) => v > 0 && Number.isFinite(v));
  const mean = ok.reduce((a, b) => a + b, 0) / Math.max(1, ok.length);
  return mean > 0 ? row.map((v) => v / mean) : [...row];
}

function meanOverPositions(row: readonly number[], from = 0): number {
  let s = 0;
  for (let t = from; t < row.length; t++) s += row[t]!;
  return s / Math.max(1, row.length - from);
}

/** The positions the power-law fits cover, as "2..T" (the fit leaves out t = 1). */
export function fitRange(r: Pick<AnalysisResult, "normFit" | "seqLen">): string {
  const f = r.normFit.find((x) => x !== null && x !== undefined);
  return f ? `${f.firstPosition}..${f.lastPosition}` : `2..${r.seqLen}`;
}

const fmt = (v: number | null | undefined, d = 3): string => (v === null || v === undefined || !Number.isFinite(v) ? "n/a" : Number(v.toPrecision(d)).toString());

/** Figures for one analysis (the final state of the model). */
export function analysisFigures(r: AnalysisResult, opts: HeatmapOptions = {}): Figure[] {
  const L = r.layers - 1;
  const T = r.seqLen;
  const figs: Figure[] = [];
  const last = r.hiddenNorm.mean[L]!;
  figs.push(
    heatmap(
      "norm_heatmap",
      "Hidden-state norm ‖h^l_t‖ by layer and position",
      `Mean over ${r.windows} windows of the L2 norm of the residual stream h^l_t (layer 0 = embeddings, layer ${L} = last block's output, before the final LayerNorm), colour on a log scale. In the last layer the first position's norm is ${fmt(r.firstTokenRatio[L])}× the mean of the others.`,
      r.hiddenNorm.mean,
      "mean ‖h‖ (log)",
      "layer l",
      opts,
    ),
  );

  // Norm vs position with the power-law fits as dashed lines.
  const fitValues: Array<Record<string, number>> = [];
  r.normFit.forEach((f, l) => {
    if (!f) return;
    for (const p of [f.firstPosition, f.lastPosition]) fitValues.push({ layer: l, position: p, value: Math.exp(f.intercept) * p ** f.slope });
  });
  const slopes = r.normFit.map((f, l) => `l=${l}: ${fmt(f?.slope)} (R² ${fmt(f?.r2, 2)})`).join("; ");
  const nvp = curvesLogLog(r.hiddenNorm.mean, "mean ‖h^l_t‖ (log scale)", r.hiddenNorm.std, [
    {
      data: { values: fitValues },
      mark: { type: "line", strokeDash: [6, 4], strokeWidth: 1.5, opacity: 0.9 },
      encoding: { x: { field: "position", type: "quantitative" }, y: { field: "value", type: "quantitative" }, color: { field: "layer", type: "ordinal" } },
    },
  ]);
  figs.push({
    name: "norm_vs_position",
    title: "Hidden-state norm against position (log-log) with power-law fits",
    caption: `Solid: mean ‖h^l_t‖ per layer, shaded: ± one std over the ${r.windows} windows; dashed: least-squares fits of log‖h‖ = a + b·log t over positions ${fitRange(r)} (t = 1 left out). Slopes b: ${slopes}.`,
    spec: { title: "Hidden-state norm against position, log-log, with power-law fits", ...nvp },
  });

  figs.push(
    heatmap(
      "grad_heatmap",
      "Gradient norm ‖∂ℓ/∂h^l_t‖ by layer and position",
      "Mean over windows of the norm of the gradient of the window's summed loss ℓ with respect to h^l_t (log colour). Late positions have fewer later tokens depending on them, so their gradients come mostly from their own next-token loss.",
      r.gradNorm.mean,
      "mean ‖∂ℓ/∂h‖ (log)",
      "layer l",
      opts,
    ),
  );
  figs.push({
    name: "grad_vs_position",
    title: "Gradient norm against position (log-log)",
    caption: "Mean ‖∂ℓ/∂h^l_t‖ per layer against position (shaded: ± one std over windows): how strongly the summed loss of the window responds to a change of the representation h^l_t, i.e. the size of the inner problem's gradient at each layer and position.",
    spec: { title: "Gradient norm ‖∂ℓ/∂h^l_t‖ against position, log-log", ...curvesLogLog(r.gradNorm.mean, "mean ‖∂ℓ/∂h^l_t‖ (log scale)", r.gradNorm.std) },
  });

  // Update / negative-gradient cosine against position, per block.
  const cosValues: Array<Record<string, number>> = [];
  r.update.cosMean.forEach((row, l) => row.forEach((v, t) => cosValues.push({ layer: l, dash: l % DASHES.length, position: t + 1, value: v })));
  const cosLayer = r.update.cosMean.map((row) => meanOverPositions(row));
  figs.push({
    name: "update_cos_position",
    title: "Cosine of each block's update with the negative gradient, by position",
    caption: `mean cos(u^l_t, −∂ℓ/∂h^l_t) where u^l = h^(l+1) − h^l is block l's update; above 0 the block moves h^l_t down the loss. Averaged over positions: ${cosLayer.map((c, l) => `block ${l}: ${fmt(c)}`).join(", ")}.`,
    spec: {
      title: "cos(update of block l, −gradient) by position",
      width: W,
      height: H,
      layer: [
        { data: { values: [{ y: 0 }] }, mark: { type: "rule", color: "#888", strokeDash: [3, 3] }, encoding: { y: { field: "y", type: "quantitative" } } },
        {
          data: { values: cosValues },
          mark: { type: "line", point: { size: 18 }, strokeWidth: 1.8 },
          encoding: {
            x: { field: "position", type: "quantitative", title: "position t (1-based)", scale: { domain: [1, T] } },
            y: { field: "value", type: "quantitative", title: "mean cos(u^l_t, −∂ℓ/∂h^l_t)" },
            color: layerColor(L, "block l"),
            ...layerDash(L),
          },
        },
      ],
    },
  });

  // Per-block cosine: whole update and its attention and MLP parts.
  const parts: Array<Record<string, string | number>> = [];
  for (let l = 0; l < L; l++) {
    parts.push({ block: l, part: "whole update", value: cosLayer[l]! });
    parts.push({ block: l, part: "attention part", value: meanOverPositions(r.updateParts.attnCosMean[l]!) });
    parts.push({ block: l, part: "MLP part", value: meanOverPositions(r.updateParts.mlpCosMean[l]!) });
  }
  figs.push({
    name: "update_cos_layer",
    title: "Update/gradient cosine per block, and its attention and MLP parts",
    caption: "Per block, the mean over positions of cos(x, −∂ℓ/∂h^l_t) for the whole update u^l and for its attention and MLP parts (both measured against the gradient at the block's input h^l).",
    spec: {
      title: "cos(x, −∂ℓ/∂h^l) per block: whole update, attention part, MLP part",
      width: W,
      height: H,
      data: { values: parts },
      mark: { type: "bar" },
      encoding: {
        x: { field: "block", type: "ordinal", title: "block l", axis: { labelAngle: 0 } },
        xOffset: { field: "part", sort: ["whole update", "attention part", "MLP part"] },
        y: { field: "value", type: "quantitative", title: "mean cosine with −gradient" },
        color: { field: "part", type: "nominal", title: "part", sort: ["whole update", "attention part", "MLP part"], scale: { range: ["#4c78a8", "#f58518", "#54a24b"] } },
      },
    },
  });

  const lens = r.logitLens.loss.map((v, l) => ({ layer: l, value: v }));
  figs.push({
    name: "logit_lens",
    title: "Logit-lens loss per layer",
    caption: `Mean cross-entropy (nats) when h^l is decoded with the final LayerNorm and unembedding; the last layer (${L}) is the model's loss ${fmt(r.loss, 4)}. A falling curve means every block brings the representation closer to the next token.`,
    spec: {
      title: "Logit-lens loss: decode h^l with the final norm and unembedding",
      width: W,
      height: H,
      data: { values: lens },
      mark: { type: "line", point: { size: 60 }, strokeWidth: 2 },
      encoding: {
        x: { field: "layer", type: "ordinal", title: "layer l (0 = embeddings)", axis: { labelAngle: 0 } },
        y: { field: "value", type: "quantitative", title: "cross-entropy (nats)", scale: { zero: false } },
      },
    },
  });

  figs.push({
    name: "param_grad",
    title: "Parameter-gradient norm per block",
    caption: "Norm of the gradient of the mean loss over all analysed targets with respect to all parameters of block l (the outer loop's step direction, per block).",
    spec: {
      title: "‖∇ loss‖ over the parameters of each block",
      width: W,
      height: H,
      data: { values: r.paramGradNorm.map((v, l) => ({ block: l, value: v })) },
      mark: { type: "bar", color: "#4c78a8" },
      encoding: {
        x: { field: "block", type: "ordinal", title: "block l", axis: { labelAngle: 0 } },
        y: { field: "value", type: "quantitative", title: "parameter-gradient norm" },
      },
    },
  });

  if (r.attnFirstToken) {
    const vals: Array<Record<string, number>> = [];
    r.attnFirstToken.mean.forEach((row, l) => row.forEach((v, h) => vals.push({ layer: l, head: h, value: v })));
    figs.push({
      name: "attn_first_token",
      title: "Attention mass on the first token per layer and head",
      caption: "Mean attention probability that queries at positions 2..T give to the first token (an 'attention sink' shows as a value near 1).",
      spec: {
        title: "Attention probability on the first token",
        width: Math.min(W, 60 * (r.attnFirstToken.mean[0]?.length ?? 1)),
        height: Math.max(80, 36 * L),
        data: { values: vals },
        layer: [
          {
            mark: "rect",
            encoding: {
              x: { field: "head", type: "ordinal", title: "head", axis: { labelAngle: 0 } },
              y: { field: "layer", type: "ordinal", title: "block l", sort: "descending" },
              color: { field: "value", type: "quantitative", title: "mass", scale: { domain: [0, 1], scheme: "blues" } },
            },
          },
          {
            mark: { type: "text", fontSize: 11 },
            encoding: {
              x: { field: "head", type: "ordinal" },
              y: { field: "layer", type: "ordinal", sort: "descending" },
              text: { field: "value", type: "quantitative", format: ".2f" },
              color: { condition: { test: "datum.value > 0.5", value: "white" }, value: "black" },
            },
          },
        ],
      },
    });
  }

  const ratio = r.massive.layers.map((m, l) => ({ layer: l, kind: "largest |h|", value: m.values[0] ?? 0 }));
  r.massive.meanAbs.forEach((v, l) => ratio.push({ layer: l, kind: "mean |h|", value: v }));
  const topDims = r.massive.layers.map((m, l) => `l=${l}: ${fmt(m.values[0])} in dim ${m.dims[0]}`).join("; ");
  figs.push({
    name: "massive_activations",
    title: "Largest activation magnitude per layer",
    caption: `The largest |h^l_{t,d}| over all analysed windows, positions and dimensions, against the mean |h^l_{t,d}| (log scale). Largest: ${topDims}.`,
    spec: {
      title: "Largest and mean |activation| per layer",
      width: W,
      height: H,
      data: { values: ratio },
      mark: { type: "line", point: { size: 60 }, strokeWidth: 2 },
      encoding: {
        x: { field: "layer", type: "ordinal", title: "layer l", axis: { labelAngle: 0 } },
        y: { field: "value", type: "quantitative", title: "|h| (log scale)", ...logAxis(ratio.map((v) => v.value)) },
        color: { field: "kind", type: "nominal", title: "statistic" },
      },
    },
  });

  const fb: Array<Record<string, number | string>> = [];
  r.freqBuckets.hiddenNormMean.forEach((row, l) =>
    row.forEach((v, k) => {
      const kind = k === 0 ? "most frequent, " : k === r.freqBuckets.buckets - 1 ? "rarest, " : "";
      const n = r.freqBuckets.types[k];
      if (v !== null) fb.push({ layer: l, bucket: `${k} (${kind}${n} type${n === 1 ? "" : "s"})`, value: v });
    }),
  );
  figs.push({
    name: "norm_by_frequency",
    title: "Hidden-state norm by token-frequency bucket",
    caption: `Mean ‖h^l_t‖ (positions 2..T) for input tokens in ${r.freqBuckets.buckets} frequency buckets, each covering about an equal share of the analysed token occurrences (bucket 0: the most frequent types).`,
    spec: {
      title: "Mean ‖h^l_t‖ by frequency bucket of the input token",
      width: W,
      height: H,
      data: { values: fb },
      mark: { type: "line", point: { size: 50 }, strokeWidth: 2 },
      encoding: {
        x: { field: "layer", type: "ordinal", title: "layer l", axis: { labelAngle: 0 } },
        y: { field: "value", type: "quantitative", title: "mean ‖h‖", scale: { zero: false } },
        color: { field: "bucket", type: "ordinal", title: "frequency bucket", scale: { scheme: "plasma" }, legend: { labelLimit: 320 } },
      },
    },
  });
  return figs;
}

/** A per-step line chart with one line per layer. */
function overSteps(name: string, title: string, caption: string, snaps: readonly Snapshot[], value: (s: Snapshot, l: number) => number | null, rows: number, yTitle: string, logY: boolean, rowTitle = "layer l"): Figure {
  const values: Array<Record<string, number>> = [];
  for (const s of snaps) {
    for (let l = 0; l < rows; l++) {
      const v = value(s, l);
      if (v !== null && Number.isFinite(v) && (!logY || v > 0)) values.push({ step: s.step, layer: l, dash: l % DASHES.length, value: v });
    }
  }
  return chart(name, title, caption, values, { type: "line", point: snaps.length <= 40 ? { size: 16 } : false, strokeWidth: 1.8 }, {
    x: { field: "step", type: "quantitative", title: "training step" },
    y: { field: "value", type: "quantitative", title: yTitle, ...(logY ? logAxis(values.map((v) => v.value!)) : { scale: { zero: false } }) },
    color: layerColor(rows, rowTitle),
    ...layerDash(rows),
  });
}

/** Figures of how the measures evolve over training. */
export function timelineFigures(snaps: readonly Snapshot[]): Figure[] {
  if (snaps.length === 0) return [];
  const s0 = snaps[snaps.length - 1]!;
  const L1 = s0.layers;
  const L = L1 - 1;
  const figs: Figure[] = [];
  figs.push(
    overSteps("timeline_norm", "Mean hidden-state norm per layer over training", `Mean over positions of mean ‖h^l_t‖ on the fixed held-out windows (${s0.windows} windows of ${s0.seqLen} tokens), at each snapshot.`, snaps, (s, l) => meanOverPositions(s.hiddenNorm.mean[l] ?? []), L1, "mean ‖h^l‖ (log scale)", true),
  );
  figs.push(
    overSteps("timeline_slope", "Power-law slope of norm against position over training", `Slope b of the fit log‖h^l_t‖ = a + b·log t (positions ${fitRange(s0)}, t = 1 left out) per layer: how strongly norms grow (b > 0) or shrink with position as training proceeds.`, snaps, (s, l) => s.normFit[l]?.slope ?? null, L1, "slope b", false),
  );
  figs.push(
    overSteps("timeline_first_token", "First-token norm ratio over training", "Mean ‖h^l‖ at the first position divided by the mean over the other positions, per layer; a rising ratio is the first-token outlier forming.", snaps, (s, l) => s.firstTokenRatio[l] ?? null, L1, "first-token ratio (log scale)", true),
  );
  figs.push(
    overSteps("timeline_grad", "Mean gradient norm per layer over training", "Mean over positions of mean ‖∂ℓ/∂h^l_t‖ at each snapshot.", snaps, (s, l) => meanOverPositions(s.gradNorm.mean[l] ?? []), L1, "mean ‖∂ℓ/∂h^l‖ (log scale)", true),
  );
  figs.push(
    overSteps("timeline_cos", "Update/gradient cosine per block over training", "Mean over positions of cos(u^l_t, −∂ℓ/∂h^l_t) for each block at each snapshot: whether, and how much, each block's update points down the loss.", snaps, (s, l) => meanOverPositions(s.update.cosMean[l] ?? []), L, "mean cos(u^l, −∂ℓ/∂h^l)", false, "block l"),
  );
  figs.push(
    overSteps("timeline_logit_lens", "Logit-lens loss per layer over training", `Cross-entropy when h^l is decoded with the final norm and unembedding; layer ${L} is the model's held-out loss.`, snaps, (s, l) => s.logitLens.loss[l] ?? null, L1, "cross-entropy (nats)", false),
  );
  figs.push(
    overSteps("timeline_param_grad", "Parameter-gradient norm per block over training", "Norm of the gradient of the held-out mean loss with respect to each block's parameters, at each snapshot.", snaps, (s, l) => s.paramGradNorm[l] ?? null, L, "parameter-gradient norm (log scale)", true, "block l"),
  );
  // Norm profile of the last layer over position, one line per snapshot (a few of them).
  const pick = pickSnapshots(snaps, 6);
  const values: Array<Record<string, number>> = [];
  for (const s of pick) s.hiddenNorm.mean[L]?.forEach((v, t) => v > 0 && values.push({ step: s.step, position: t + 1, value: v }));
  const T = s0.seqLen;
  figs.push({
    name: "timeline_profile",
    title: `Norm against position in the last layer at several steps`,
    caption: `Mean ‖h^${L}_t‖ against position (log-log) at ${pick.length} snapshots from the first to the last: how the positional norm pattern forms during training.`,
    spec: {
      title: `‖h^${L}_t‖ against position at several training steps (log-log)`,
      width: W,
      height: H,
      data: { values },
      mark: { type: "line", strokeWidth: 1.8 },
      encoding: {
        x: { field: "position", type: "quantitative", title: "position t (1-based, log scale)", scale: { type: "log", domain: [1, T], nice: false }, axis: { values: logTicks(1, T).filter((v) => Number.isInteger(v)) } },
        y: { field: "value", type: "quantitative", title: `mean ‖h^${L}_t‖ (log scale)`, ...logAxis(values.map((v) => v.value!)) },
        color: { field: "step", type: "ordinal", title: "step", scale: { scheme: "viridis" } },
      },
    },
  });
  return figs;
}

function pickSnapshots(snaps: readonly Snapshot[], n: number): Snapshot[] {
  if (snaps.length <= n) return [...snaps];
  const out: Snapshot[] = [];
  for (let i = 0; i < n; i++) out.push(snaps[Math.round((i * (snaps.length - 1)) / (n - 1))]!);
  return out;
}
