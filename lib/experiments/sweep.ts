/**
 * Sweeps: a grid or list of training settings, each trained as a normal run directory by its own
 * `innerloop train` process, one after another or N at a time, ending with a comparison report of
 * the finished runs.
 *
 *   OUT/sweep.json             the sweep's state: every run's settings, status, exit code, error
 *   OUT/runs/NAME/             each run's directory (checkpoint, metrics.jsonl, analysis/, ...)
 *   OUT/runs/NAME.config.json  the settings the run was started with (train --config)
 *   OUT/runs/NAME.log          the run's stdout and stderr
 *   OUT/report.html            the comparison of the finished runs (report --compare)
 *
 * Resumable as a whole: started again on the same OUT, finished runs are kept, a run with a
 * checkpoint continues from it (`train --resume`), one without starts over, and failed runs stay
 * recorded as failed (unless retryFailed). A run that fails does not stop the others.
 *
 * Each run's process has a process group of its own, so that a Ctrl-C in the terminal reaches the
 * sweep alone, which passes one SIGINT on to each run (a second would make a run exit without its
 * checkpoint). A run whose sweep was killed goes on by itself; the next sweep waits for it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../util/atomic.js";
import { hasCheckpoint, TRAINER_STATE_FILE } from "../train/checkpoint.js";
import { expandSweep, type RunSettings, type SweepSpec } from "./spec.js";

export type RunStatus = "pending" | "running" | "interrupted" | "done" | "failed";

export interface SweepRun {
  name: string;
  settings: RunSettings;
  status: RunStatus;
  exitCode?: number | null;
  /** The last line the run wrote to stderr when it failed. */
  error?: string;
  /** Processes started for this run (more than one after resumes). */
  attempts: number;
  seconds?: number;
  /** Process id of the run's train process while it runs. */
  pid?: number;
}

export interface SweepState {
  format: 1;
  /** Hash of the expanded runs: a changed spec on the same OUT is refused. */
  specHash: string;
  runs: SweepRun[];
}

export interface SweepOptions {
  out: string;
  /** Overrides spec.parallel. */
  parallel?: number;
  /** Start runs recorded as failed again. */
  retryFailed?: boolean;
  /** Skip the comparison report at the end. */
  noReport?: boolean;
  log?: (msg: string) => void;
  /** Stops the sweep: running runs get SIGINT (they checkpoint and exit) and no new run starts. */
  signal?: AbortSignal;
  /** The innerloop command to run (default: this package's bin/innerloop.js with this Node). */
  command?: string[];
}

export interface SweepResult {
  state: SweepState;
  /** OUT/report.html when the comparison was written. */
  report?: string;
  stopped: boolean;
}


const statePath = (out: string) => path.join(out, "sweep.json");

function saveState(out: string, state: SweepState): void {
  writeFileAtomic(statePath(out), JSON.stringify(state, null, 1) + "\n");
}

/** The state of the sweep in OUT: the saved one when it matches the spec, else a new one. */
function loadState(out: string, runs: Array<{ name: string; settings: RunSettings }>, retryFailed: boolean): SweepState {
  const specHash = createHash("sha256").update(JSON.stringify(runs)).digest("hex").slice(0, 16);
  const p = statePath(out);
  if (fs.existsSync(p)) {
    const old = JSON.parse(fs.readFileSync(p, "utf8")) as SweepState;
    if (old.specHash !== specHash) throw new Error(`${out} holds a different sweep (its runs or settings differ); choose another --out`);
    for (const r of old.runs) {
      // A run that was running when the sweep stopped (or was killed) continues.
      if (r.status === "running") r.status = "interrupted";
      if (r.status === "failed" && retryFailed) r.status = "pending";
    }
    return old;
  }
  return { format: 1, specHash, runs: runs.map((r) => ({ ...r, status: "pending", attempts: 0 })) };
}

/** How many runs at a time: the request, bounded by CPU cores, or by CUDA devices when runs use CUDA. */
async function concurrency(requested: number, runs: SweepRun[], log?: (m: string) => void): Promise<{ n: number; devices: string[] | null }> {
  const cuda = runs.some((r) => String(r.settings.device ?? "").startsWith("cuda"));
  if (cuda) {
    const { torch } = await import("../torch/index.js");
    const count = torch.cuda.isAvailable() ? torch.cuda.deviceCount() : 0;
    if (count === 0) throw new Error("the sweep's runs ask for CUDA, but no CUDA device is available");
    const n = Math.max(1, Math.min(requested, count));
    if (n < requested) log?.(`running ${n} at a time: ${count} CUDA device(s)`);
    return { n, devices: Array.from({ length: count }, (_, i) => `cuda:${i}`) };
  }
  const cores = os.availableParallelism();
  const n = Math.max(1, Math.min(requested, cores));
  if (n < requested) log?.(`running ${n} at a time: ${cores} CPU cores`);
  return { n, devices: null };
}

function defaultCommand(): string[] {
  // dist/experiments/sweep.js -> bin/innerloop.js
  return [process.execPath, fileURLToPath(new URL("../../bin/innerloop.js", import.meta.url))];
}

function isFinished(runDir: string): boolean {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(runDir, TRAINER_STATE_FILE), "utf8")) as { step: number; config: { steps: number } };
    return s.step >= s.config.steps;
  } catch {
    return false;
  }
}

/**
 * Whether a process is still training in `runDir` (a run whose sweep was killed goes on by itself).
 * Where /proc exists, any `train --out/--resume runDir` process counts, so that a sweep killed
 * before it could record a run's pid still finds the run; elsewhere the recorded pid is asked.
 */
function stillRunning(runDir: string, pid: number | undefined): boolean {
  if (fs.existsSync("/proc/self/cmdline")) {
    for (const e of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
      try {
        const args = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
        // A train process writing there (`train --out DIR` or `train --resume DIR`), not e.g. a live report of it.
        if (args.includes("train") && args.some((a, i) => a === runDir && (args[i - 1] === "--out" || args[i - 1] === "--resume"))) return true;
      } catch {
        // the process ended, or is not ours to read
      }
    }
    return false;
  }
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function lastLine(file: string): string {
  try {
    const text = fs.readFileSync(file, "utf8");
    const lines = text.split(/[\r\n]+/).map((l) => l.trim()).filter((l) => l !== "");
    return lines[lines.length - 1] ?? "";
  } catch {
    return "";
  }
}

/** Runs (or continues) the sweep in `opts.out`; resolves when every run finished or failed, or the sweep was stopped. */
export async function runSweep(spec: SweepSpec, opts: SweepOptions): Promise<SweepResult> {
  const expanded = expandSweep(spec);
  const out = opts.out;
  const runsDir = path.join(out, "runs");
  fs.mkdirSync(runsDir, { recursive: true });
  const state = loadState(out, expanded, opts.retryFailed ?? false);
  saveState(out, state);
  const requested = opts.parallel ?? spec.parallel ?? 1;
  if (!Number.isInteger(requested) || requested < 1) throw new Error(`parallel must be an integer >= 1 (got ${requested})`);
  const { n, devices } = await concurrency(requested, state.runs, opts.log);
  const threads = Math.max(1, Math.floor(os.availableParallelism() / n));
  const command = opts.command ?? defaultCommand();
  const children = new Set<ChildProcess>();
  let stopped = opts.signal?.aborted ?? false;
  const onAbort = () => {
    stopped = true;
    for (const c of children) c.kill("SIGINT");
  };
  opts.signal?.addEventListener("abort", onAbort);
  const freeDevices = devices ? [...devices] : null;

  const runOne = async (run: SweepRun): Promise<void> => {
    const dir = path.join(runsDir, run.name);
    const log = path.join(runsDir, `${run.name}.log`);
    const configFile = path.join(runsDir, `${run.name}.config.json`);
    if (stillRunning(dir, run.pid)) {
      // Started by an earlier sweep process that was killed: its run goes on; wait for it.
      opts.log?.(`waiting for ${run.name} (started by an earlier sweep, still running)`);
      // A sweep killed between starting the process and saving the state did not count it.
      run.attempts = Math.max(run.attempts, 1);
      while (stillRunning(dir, run.pid) && !stopped) await new Promise((r) => setTimeout(r, 250));
      if (stopped) return;
    }
    delete run.pid;
    if (isFinished(dir)) {
      run.status = "done";
      saveState(out, state);
      opts.log?.(`${run.name}: done`);
      return;
    }
    const resume = hasCheckpoint(dir);
    // A run killed before its first checkpoint starts over in an empty folder.
    if (!resume) fs.rmSync(dir, { recursive: true, force: true });
    const device = freeDevices && String(run.settings.device ?? "").startsWith("cuda") ? freeDevices.shift() : undefined;
    const settings = device ? { ...run.settings, device } : run.settings;
    writeFileAtomic(configFile, JSON.stringify(settings, null, 1) + "\n");
    const args = resume ? ["train", "--resume", dir, ...(device ? ["--device", device] : [])] : ["train", "--config", configFile, "--out", dir];
    if (spec.tensorboard) args.push("--tensorboard");
    opts.log?.(`${resume ? "resuming" : "starting"} ${run.name}`);
    const fd = fs.openSync(log, "a");
    const t0 = Date.now();
    try {
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(command[0]!, [...command.slice(1), ...args], {
          stdio: ["ignore", fd, fd],
          detached: true,
          env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
        });
        children.add(child);
        run.status = "running";
        run.attempts++;
        run.pid = child.pid;
        saveState(out, state);
        child.on("error", (e) => {
          fs.writeSync(fd, `cannot start ${command[0]}: ${e.message}\n`);
          resolve(null);
        });
        child.on("exit", (c, sig) => {
          children.delete(child);
          resolve(c ?? (sig ? 128 : null));
        });
      });
      delete run.pid;
      run.exitCode = code;
      run.seconds = (run.seconds ?? 0) + (Date.now() - t0) / 1000;
      if (code === 0 && isFinished(dir)) {
        run.status = "done";
        delete run.error;
      } else if (code === 0 || stopped) {
        run.status = "interrupted";
      } else {
        run.status = "failed";
        run.error = lastLine(log);
      }
      opts.log?.(`${run.name}: ${run.status}${run.error ? ` (${run.error})` : ""}`);
    } finally {
      fs.closeSync(fd);
      if (device) freeDevices!.push(device);
      saveState(out, state);
    }
  };

  try {
    const queue = state.runs.filter((r) => r.status === "pending" || r.status === "interrupted");
    const workers = Array.from({ length: n }, async () => {
      for (let r = queue.shift(); r !== undefined && !stopped; r = queue.shift()) await runOne(r);
    });
    await Promise.all(workers);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
  let report: string | undefined;
  const done = state.runs.filter((r) => r.status === "done");
  if (!stopped && !opts.noReport && done.length >= 2) {
    const { writeCompareReport } = await import("../analysis/report/compare.js");
    await writeCompareReport(done.map((r) => path.join(runsDir, r.name)), out, { labels: done.map((r) => r.name) });
    report = path.join(out, "report.html");
  }
  return { state, report, stopped };
}
