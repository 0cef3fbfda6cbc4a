// `innerloop report --compare`: two tiny training runs (different depth and T) and the analysis of a
// pretrained checkpoint (test/fixtures/pretrained/gpt2) in one report. The figures' data must be the
// inputs' own numbers placed at relative depth, and the table and notes must say what each input is.

import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { main } from "../lib/cli/main.js";
import { readCompareInput } from "../lib/analysis/report/inputs.js";
import { binMeans, compareAnalysisFigures, compareTimelineFigures } from "../lib/analysis/report/compare-figures.js";
import type { AnalysisResult } from "../lib/analysis/result.js";

const FIX = path.resolve(import.meta.dirname, "fixtures", "pretrained");
const sink = () => ({ write: () => true }) as unknown as NodeJS.WritableStream;
const collect = (into: string[]) => ({ write: (s: string) => into.push(s) }) as unknown as NodeJS.WritableStream;

type Values = Array<Record<string, number | string>>;
const data = (spec: Record<string, unknown>) => (spec.data as { values: Values }).values;

describe("innerloop report --compare", () => {
  let tmp: string;
  let runA: string;
  let runB: string;
  let pre: string;
  let out: string;
  let stdout: string[];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "il-compare-"));
    runA = path.join(tmp, "two-layers");
    runB = path.join(tmp, "three-layers");
    pre = path.join(tmp, "gpt2-analysis");
    const common = ["--n-embd", "32", "--n-head", "2", "--batch-size", "4", "--steps", "8", "--analyze-every", "4", "--analyze-windows", "2", "--eval-every", "4"];
    expect(await main(["train", ...common, "--n-layer", "2", "--seq-len", "16", "--out", runA], { stdout: sink(), stderr: sink() })).toBe(0);
    expect(await main(["train", ...common, "--n-layer", "3", "--seq-len", "24", "--out", runB], { stdout: sink(), stderr: sink() })).toBe(0);
    const analyze = ["analyze", "--model", path.join(FIX, "gpt2", "model"), "--data", path.join(FIX, "tokens.bin"), "--seq-len", "16", "--batch-size", "2", "--max-windows", "4", "--out", pre];
    expect(await main(analyze, { stdout: sink(), stderr: sink() })).toBe(0);
    out = path.join(tmp, "cmp");
    stdout = [];
    const code = await main(["report", "--compare", runA, runB, pre, "--labels", "small,deeper,gpt2", "--out", out], { stdout: collect(stdout), stderr: sink() });
    expect(code).toBe(0);
  });

  it("writes one report with the comparison figures as SVG", () => {
    expect(stdout.join("")).toMatch(/compared 3 inputs: wrote 9 figures/);
    const html = fs.readFileSync(path.join(out, "report.html"), "utf8");
    for (const n of ["compare_norm_vs_position", "compare_slope", "compare_first_token", "compare_update_cos", "compare_logit_lens", "compare_loss", "compare_timeline_loss", "compare_timeline_slope", "compare_timeline_cos"]) {
      const svg = fs.readFileSync(path.join(out, "report", `${n}.svg`), "utf8");
      expect(svg.startsWith("<svg")).toBe(true);
      expect(html).toContain(`src="report/${n}.svg"`);
    }
    // Every input appears in the legends.
    const slope = fs.readFileSync(path.join(out, "report", "compare_slope.svg"), "utf8");
    for (const l of ["small", "deeper", "gpt2"]) expect(slope).toContain(`>${l}<`);
    expect(slope).toContain("relative depth l/L");
  });

  it("tabulates each input's model, data, windows and loss, and says where T and vocabulary differ", () => {
    const html = fs.readFileSync(path.join(out, "report.html"), "utf8");
    const a = JSON.parse(fs.readFileSync(path.join(pre, "analysis.json"), "utf8")) as AnalysisResult;
    const row = (label: string) => new RegExp(`<tr><td>${label}</td>.*?</tr>`).exec(html)?.[0] ?? "";
    expect(row("small")).toContain("<td>training run</td><td>2 layers × 32, 2 heads</td><td>moby-dick (char tokens)</td>");
    expect(row("small")).toContain("<td>2 × T = 16</td>");
    expect(row("deeper")).toContain("<td>3 layers × 32, 2 heads</td>");
    expect(row("deeper")).toContain("<td>2 × T = 24</td>");
    expect(row("gpt2")).toContain("<td>analysis</td>");
    expect(row("gpt2")).toContain("(gpt2)</td><td>tokens.bin</td>");
    expect(row("gpt2")).toContain(`<td>4 × T = 16</td><td>${Number(a.loss.toPrecision(4))}</td>`);
    expect(html).toContain("different window lengths (T = 16, 24)");
    expect(html).toMatch(/different vocabularies \(\d+, \d+ tokens\)/);
  });

  it("places each input's per-layer values at relative depth l/L, blocks at (l + ½)/L", () => {
    const inputs = [readCompareInput(runA, "small"), readCompareInput(runB, "deeper"), readCompareInput(pre, "gpt2")];
    const figs = compareAnalysisFigures(inputs);
    const slope = data(figs.find((f) => f.name === "compare_slope")!.spec);
    const cos = data(figs.find((f) => f.name === "compare_update_cos")!.spec);
    const lens = data(figs.find((f) => f.name === "compare_logit_lens")!.spec);
    for (const inp of inputs) {
      const a = inp.analysis!;
      const L = a.layers - 1;
      const mine = slope.filter((v) => v.input === inp.label);
      expect(mine.map((v) => v.depth)).toEqual(Array.from({ length: L + 1 }, (_, l) => l / L));
      mine.forEach((v, l) => expect(v.value).toBe(a.normFit[l]!.slope));
      const c = cos.filter((v) => v.input === inp.label);
      expect(c.map((v) => v.depth)).toEqual(Array.from({ length: L }, (_, l) => (l + 0.5) / L));
      c.forEach((v, l) => expect(v.value).toBeCloseTo(a.update.cosMean[l]!.reduce((x, y) => x + y, 0) / a.seqLen, 12));
      expect(lens.filter((v) => v.input === inp.label).map((v) => v.value)).toEqual(a.logitLens.loss);
    }
    // The training runs' final analysis is their last snapshot (no analysis.json of their own).
    expect(inputs[0]!.analysisSource).toBe("analysis/timeline.json (step 8)");
    // Timelines: the training loss of every step of both runs, none of the pretrained analysis.
    const loss = data(compareTimelineFigures(inputs).find((f) => f.name === "compare_loss")!.spec);
    expect(loss.filter((v) => v.input === "small" && v.series === "training loss")).toHaveLength(8);
    expect(loss.filter((v) => v.input === "deeper" && v.series === "validation loss").map((v) => v.step)).toEqual([4, 8]);
    expect(loss.some((v) => v.input === "gpt2")).toBe(false);
  });

  it("averages long loss curves over consecutive steps to at most 2000 points", () => {
    const rows = Array.from({ length: 5000 }, (_, i) => ({ step: i + 1, value: i % 3 }));
    const { k, points } = binMeans(rows);
    expect(k).toBe(3);
    expect(points).toHaveLength(1667);
    expect(points[0]).toEqual({ step: 3, value: 1 }); // mean of 0, 1, 2
    expect(points[points.length - 1]).toEqual({ step: 5000, value: 0.5 }); // the last bin: steps 4999 and 5000 (values 0 and 1)
    expect(binMeans(rows.slice(0, 10)).points).toHaveLength(10);
  });

  it("refuses bad input with one line naming the flag", async () => {
    const cases: Array<[string[], RegExp, number]> = [
      [["report", "--compare", runA, "--out", out], /--compare needs at least two inputs \(got 1\)/, 2],
      [["report", "--compare", runA, runB, "--labels", "a", "--out", out], /--labels gives 1 labels for 2 inputs/, 2],
      [["report", "--compare", runA, runB], /--compare needs --out DIR/, 2],
      [["report", "--compare", runA, path.join(tmp, "missing"), "--out", out], /--compare .*missing: no such file or directory/, 1],
      [["report", "--compare", runA, fs.mkdtempSync(path.join(tmp, "empty-")), "--out", out], /found no analysis\.json, analysis\/timeline\.json or metrics\.jsonl/, 1],
      [["report", "--run", runA, "--watch", runA], /--run and --watch cannot be combined/, 2],
      [["report", "--run", runA, "--port", "9"], /--port belongs to --watch/, 2],
      [["report", "--compare", runA, runB, "--out", out, "--analysis", "x.json"], /--analysis belongs to --run/, 2],
    ];
    for (const [args, re, code] of cases) {
      const err: string[] = [];
      expect(await main(args, { stdout: sink(), stderr: collect(err) })).toBe(code);
      expect(err.join("")).toMatch(re);
      expect(err.join("").trim().split("\n")).toHaveLength(1);
    }
  });
});
