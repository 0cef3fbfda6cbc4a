// The benchmark harness, run for real with a tiny setting through the `innerloop bench` command:
// both sides (the innerloop worker and scripts/bench/torch_step.py) must run the same configuration
// and produce finite losses; starting from the same weights on the same batch, their first losses
// agree. Also the memory run, the analysis-overhead run, the profile, the JSON file and flag errors.
// Nothing here asserts a time: speed is for `npm run bench` and BENCHMARKS.md.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import { main } from "../lib/cli/main.js";
import "../lib/cli/bench.js";
import type { BenchReport } from "../lib/bench/index.js";
import { CONFIGS, flopsPerToken, paramCount, padTo, peakBf16Flops, resolveConfigs } from "../lib/bench/index.js";

function sink(): { stream: Writable; text: () => string } {
  let s = "";
  const stream = new Writable({
    write(chunk, _enc, cb) {
      s += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => s };
}

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = sink();
  const err = sink();
  const code = await main(args, { stdout: out.stream, stderr: err.stream });
  return { code, stdout: out.text(), stderr: err.text() };
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-bench-test-"));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("configurations", () => {
  it("have the shapes of the issue and GPT-2's parameter count", () => {
    expect(CONFIGS.micro!.model).toMatchObject({ nLayer: 2, nEmbd: 64, seqLen: 8 });
    expect(CONFIGS.micro!.batchCandidates).toEqual([1]);
    expect(CONFIGS.tiny!.model).toMatchObject({ nLayer: 2, nEmbd: 64, seqLen: 64 });
    expect(CONFIGS.tiny!.batchCandidates).toEqual([8]);
    expect(CONFIGS.mid!.model).toMatchObject({ nLayer: 4, nEmbd: 128, seqLen: 128 });
    expect(CONFIGS.mid!.batchCandidates).toEqual([16]);
    const g = CONFIGS["gpt2-124m"]!;
    expect(g.model.vocabSize).toBe(50304);
    expect(padTo(50257, 64)).toBe(50304);
    expect(g.batchCandidates).toEqual([16, 8]);
    // GPT-2 small: 124,439,808 parameters with the 50257-token vocabulary (tied output layer).
    expect(paramCount({ ...g.model, vocabSize: 50257 })).toBe(124_439_808);
    // 6N + 12 L H Q T with N excluding the position embedding.
    const N = paramCount(g.model) - 1024 * 768;
    expect(flopsPerToken(g.model)).toBe(6 * N + 12 * 12 * 12 * 64 * 1024);
    expect(peakBf16Flops("NVIDIA H100 80GB HBM3")).toBe(989e12);
    expect(peakBf16Flops("NVIDIA H200")).toBe(989e12);
    expect(peakBf16Flops("some other card")).toBeNull();
    expect(() => resolveConfigs(["gpt2-124m"], "cpu")).toThrow(/cuda/);
    expect(() => resolveConfigs(["huge"], "cpu")).toThrow(/unknown benchmark config 'huge'/);
  });
});

describe("innerloop bench", () => {
  it("runs both sides on the same configuration with finite losses and writes the report", async () => {
    const json = path.join(tmp, "bench.json");
    const r = await run([
      "bench", "--config", "micro", "--reps", "3", "--warmup", "1", "--rounds", "1", "--steps", "30",
      "--analyze-windows", "1,2", "--profile", "--threads", "1", "--analysis-vs-torch", "none", "--aten-calls", "300", "--json", json,
    ]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(json, "utf8")) as BenchReport;
    expect(report.device).toBe("cpu");
    expect(report.configs).toHaveLength(1);
    expect(report.threads).toEqual([1]);
    expect(report.analysisVsTorch).toBeUndefined();
    const c = report.configs[0]!;
    expect(c.threads).toBe(1);
    expect(c.name).toBe("micro");
    expect(c.sameConfig).toBe(true);
    for (const side of [c.innerloop, c.pytorch]) {
      expect(side.config).toMatchObject({ nLayer: 2, nEmbd: 64, nHead: 4, seqLen: 8, vocabSize: 256, batch: 1, precision: "float32", clip: 1, weightDecay: 0.1 });
      expect(side.threads).toBe(1);
      expect(side.losses).toHaveLength(4);
      for (const l of side.losses) expect(Number.isFinite(l)).toBe(true);
      expect(side.stepMs).toHaveLength(3);
      expect(side.stepMs.every((t) => t > 0)).toBe(true);
      expect(side.maxRssKB).toBeGreaterThan(0);
      expect(side.profile!.callsPerStep).toBeGreaterThan(0);
      expect(side.profile!.forwardMs).toBeGreaterThan(0);
    }
    expect(c.innerloop.side).toBe("innerloop");
    expect(c.pytorch.side).toBe("pytorch");
    expect(c.innerloop.config.params).toBe(c.pytorch.config.params);
    expect(c.innerloop.config.params).toBe(paramCount(CONFIGS.micro!.model));
    // The same weights and the same first batch give the same first loss (about ln 256 at init);
    // the same updates keep the losses together for the next steps.
    expect(c.firstLossDiff).not.toBeNull();
    expect(c.firstLossDiff!).toBeLessThan(1e-4);
    expect(c.innerloop.losses[0]).toBeCloseTo(Math.log(256), 0);
    for (let i = 0; i < 4; i++) expect(Math.abs(c.innerloop.losses[i]! - c.pytorch.losses[i]!)).toBeLessThan(1e-3);
    expect(Number.isFinite(c.ratio) && c.ratio > 0).toBe(true);

    // Memory over the extra steps: the live-tensor count is flat.
    expect(report.memory!.innerloop!.steps).toBe(30);
    expect(report.memory!.innerloop!.liveTensorsEnd).toBe(report.memory!.innerloop!.liveTensorsStart);
    expect(report.memory!.innerloop!.syncLoop!.liveTensorsEnd).toBe(report.memory!.innerloop!.liveTensorsStart);
    expect(report.memory!.pytorch!.rssEndKB).toBeGreaterThan(0);

    // The analysis plugin ran after every step, for each window count: allowed to ride along in the
    // next step, and in a pass of its own. One window rides along (micro: a GPT-2 in float32
    // without dropout, on the CPU, batch 1); two are more than micro's batch, so they cannot.
    expect(report.analysis!.map((a) => [a.config, a.windows, a.rideAlong, a.available])).toEqual([
      ["micro", 1, true, true], ["micro", 1, false, true], ["micro", 2, true, true], ["micro", 2, false, true],
    ]);
    expect(report.analysis!.map((a) => a.rodeAlong! > 0)).toEqual([true, false, false, false]);
    for (const a of report.analysis!) expect(a.medianAnalysisMs!).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/rides along/);
    expect(r.stdout).toMatch(/own pass/);

    // The printed table names both sides' times and the ratio.
    expect(r.stdout).toMatch(/\| micro +\| 1 thread +\| 2 x 64 +\| 8 +\| 1 +\|/);
    expect(r.stdout).toMatch(/ratio/);
    expect(r.stdout).toMatch(/analysis overhead/);

    // The per-call comparison of torch.aten with Python's torch.ops.aten: every case timed on both
    // sides (in two processes each), each with a positive time and the ratio of the two.
    const a = report.atenCalls!;
    expect(a.calls).toBe(300);
    expect(a.processes).toBe(2);
    expect(a.rows.map((row) => row.name)).toContain("torch.aten.add(a, b)");
    expect(a.rows.filter((row) => row.goal).length).toBeGreaterThanOrEqual(5);
    for (const row of a.rows) {
      expect(row.innerloopNs).toBeGreaterThan(0);
      expect(row.pytorchNs).toBeGreaterThan(0);
      expect(row.ratio).toBeCloseTo(row.innerloopNs / row.pytorchNs, 10);
    }
    expect(r.stdout).toMatch(/torch\.aten per call against Python's torch\.ops\.aten/);
    expect(r.stdout).toMatch(/\| torch\.aten\.add\(a, b\) +\| torch\.ops\.aten\.add\(a, b\) +\|/);
  });

  it("times each thread setting once, the libraries' defaults and one thread, with equal losses", async () => {
    const json = path.join(tmp, "bench-threads.json");
    const r = await run([
      "bench", "--config", "micro", "--reps", "2", "--warmup", "1", "--rounds", "1", "--steps", "0",
      "--analyze-every", "0", "--threads", "default,1", "--analysis-vs-torch", "none", "--aten-calls", "0", "--json", json,
    ]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(json, "utf8")) as BenchReport;
    expect(report.threads).toEqual([0, 1]);
    expect(report.configs.map((c) => [c.name, c.threads])).toEqual([["micro", 0], ["micro", 1]]);
    const [dflt, one] = report.configs;
    // Neither side set a count: both run with their library's default, the same libtorch's.
    expect(dflt!.innerloop.threads).toBe(dflt!.pytorch.threads);
    expect(dflt!.innerloop.threads).toBeGreaterThanOrEqual(1);
    expect(one!.innerloop.threads).toBe(1);
    expect(one!.pytorch.threads).toBe(1);
    for (const c of report.configs) {
      for (let i = 0; i < c.innerloop.losses.length; i++) expect(Math.abs(c.innerloop.losses[i]! - c.pytorch.losses[i]!)).toBeLessThan(1e-3);
    }
    // One row per setting, named so, and the goal lines explained.
    expect(r.stdout).toMatch(/\| micro +\| default \(\d+\) +\|/);
    expect(r.stdout).toMatch(/\| micro +\| 1 thread +\|/);
    expect(r.stdout).toMatch(/micro: <= 0\.30x/);
    expect(r.stdout).toMatch(/"1 thread": both sides set one intra-op thread/);
  });

  it("compares innerloop analyze with the PyTorch hooks script field by field on the same model and tokens", async () => {
    const { compareAnalysis } = await import("../lib/bench/analysis-compare.js");
    const dir = fs.mkdtempSync(path.join(tmp, "analysis-"));
    const c = { name: "test", model: { nLayer: 2, nEmbd: 64, nHead: 4, seqLen: 16, nPositions: 16, vocabSize: 300 }, windows: 6, batchSize: 4 };
    const a = await compareAnalysis(c, { dir, seed: 7, rounds: 1, log: () => {} });
    expect(a.fields.map((f) => f.field)).toEqual(["loss", "hiddenNorm.mean", "hiddenNorm.std", "gradNorm.mean", "update.normMean", "update.cosMean", "logitLens.loss", "paramGradNorm"]);
    for (const f of a.fields) expect(f.relDiff).toBeLessThan(1e-5);
    expect(a.agree).toBe(true);
    expect(a.windows).toBe(6);
    for (const side of [...a.innerloop, ...a.pytorch]) {
      expect(side.seconds).toBeGreaterThan(0);
      expect(side.maxRssKB).toBeGreaterThan(0);
    }
    expect(a.ratio).toBeGreaterThan(0);
  });

  it("finds a disagreeing or missing field", async () => {
    const { compareFields } = await import("../lib/bench/analysis-compare.js");
    const base = { loss: 2, hiddenNorm: { mean: [[1, 2]], std: [[0.1, 0.2]] }, gradNorm: { mean: [[3, 4]] }, update: { normMean: [[1]], cosMean: [[0.5]] }, logitLens: { loss: [2, 2] }, paramGradNorm: [1] };
    const off = structuredClone(base);
    off.update.cosMean[0]![0] = 0.6;
    const f = compareFields(off, base);
    expect(f.find((x) => x.field === "update.cosMean")!.relDiff).toBeCloseTo(0.2, 10);
    expect(f.find((x) => x.field === "loss")!.relDiff).toBe(0);
    const nan = structuredClone(base);
    nan.loss = Number.NaN;
    expect(compareFields(nan, base)[0]!.relDiff).toBe(Infinity);
    expect(() => compareFields({ ...base, paramGradNorm: undefined }, base)).toThrow(/paramGradNorm is missing/);
  });

  it("refuses unknown configurations and GPU-only ones on the CPU with exit 2", async () => {
    let r = await run(["bench", "--config", "huge"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--config must be a comma-separated list of micro, tiny, mid, gpt2-124m/);
    r = await run(["bench", "--config", "gpt2-124m", "--device", "cpu"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/runs only with --device cuda/);
    r = await run(["bench", "--reps", "0"]);
    expect(r.code).toBe(2);
    r = await run(["bench", "--threads", "0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--threads must be a comma-separated list of 'default' and integers/);
    r = await run(["bench", "--analysis-vs-torch", "huge"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--analysis-vs-torch must be none, or a comma-separated list of small, gpt2-124m/);
  });
});
