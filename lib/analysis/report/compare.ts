// `innerloop report --compare A B C --out DIR`: one report overlaying several training runs and
// analyses of pretrained checkpoints (figures in compare-figures.ts), with a table of what each
// input is, and a note where inputs differ in window length or vocabulary.

import * as fs from "node:fs";
import { compareAnalysisFigures, compareTimelineFigures } from "./compare-figures.js";
import { esc, num, writePage, type ReportResult, type Section } from "./html.js";
import { compareLabels, readCompareInput, type CompareInput } from "./inputs.js";

export interface CompareOptions {
  /** One label per input (default: the folder names). */
  labels?: readonly string[];
  log?: (msg: string) => void;
}

function table(inputs: readonly CompareInput[]): string {
  const rows = inputs.map((i) => {
    const a = i.analysis;
    const windows = a ? `${a.windows} × T = ${a.seqLen}` : "none";
    const lastLoss = i.steps[i.steps.length - 1]?.loss;
    return (
      `<tr><td>${esc(i.label)}</td><td>${i.kind}</td><td>${esc(i.model)}</td><td>${esc(i.data)}</td><td>${i.vocab ?? "n/a"}</td>` +
      `<td>${windows}</td><td>${a ? num(a.loss) : "n/a"}</td><td>${i.trainedSteps ?? ""}</td><td>${lastLoss !== undefined ? num(lastLoss) : ""}</td>` +
      `<td><code>${esc(i.analysisSource ?? i.path)}</code></td></tr>`
    );
  });
  return `<table><thead><tr><th>input</th><th>kind</th><th>model</th><th>data</th><th>vocabulary</th><th>analysis windows</th><th>analysis loss (nats)</th><th>steps trained</th><th>last training loss</th><th>source</th></tr></thead>
<tbody>${rows.join("\n")}</tbody></table>`;
}

/** Sentences saying where the inputs differ in T or vocabulary (allowed, but it changes what compares). */
export function differenceNotes(inputs: readonly CompareInput[]): string[] {
  const notes: string[] = [];
  const Ts = [...new Set(inputs.filter((i) => i.analysis).map((i) => i.analysis!.seqLen))];
  if (Ts.length > 1) notes.push(`The analyses use different window lengths (T = ${Ts.join(", ")}): positions are shared up to the shortest, and fits cover each input's own range.`);
  const vocabs = [...new Set(inputs.map((i) => i.vocab).filter((v): v is number => v !== null))];
  if (vocabs.length > 1) notes.push(`The models have different vocabularies (${vocabs.join(", ")} tokens): their losses in nats are not on the same scale.`);
  return notes;
}

/** Reads the inputs, renders the comparison figures into OUT/report/ and writes OUT/report.html. */
export async function writeCompareReport(paths: readonly string[], outDir: string, opts: CompareOptions = {}): Promise<ReportResult & { inputs: CompareInput[] }> {
  if (paths.length < 2) throw new Error(`--compare needs at least two inputs (got ${paths.length})`);
  const labels = compareLabels(paths, opts.labels);
  const inputs = paths.map((p, i) => readCompareInput(p, labels[i]!));
  fs.mkdirSync(outDir, { recursive: true });
  const sections: Section[] = [];
  const af = compareAnalysisFigures(inputs);
  if (af.length > 0) {
    sections.push({
      heading: "The models side by side",
      intro: "Per-layer measures of each input's final analysis against relative depth, so that models of different depth compare: layer l of L blocks at l/L, block l at (l + ½)/L.",
      figs: af,
    });
  }
  const tf = compareTimelineFigures(inputs);
  if (tf.length > 0) sections.push({ heading: "Over training", intro: "The training runs on one step axis.", figs: tf });
  const notes = differenceNotes(inputs);
  const res = await writePage(outDir, {
    title: `innerloop comparison: ${labels.join(", ")}`,
    heading: `Comparison: ${labels.join(", ")}`,
    lead: "h^l is the residual stream after block l (h^0 the embeddings), ℓ the summed cross-entropy of a window. Definitions: docs/analysis.md of innerloop.",
    summary: `${table(inputs)}\n${notes.map((n) => `<p class="note">${esc(n)}</p>`).join("\n")}`,
    sections,
    log: opts.log,
  });
  return { ...res, inputs };
}
