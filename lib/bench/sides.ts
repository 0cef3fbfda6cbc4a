// Starting the two sides of a comparison as child processes: the innerloop worker (Node) and the
// PyTorch reference script (python3). Each gets the same spec file and prints one JSON line.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { SideResult } from "./spec.js";

const here = dirname(fileURLToPath(import.meta.url));
/** The package root: two levels above lib/bench or dist/bench. */
export const packageRoot = resolve(here, "..", "..");

/** One side's run: its JSON line, what it wrote to stderr, and the process's wall time. */
export type SideRun = JsonRun<SideResult>;

export interface SpawnOptions {
  /** Kill the process after this many seconds (default 1800). */
  timeoutSeconds?: number;
  /** Where to echo the child's stderr as it comes (e.g. process.stderr), if anywhere. */
  echo?: NodeJS.WritableStream;
}

/** The command that runs an innerloop worker (`name`-main): compiled JS, or the TypeScript source through tsx. */
function workerCommand(name = "worker"): string[] {
  const js = join(here, `${name}-main.js`);
  if (existsSync(js)) return ["--expose-gc", js];
  return ["--expose-gc", "--import", "tsx", join(here, `${name}-main.ts`)];
}

export function pythonExecutable(): string {
  return process.env.PYTHON || "python3";
}

export function torchScript(name = "torch_step.py"): string {
  return join(packageRoot, "scripts", "bench", name);
}

export function runInnerloopSide(specFile: string, opts: SpawnOptions = {}): Promise<SideRun> {
  return runJsonProcess(process.execPath, [...workerCommand(), specFile], "innerloop", opts);
}

export function runTorchSide(specFile: string, opts: SpawnOptions = {}): Promise<SideRun> {
  return runJsonProcess(pythonExecutable(), [torchScript(), specFile], "pytorch", opts);
}

/** The analysis comparison's innerloop side (analysis-worker-main) on a spec file. */
export function runInnerloopAnalysis<T>(specFile: string, opts: SpawnOptions = {}): Promise<JsonRun<T>> {
  return runJsonProcess<T>(process.execPath, [...workerCommand("analysis-worker"), specFile], "innerloop analyze", opts);
}

/** scripts/bench/torch_analysis.py with a subcommand (make-model, analyze) on a spec file. */
export function runTorchAnalysis<T>(command: "make-model" | "analyze", specFile: string, opts: SpawnOptions = {}): Promise<JsonRun<T>> {
  return runJsonProcess<T>(pythonExecutable(), [torchScript("torch_analysis.py"), command, specFile], `PyTorch ${command}`, opts);
}

/** The per-call cost of `torch.aten` (aten-call-main), with the calls per round and rounds as arguments. */
export function runInnerloopAtenCalls<T>(calls: number, rounds: number, opts: SpawnOptions = {}): Promise<JsonRun<T>> {
  return runJsonProcess<T>(process.execPath, [...workerCommand("aten-call"), String(calls), String(rounds)], "innerloop torch.aten calls", opts);
}

/** scripts/bench/torch_aten_call.py: the same calls through Python's `torch.ops.aten`. */
export function runTorchAtenCalls<T>(calls: number, rounds: number, opts: SpawnOptions = {}): Promise<JsonRun<T>> {
  return runJsonProcess<T>(pythonExecutable(), [torchScript("torch_aten_call.py"), String(calls), String(rounds)], "PyTorch torch.ops.aten calls", opts);
}

export interface JsonRun<T> {
  result: T;
  /** What the process wrote to stderr (messages, warnings). */
  stderr: string;
  wallSeconds: number;
}

function runJsonProcess<T = SideResult>(cmd: string, args: string[], label: string, opts: SpawnOptions): Promise<JsonRun<T>> {
  const t0 = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: packageRoot, stdio: ["ignore", "pipe", "pipe"], env: process.env });
    let out = "";
    let err = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, (opts.timeoutSeconds ?? 1800) * 1000);
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      opts.echo?.write(d);
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${label}: could not start ${cmd}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const wallSeconds = (Date.now() - t0) / 1000;
      if (timedOut) return reject(new Error(`${label}: timed out after ${opts.timeoutSeconds ?? 1800} s`));
      const lines = out.trim().split("\n");
      const last = lines[lines.length - 1] ?? "";
      if (code !== 0 || !last.startsWith("{")) {
        const tail = err.trim().split("\n").slice(-8).join("\n");
        return reject(new Error(`${label}: exited with ${signal ?? code}${tail ? `:\n${tail}` : ""}`));
      }
      try {
        resolvePromise({ result: JSON.parse(last) as T, stderr: err, wallSeconds });
      } catch (e) {
        reject(new Error(`${label}: bad JSON output: ${(e as Error).message}`));
      }
    });
  });
}
