// `innerloop sweep`: a 4-run grid, two at a time, killed while runs are in flight (SIGKILL to the
// sweep and to one of its runs; the other run goes on by itself) and started again: finished runs
// are kept, the killed one resumes from its checkpoint, the one still going is waited for, and every
// run ends with each step's metrics exactly once. A failing run is recorded and the others go on.

import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { main } from "../lib/cli/main.js";
import { expandSweep } from "../lib/experiments/spec.js";
import { runSweep, type SweepState } from "../lib/experiments/sweep.js";
import { readMetrics, type StepRow } from "../lib/train/metrics.js";
import { CLI_COMMAND, runCli, spawnCli } from "./helpers/cli-process.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const readState = (out: string): SweepState | null => {
  try {
    return JSON.parse(fs.readFileSync(path.join(out, "sweep.json"), "utf8")) as SweepState;
  } catch {
    return null;
  }
};
const stepOf = (dir: string): number | null => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, "trainer_state.json"), "utf8")) as { step: number }).step;
  } catch {
    return null;
  }
};

const STEPS = 1500;
const BASE = { "n-layer": 1, "n-embd": 16, "n-head": 2, "seq-len": 8, "batch-size": 2, steps: STEPS, "checkpoint-every": 100, "eval-every": 0 };

describe("innerloop sweep", () => {
  it("expands a grid in key order and names runs by their settings", () => {
    const runs = expandSweep({ base: { steps: 3 }, grid: { lr: [0.001, 0.003], seed: [1, 2] } });
    expect(runs.map((r) => r.name)).toEqual(["0_lr=0.001_seed=1", "1_lr=0.001_seed=2", "2_lr=0.003_seed=1", "3_lr=0.003_seed=2"]);
    expect(runs[3]!.settings).toEqual({ steps: 3, lr: 0.003, seed: 2 });
    expect(expandSweep({ runs: [{ name: "a", lr: 0.1 }, { lr: 0.2 }] }).map((r) => r.name)).toEqual(["a", "1_lr=0.2"]);
    expect(() => expandSweep({ grid: { lr: [] } })).toThrow(/grid field "lr" must be a non-empty list/);
    expect(() => expandSweep({ grid: { lr: [1] }, runs: [{}] })).toThrow(/exactly one of "grid"/);
    expect(() => expandSweep({ runs: [{ out: "x" }] })).toThrow(/sets "out"/);
  });

  it("continues a 4-run sweep after it was killed, and ends with a comparison report", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "il-sweep-"));
    const specFile = path.join(tmp, "sweep.json");
    fs.writeFileSync(specFile, JSON.stringify({ base: BASE, grid: { lr: [0.001, 0.003], seed: [1, 2] }, parallel: 2 }));
    const out = path.join(tmp, "out");
    const args = ["sweep", "--config", specFile, "--out", out];

    // Kill once a run has finished and another is past a checkpoint after step 0 but not done.
    const child = spawnCli(args, { stdio: "ignore" });
    const t0 = Date.now();
    let killedAt: SweepState | null = null;
    let killedRun = "";
    while (Date.now() - t0 < 90_000) {
      const s = readState(out);
      const running = s?.runs.filter((r) => r.status === "running") ?? [];
      const midway = running.filter((r) => {
        const step = stepOf(path.join(out, "runs", r.name));
        return step !== null && step > 0 && step < STEPS;
      });
      if (s && s.runs.some((r) => r.status === "done") && midway.length > 0 && midway[0]!.pid !== undefined) {
        child.kill("SIGKILL");
        process.kill(midway[0]!.pid, "SIGKILL");
        killedRun = midway[0]!.name;
        killedAt = s;
        break;
      }
      if (child.exitCode !== null) break;
      await sleep(20);
    }
    expect(killedAt, "the sweep was killed while a run was between checkpoints").not.toBeNull();
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.on("exit", r)));
    const doneBefore = killedAt!.runs.filter((r) => r.status === "done").map((r) => r.name);
    expect(doneBefore.length).toBeLessThan(4);
    const runningBefore = killedAt!.runs.filter((r) => r.status === "running").map((r) => r.name);
    const survivor = runningBefore.find((n) => n !== killedRun);

    const res = await runCli(args);
    expect(res.stderr).toMatch(/resuming /);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/4 done, 0 failed, 0 to continue; comparison in .*report\.html/);
    const state = readState(out)!;
    expect(state.runs.map((r) => r.status)).toEqual(["done", "done", "done", "done"]);
    for (const r of state.runs) {
      // Only the killed run took a second process; the one left running finished by itself.
      expect(r.attempts, r.name).toBe(r.name === killedRun ? 2 : 1);
      const dir = path.join(out, "runs", r.name);
      expect(stepOf(dir)).toBe(STEPS);
      const steps = readMetrics(path.join(dir, "metrics.jsonl")).filter((m): m is StepRow => "loss" in m).map((m) => m.step);
      expect(steps).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    }
    expect(fs.readFileSync(path.join(out, "runs", `${killedRun}.log`), "utf8")).toMatch(/resuming .* at step [1-9]\d*/);
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    if (survivor) expect(res.stderr).not.toMatch(new RegExp(`(starting|resuming) ${esc(survivor)}`));
    if (survivor) expect(fs.readFileSync(path.join(out, "runs", `${survivor}.log`), "utf8")).not.toMatch(/resuming/);
    const html = fs.readFileSync(path.join(out, "report.html"), "utf8");
    for (const r of state.runs) expect(html).toContain(`<td>${r.name}</td>`);
    expect(fs.existsSync(path.join(out, "report", "compare_loss.svg"))).toBe(true);

    // The same command on a finished sweep starts nothing.
    const again = await runCli(args);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toMatch(/starting|resuming/);
  });

  it("stops its runs at a checkpoint on SIGINT and says how to continue", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "il-sweep-"));
    const specFile = path.join(tmp, "sweep.json");
    fs.writeFileSync(specFile, JSON.stringify({ base: { ...BASE, steps: 100_000 }, runs: [{ name: "a" }, { name: "b", seed: 2 }], parallel: 2 }));
    const out = path.join(tmp, "out");
    const child = spawnCli(["sweep", "--config", specFile, "--out", out]);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const t0 = Date.now();
    while (Date.now() - t0 < 60_000 && !["a", "b"].every((n) => (stepOf(path.join(out, "runs", n)) ?? 0) > 0)) await sleep(50);
    child.kill("SIGINT");
    const code = await new Promise((r) => child.on("exit", r));
    expect(code).toBe(130);
    expect(stderr).toMatch(/SIGINT: stopping the running runs at a checkpoint/);
    const state = readState(out)!;
    expect(state.runs.map((r) => r.status)).toEqual(["interrupted", "interrupted"]);
    for (const r of state.runs) {
      expect(r.exitCode).toBe(0);
      // One SIGINT reached each run: it wrote a checkpoint at the step it stopped at, not before.
      const log = fs.readFileSync(path.join(out, "runs", `${r.name}.log`), "utf8");
      const stoppedAt = Number(/stopped at step (\d+)\//.exec(log)?.[1]);
      expect(stepOf(path.join(out, "runs", r.name))).toBe(stoppedAt);
      expect(log).not.toMatch(/again: exiting now/);
    }
  });

  it("records a failed run and goes on; failed runs start again only when asked", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "il-sweep-"));
    const spec = { base: { ...BASE, steps: 5, "checkpoint-every": 0 }, runs: [{ name: "bad", "n-embd": 30, "n-head": 4 }, { name: "good" }] };
    const first = await runSweep(spec, { out, command: CLI_COMMAND });
    const byName = (s: SweepState, n: string) => s.runs.find((r) => r.name === n)!;
    expect(byName(first.state, "bad").status).toBe("failed");
    expect(byName(first.state, "bad").exitCode).toBe(2);
    expect(byName(first.state, "bad").error).toMatch(/n-head/);
    expect(byName(first.state, "good").status).toBe("done");
    const second = await runSweep(spec, { out, command: CLI_COMMAND });
    expect(byName(second.state, "bad").attempts).toBe(1);
    expect(byName(second.state, "good").attempts).toBe(1);
    const third = await runSweep(spec, { out, command: CLI_COMMAND, retryFailed: true });
    expect(byName(third.state, "bad").attempts).toBe(2);
    expect(byName(third.state, "bad").status).toBe("failed");
    // A different spec on the same folder is refused.
    await expect(runSweep({ ...spec, runs: [{ name: "other" }] }, { out, command: CLI_COMMAND })).rejects.toThrow(/holds a different sweep/);
  });

  it("refuses a bad spec before starting any run, naming the run and the setting", async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "il-sweep-"));
    const file = path.join(tmp, "s.json");
    const err: string[] = [];
    const io = { stdout: { write: () => true } as unknown as NodeJS.WritableStream, stderr: { write: (s: string) => err.push(s) } as unknown as NodeJS.WritableStream };
    fs.writeFileSync(file, JSON.stringify({ grid: { lr: [0.1, -1] } }));
    expect(await main(["sweep", "--config", file, "--out", path.join(tmp, "o")], io)).toBe(2);
    expect(err.join("")).toMatch(/run 1_lr=-1: setting "lr" of .*s\.json must be a number > 0 \(got -1\)/);
    fs.writeFileSync(file, JSON.stringify({ runs: [{ layers: 2 }] }));
    expect(await main(["sweep", "--config", file, "--out", path.join(tmp, "o")], io)).toBe(2);
    expect(err.join("")).toMatch(/unknown setting "layers"/);
    expect(fs.existsSync(path.join(tmp, "o"))).toBe(false);
  });
});
