// `innerloop report`: renders the figures of a run (or an analyze output folder) to SVG files in
// DIR/report/ and writes DIR/report.html beside them, with a summary table and a sentence under
// each figure.

import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "../../util/atomic.js";
import { readTimeline, type Snapshot } from "../files.js";
import type { AnalysisResult } from "../result.js";
import { analysisFigures, fitRange, timelineFigures, type Figure } from "./figures.js";
import { renderSvg } from "./render.js";

export const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
export const num = (v: number | null | undefined, d = 4): string => (v === null || v === undefined || !Number.isFinite(v) ? "n/a" : Number(v.toPrecision(d)).toString());

/**
 * Where the final analysis of DIR is: the file given, else DIR/analysis.json, DIR/analysis/analysis.json,
 * the newest DIR/<folder>/analysis.json (an `analyze --out DIR/<folder>`), and last the timeline's
 * last snapshot.
 */
export function findAnalysis(dir: string, timeline: readonly Snapshot[], file?: string): { result: AnalysisResult; source: string } | null {
  const read = (p: string) => ({ result: JSON.parse(fs.readFileSync(p, "utf8")) as AnalysisResult, source: path.relative(dir, p) || p });
  if (file !== undefined) {
    if (!fs.existsSync(file)) throw new Error(`--analysis ${file}: no such file`);
    return read(file);
  }
  for (const p of [path.join(dir, "analysis.json"), path.join(dir, "analysis", "analysis.json")]) {
    if (fs.existsSync(p)) return read(p);
  }
  const nested = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.join(dir, e.name, "analysis.json"))
    .filter((p) => fs.existsSync(p))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (nested[0]) return read(nested[0]);
  const last = timeline[timeline.length - 1];
  return last ? { result: last, source: `analysis/timeline.json (step ${last.step})` } : null;
}

export interface ReportResult {
  html: string;
  figures: Array<{ name: string; file: string; title: string; caption: string }>;
}

function summaryTable(r: AnalysisResult, source: string): string {
  const L = r.layers - 1;
  const rows: string[] = [];
  for (let l = 0; l <= L; l++) {
    const f = r.normFit[l];
    const m = r.massive.layers[l];
    rows.push(
      `<tr><td>${l}</td><td>${num(r.hiddenNorm.mean[l]![0])}</td><td>${num(r.hiddenNorm.mean[l]![r.seqLen - 1])}</td>` +
        `<td>${num(f?.slope, 3)}</td><td>${num(f?.r2, 3)}</td><td>${num(r.firstTokenRatio[l], 3)}</td>` +
        `<td>${num(r.logitLens.loss[l])}</td><td>${l < L ? num(r.paramGradNorm[l]) : ""}</td>` +
        `<td>${m ? `${num(m.values[0], 4)} (dim ${m.dims[0]})` : ""}</td></tr>`,
    );
  }
  return `<p>Source: <code>${esc(source)}</code>. ${r.windows} windows of T = ${r.seqLen} tokens, L = ${L} blocks; mean loss ${num(r.loss, 5)} nats.</p>
<table><thead><tr><th>layer l</th><th>‖h‖ at t=1</th><th>‖h‖ at t=T</th><th>fit slope b (t = ${fitRange(r)})</th><th>fit R² (t = ${fitRange(r)})</th><th>first-token ratio</th><th>logit-lens loss</th><th>param-grad norm (block l)</th><th>largest |h| (dim)</th></tr></thead>
<tbody>${rows.join("\n")}</tbody></table>`;
}

export interface ReportOptions {
  log?: (msg: string) => void;
  /** analysis.json to show as the final state (default: found in DIR, see findAnalysis). */
  analysis?: string;
  /** Normalise the heatmaps per layer (each row divided by its mean over positions). */
  perLayerHeatmaps?: boolean;
}

/** The sections and summary table of DIR's report, or null when DIR has no analysis yet. */
export function reportSections(dir: string, opts: ReportOptions = {}): { sections: Section[]; summary: string; snapshots: number } | null {
  const timeline = readTimeline(dir)?.snapshots ?? [];
  const found = findAnalysis(dir, timeline, opts.analysis);
  if (!found && timeline.length === 0) return null;
  const sections: Section[] = [];
  if (found) {
    sections.push({
      heading: "The trained model",
      intro: "Each block adds an update u^l = h^(l+1) − h^l to the token representations; read as an inner optimization, the question is how these updates relate to the gradient of the loss with respect to h^l, and what pattern the norms of h^l take across layers and positions.",
      figs: analysisFigures(found.result, { perLayer: opts.perLayerHeatmaps }),
    });
  }
  if (timeline.length > 0) {
    sections.push({
      heading: "Over training",
      intro: `${timeline.length} snapshots on a fixed set of held-out windows, from step ${timeline[0]!.step} to step ${timeline[timeline.length - 1]!.step}.`,
      figs: timelineFigures(timeline),
    });
  }
  return { sections, summary: found ? summaryTable(found.result, found.source) : "", snapshots: timeline.length };
}

/** The title, heading and lead sentence of a run's report. */
export function reportHead(dir: string): Pick<Page, "title" | "heading" | "lead"> {
  const name = path.basename(path.resolve(dir));
  return {
    title: `innerloop report: ${name}`,
    heading: `Inner optimization in the residual stream: ${name}`,
    lead: "h^0 is the embedding output, h^l the output of block l, h^L the residual stream before the final norm; ℓ is the summed cross-entropy of a window's T targets. Definitions: docs/analysis.md of innerloop.",
  };
}

/** Renders every figure for DIR and writes DIR/report.html; returns what it wrote. */
export async function writeReport(dir: string, opts: ReportOptions = {}): Promise<ReportResult> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new Error(`--run ${dir}: not a directory`);
  const content = reportSections(dir, opts);
  if (!content) {
    throw new Error(`--run ${dir}: found neither analysis.json, analysis/analysis.json nor analysis/timeline.json (run innerloop analyze or train with --analyze-every)`);
  }
  return writePage(dir, { ...reportHead(dir), sections: content.sections, summary: content.summary, log: opts.log });
}

export interface Section {
  heading: string;
  intro: string;
  figs: Figure[];
}

export interface Page {
  title: string;
  heading: string;
  lead: string;
  /** HTML shown above the figures (a table). */
  summary: string;
  sections: Section[];
  log?: (msg: string) => void;
}

/** Renders the figures of `page` to DIR/report/NAME.svg and writes DIR/report.html (each file atomically). */
export async function writePage(dir: string, page: Page): Promise<ReportResult> {
  fs.mkdirSync(path.join(dir, "report"), { recursive: true });
  const written: ReportResult["figures"] = [];
  const body: string[] = [];
  let n = 0;
  for (const sec of page.sections) {
    body.push(`<h2>${esc(sec.heading)}</h2>\n<p>${esc(sec.intro)}</p>`);
    for (const f of sec.figs) {
      n++;
      const svg = await renderSvg(f.spec);
      const file = `report/${f.name}.svg`;
      writeFileAtomic(path.join(dir, file), svg);
      written.push({ name: f.name, file, title: f.title, caption: f.caption });
      page.log?.(`wrote ${file}`);
      body.push(`<figure id="${f.name}"><img src="${file}" alt="${esc(f.title)}"><figcaption><b>Figure ${n}.</b> ${esc(f.caption)}</figcaption></figure>`);
    }
  }
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(page.title)}</title>
<style>
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 2em 0; } figure img { max-width: 100%; } figcaption { color: #333; font-size: 0.95em; margin-top: 0.4em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
code { background: #f4f4f4; padding: 0 3px; }
</style></head><body>
<h1>${esc(page.heading)}</h1>
<p>${esc(page.lead)}</p>
${page.summary}
${body.join("\n")}
</body></html>
`;
  writeFileAtomic(path.join(dir, "report.html"), html);
  return { html, figures: written };
}
