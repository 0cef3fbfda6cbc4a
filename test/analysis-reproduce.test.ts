// `innerloop reproduce`: the pipeline end to end (shortened to a few steps so that it stays
// CI-sized): training with snapshots, final analysis, report.

import { it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { main } from "../lib/cli/main.js";
import type { AnalysisResult } from "../lib/analysis/result.js";
import type { Timeline } from "../lib/analysis/files.js";

it("reproduce --quick trains with snapshots, analyses the final model and writes the report", async () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-repro-")), "run");
  const out: string[] = [];
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  const code = await main(["reproduce", "--quick", "--steps", "4", "--analyze-every", "2", "--out", dir], {
    stdout: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream,
    stderr: sink,
  });
  expect(code).toBe(0);
  // A valid run directory with metrics.
  expect(fs.existsSync(path.join(dir, "config.json"))).toBe(true);
  expect(fs.readFileSync(path.join(dir, "metrics.jsonl"), "utf8").trim().split("\n").length).toBeGreaterThanOrEqual(4);
  const t = JSON.parse(fs.readFileSync(path.join(dir, "analysis", "timeline.json"), "utf8")) as Timeline;
  expect(t.snapshots.map((s) => s.step)).toEqual([2, 4]);
  expect(t.snapshots[0]!.seqLen).toBe(64);
  expect(t.snapshots[0]!.windows).toBe(8);
  const a = JSON.parse(fs.readFileSync(path.join(dir, "analysis", "analysis.json"), "utf8")) as AnalysisResult;
  expect(a.windows).toBe(64);
  expect(a.layers).toBe(5);
  expect(a.logitLens.loss[4]).toBeCloseTo(a.loss, 10);
  const html = fs.readFileSync(path.join(dir, "report.html"), "utf8");
  expect(html).toContain('src="report/norm_vs_position.svg"');
  expect(html).toContain('src="report/timeline_cos.svg"');
  expect(html).toContain("2 snapshots on a fixed set of held-out windows, from step 2 to step 4");
  expect(fs.statSync(path.join(dir, "report", "norm_heatmap.svg")).size).toBeGreaterThan(1000);
  expect(out.join("")).toMatch(/held-out loss \d+\.\d+ nats/);
  expect(out.join("")).toContain(path.join(dir, "report.html"));
  // The folder must be new: running again into it is refused.
  const err: string[] = [];
  const again = await main(["reproduce", "--quick", "--out", dir], { stdout: sink, stderr: { write: (s: string) => err.push(s) } as unknown as NodeJS.WritableStream });
  expect(again).toBe(1);
  expect(err.join("")).toMatch(/not empty/);
});
