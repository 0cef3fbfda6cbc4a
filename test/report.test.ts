// `innerloop report`: the figures and report.html, checked for their contents (the data they
// show, labelled axes, legends, captions), from a hand-built analysis and timeline.

import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeReport, type ReportResult } from "../lib/analysis/report/html.js";
import { analysisFigures } from "../lib/analysis/report/figures.js";
import { renderSvg } from "../lib/analysis/report/render.js";
import { fitPowerLaw, firstTokenRatio } from "../lib/analysis/fits.js";
import type { AnalysisResult } from "../lib/analysis/result.js";
import { main } from "../lib/cli/main.js";

const L = 3;
const T = 16;

/** An analysis whose norms follow exact power laws ‖h^l_t‖ = (l+1)·t^(0.1·l) with a first-token outlier. */
function synthetic(scaleStep = 1, L = 3): AnalysisResult {
  const mat = (rows: number, f: (l: number, t: number) => number) => Array.from({ length: rows }, (_, l) => Array.from({ length: T }, (_, t) => f(l, t)));
  const hn = mat(L + 1, (l, t) => (t === 0 ? 50 * (l + 1) : (l + 1) * scaleStep * (t + 1) ** (0.1 * l)));
  return {
    windows: 7, seqLen: T, layers: L + 1, loss: 2.5 / scaleStep,
    hiddenNorm: { mean: hn, std: mat(L + 1, () => 0.1) },
    gradNorm: { mean: mat(L + 1, (l, t) => 1 / (t + 1 + l)), std: mat(L + 1, () => 0.01) },
    update: { normMean: mat(L, () => 1), cosMean: mat(L, (l) => 0.1 * (l + 1)) },
    updateParts: { attnNormMean: mat(L, () => 0.5), attnCosMean: mat(L, () => 0.05), mlpNormMean: mat(L, () => 0.7), mlpCosMean: mat(L, () => 0.2) },
    logitLens: { loss: [4.1, 3.5, 3.0, 2.5 / scaleStep] },
    paramGradNorm: [0.3, 0.2, 0.1],
    normFit: hn.map((r) => fitPowerLaw(r)),
    firstTokenRatio: hn.map((r) => firstTokenRatio(r)),
    massive: { k: 2, layers: hn.map((_, l) => ({ values: [9 + l, 8], dims: [17, 3], positions: [0, 4], windows: [0, 1] })), meanAbs: [0.5, 0.6, 0.7, 0.8] },
    attnFirstToken: { mean: mat(L, () => 0.4).map((r) => r.slice(0, 2)) },
    freqBuckets: { buckets: 2, types: [3, 40], occurrences: [50, 55], hiddenNormMean: hn.map((r) => [r[3]!, r[5]!]) },
  };
}

describe("innerloop report", () => {
  let dir: string;
  let res: ReportResult;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-report-"));
    fs.mkdirSync(path.join(dir, "analysis"));
    fs.writeFileSync(path.join(dir, "analysis", "analysis.json"), JSON.stringify(synthetic()));
    const snapshots = [1, 2, 3, 4].map((k) => ({ step: k * 10, ...synthetic(k) }));
    fs.writeFileSync(path.join(dir, "analysis", "timeline.json"), JSON.stringify({ snapshots }));
    const out: string[] = [];
    const code = await main(["report", "--run", dir], { stdout: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream });
    expect(code).toBe(0);
    expect(out.join("")).toMatch(/wrote \d+ figures/);
    res = await writeReport(dir);
  });

  it("writes every required figure as an SVG beside report.html", () => {
    const names = res.figures.map((f) => f.name);
    for (const n of [
      "norm_heatmap", "norm_vs_position", "grad_heatmap", "grad_vs_position", "update_cos_position", "update_cos_layer",
      "logit_lens", "param_grad", "timeline_norm", "timeline_grad", "timeline_cos", "timeline_logit_lens", "timeline_param_grad", "timeline_slope",
    ]) {
      expect(names).toContain(n);
      const svg = fs.readFileSync(path.join(dir, "report", `${n}.svg`), "utf8");
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    }
    const html = fs.readFileSync(path.join(dir, "report.html"), "utf8");
    for (const f of res.figures) {
      expect(html).toContain(`src="${f.file}"`);
      expect(f.caption.length).toBeGreaterThan(40);
    }
    expect((html.match(/<figcaption>/g) ?? []).length).toBe(res.figures.length);
  });

  it("labels axes and legends", () => {
    const svg = (n: string) => fs.readFileSync(path.join(dir, "report", `${n}.svg`), "utf8");
    const nvp = svg("norm_vs_position");
    expect(nvp).toContain("position t (1-based, log scale)");
    expect(nvp).toContain("mean ‖h^l_t‖ (log scale)");
    expect(nvp).toContain("layer l"); // legend title
    expect(svg("norm_heatmap")).toContain("mean ‖h‖ (log)"); // colour legend
    expect(svg("logit_lens")).toContain("cross-entropy (nats)");
    expect(svg("timeline_cos")).toContain("training step");
    expect(svg("update_cos_layer")).toContain("MLP part");
  });

  it("shows the data: fitted slopes in the caption, one heatmap cell per (layer, position), summary numbers", () => {
    const nvp = res.figures.find((f) => f.name === "norm_vs_position")!;
    // The synthetic norms follow t^(0.1·l) exactly over positions 2..T: the fits recover the slopes.
    for (let l = 0; l <= L; l++) expect(nvp.caption).toContain(`l=${l}: ${Number((0.1 * l).toPrecision(3))} (R² 1)`);
    const heat = fs.readFileSync(path.join(dir, "report", "norm_heatmap.svg"), "utf8");
    const cells = heat.match(/<path[^>]*aria-roledescription="rect mark"|<path aria-label="layer: [^"]*"/g) ?? [];
    expect(cells.length).toBe((L + 1) * T);
    const html = fs.readFileSync(path.join(dir, "report.html"), "utf8");
    expect(html).toContain("7 windows of T = 16 tokens, L = 3 blocks");
    expect(html).toContain("<td>9 (dim 17)</td>"); // largest activation of layer 0
    const heading = html.indexOf("Over training");
    expect(heading).toBeGreaterThan(0);
    expect(html).toContain("4 snapshots on a fixed set of held-out windows, from step 10 to step 40");
    // The first-token caption reports the outlier ratio of the last layer.
    const fr = firstTokenRatio(synthetic().hiddenNorm.mean[L]!)!;
    expect(res.figures.find((f) => f.name === "norm_heatmap")!.caption).toContain(`${Number(fr.toPrecision(3))}×`);
  });

  it("finds an analyze output in a sub-folder (analyze --out RUN/final), or takes --analysis FILE", async () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-report-"));
    fs.mkdirSync(path.join(run, "analysis"));
    fs.writeFileSync(path.join(run, "analysis", "timeline.json"), JSON.stringify({ snapshots: [{ step: 5, ...synthetic() }] }));
    fs.mkdirSync(path.join(run, "final"));
    fs.writeFileSync(path.join(run, "final", "analysis.json"), JSON.stringify({ ...synthetic(), windows: 9 }));
    await writeReport(run);
    expect(fs.readFileSync(path.join(run, "report.html"), "utf8")).toContain("<code>final/analysis.json</code>. 9 windows");
    const other = path.join(run, "other.json");
    fs.writeFileSync(other, JSON.stringify({ ...synthetic(), windows: 11 }));
    expect(await main(["report", "--run", run, "--analysis", other], { stdout: { write: () => true } as unknown as NodeJS.WritableStream })).toBe(0);
    expect(fs.readFileSync(path.join(run, "report.html"), "utf8")).toContain("11 windows");
  });

  it("draws the std over windows as bands, states the fit's range in the table header", () => {
    const r = synthetic();
    const spec = analysisFigures(r).find((f) => f.name === "norm_vs_position")!.spec as { layer: Array<{ mark: { type: string }; data: { values: Array<Record<string, number>> } }> };
    const band = spec.layer.find((l) => l.mark.type === "area")!;
    expect(band.data.values).toHaveLength((L + 1) * T);
    for (const v of band.data.values) {
      const mean = r.hiddenNorm.mean[v.layer!]![v.position! - 1]!;
      expect(v.upper).toBeCloseTo(mean + 0.1, 12);
      expect(v.lower).toBeCloseTo(mean - 0.1, 12);
    }
    const svg = fs.readFileSync(path.join(dir, "report", "norm_vs_position.svg"), "utf8");
    expect((svg.match(/aria-roledescription="area mark"/g) ?? []).length).toBe(L + 1);
    expect(res.figures.find((f) => f.name === "norm_vs_position")!.caption).toContain("± one std over the 7 windows");
    const html = fs.readFileSync(path.join(dir, "report.html"), "utf8");
    expect(html).toContain("<th>fit slope b (t = 2..16)</th><th>fit R² (t = 2..16)</th>");
    expect(res.figures.find((f) => f.name === "norm_vs_position")!.caption).toContain("over positions 2..16 (t = 1 left out)");
  });

  it("normalises heatmaps per layer when asked (--per-layer-heatmaps)", async () => {
    const r = synthetic();
    const heat = analysisFigures(r, { perLayer: true }).find((f) => f.name === "norm_heatmap")!;
    const vals = (heat.spec.data as { values: Array<Record<string, number>> }).values;
    for (let l = 0; l <= L; l++) {
      const row = vals.filter((v) => v.layer === l).map((v) => v.value!);
      expect(row.reduce((a, b) => a + b, 0) / row.length).toBeCloseTo(1, 12);
      // The pattern over position is kept: each cell is the raw value over the row's mean.
      const raw = r.hiddenNorm.mean[l]!;
      expect(row[5]! / row[3]!).toBeCloseTo(raw[5]! / raw[3]!, 12);
    }
    expect(heat.caption).toContain("per-layer normalisation");
    const run = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-report-"));
    fs.writeFileSync(path.join(run, "analysis.json"), JSON.stringify(r));
    expect(await main(["report", "--run", run, "--per-layer-heatmaps"], { stdout: { write: () => true } as unknown as NodeJS.WritableStream })).toBe(0);
    expect(fs.readFileSync(path.join(run, "report", "norm_heatmap.svg"), "utf8")).toContain("mean ‖h‖ (log) ÷ layer mean");
  });

  it.each([12, 24, 48])("keeps %i layers apart: a distinct colour for every layer, above 12 a different dash for neighbours", async (layers) => {
    const svg = await renderSvg(analysisFigures(synthetic(1, layers - 1)).find((f) => f.name === "norm_vs_position")!.spec);
    const lines = [...svg.matchAll(/<path aria-label="[^"]*layer l: (\d+)(?:; dash: \d+)?" role="graphics-symbol" aria-roledescription="line mark"[^>]*? stroke="([^"]+)"[^>]*>/g)];
    const byLayer = new Map<number, { stroke: string; dash: string }>();
    for (const m of lines) byLayer.set(Number(m[1]), { stroke: m[2]!, dash: /stroke-dasharray="([^"]*)"/.exec(m[0])?.[1] ?? "solid" });
    expect(byLayer.size).toBe(layers);
    expect(new Set([...byLayer.values()].map((v) => v.stroke)).size).toBe(layers);
    if (layers > 12) for (let l = 1; l < layers; l++) expect(byLayer.get(l)!.dash).not.toBe(byLayer.get(l - 1)!.dash);
    // The legend lists every layer.
    for (const l of [0, layers >> 1, layers - 1]) expect(svg).toContain(`>${l}</text>`);
  });

  it("refuses a folder without analysis with one clear error", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-report-"));
    const err: string[] = [];
    const code = await main(["report", "--run", empty], { stderr: { write: (s: string) => err.push(s) } as unknown as NodeJS.WritableStream });
    expect(code).toBe(1);
    expect(err.join("")).toMatch(/found neither analysis\.json/);
    expect(err.join("").trim().split("\n")).toHaveLength(1);
  });
});
