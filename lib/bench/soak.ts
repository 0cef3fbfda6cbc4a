// The soak: a long training run of a small model through the real trainer with the analysis plugin
// on, measuring resident memory and live tensors after a warm-up and at the end (each after a full
// garbage collection). Memory that grows with the number of steps (a leaked tensor, a wrapper whose
// native memory is never freed, a cache that keeps every batch) shows up here and nowhere else.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { torch } from "../torch/index.js";
import { resolveConfig, type TrainConfig } from "../train/config.js";
import { Trainer } from "../train/trainer.js";
import type { TrainerPlugin } from "../train/plugins.js";
import { createAnalysisPlugin } from "../analysis/plugin.js";

export interface SoakOptions {
  /** Steps measured (after the warm-up). */
  steps: number;
  /** Steps before the first measurement: allocator pools, JIT and caches reach their steady size. */
  warmupSteps?: number;
  /** Analysis snapshot every this many steps (default 10). */
  analyzeEvery?: number;
  /** Held-out windows per snapshot (default 16, the trainer's default). */
  analyzeWindows?: number;
  /** Checkpoint every this many steps (default 1000; 0 = only at the end). */
  checkpointEvery?: number;
  /** Model and batch settings over the `tiny` preset (2 layers x 64, T 64, batch 16). */
  config?: Partial<TrainConfig>;
  /** Live-tensor samples are taken this often (default every 10 steps). */
  sampleEvery?: number;
  /** Called every `sampleEvery` measured steps. */
  onSample?: (s: SoakSample) => void;
  /** Where the run directory goes (default: a temporary folder, removed afterwards). */
  runDir?: string;
}

export interface SoakSample {
  step: number;
  rssKB: number;
  liveTensors: number;
}

export interface SoakResult {
  steps: number;
  warmupSteps: number;
  analyzeEvery: number;
  analyzeWindows: number;
  snapshots: number;
  config: { nLayer: number; nEmbd: number; seqLen: number; batchSize: number; device: string };
  /** Resident memory (KiB) after the warm-up and after the last step, both right after a full GC. */
  rssStartKB: number;
  rssEndKB: number;
  /** (end - start) / start. */
  rssGrowth: number;
  /** V8 heap in use and memory reported as external (native tensor bytes among it), KiB, at the same two points. */
  heapStartKB: number;
  heapEndKB: number;
  /** The V8 heap's committed size (KiB): grows with the allocation rate, up to V8's limits, without a leak. */
  heapTotalStartKB: number;
  heapTotalEndKB: number;
  externalStartKB: number;
  externalEndKB: number;
  /** Largest resident memory seen at any sample (no GC before it). */
  rssMaxKB: number;
  liveTensorsStart: number;
  liveTensorsEnd: number;
  /** Smallest and largest live-tensor count over the samples between steps. */
  liveTensorsMin: number;
  liveTensorsMax: number;
  /** Wall time of the measured steps, seconds. */
  seconds: number;
  lossStart: number;
  lossEnd: number;
}

let gcFn: (() => void) | null = null;

/** A full garbage collection, with or without --expose-gc. */
export function fullGc(): void {
  if (!gcFn) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      // The documented way to reach the collector in a process started without --expose-gc.
      setFlagsFromString("--expose-gc");
      gcFn = runInNewContext("gc") as () => void;
    }
  }
  gcFn();
  gcFn();
}

export function rssKB(): number {
  return Math.round(process.memoryUsage.rss() / 1024);
}

/** A turn of the event loop: Node-API runs the finalizers of collected wrappers from there. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    fullGc();
    await turn();
  }
}

interface Mark {
  rss: number;
  heap: number;
  heapTotal: number;
  external: number;
  live: number;
  t0: bigint;
}

function mark(): Mark {
  const m = process.memoryUsage();
  const kb = (b: number) => Math.round(b / 1024);
  return { rss: kb(m.rss), heap: kb(m.heapUsed), heapTotal: kb(m.heapTotal), external: kb(m.external), live: torch.memory().liveTensors, t0: process.hrtime.bigint() };
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new RangeError(`soak: steps must be an integer >= 1, got ${o.steps}`);
  const warmupSteps = o.warmupSteps ?? Math.min(200, Math.max(20, Math.round(o.steps / 10)));
  const analyzeEvery = o.analyzeEvery ?? 10;
  const analyzeWindows = o.analyzeWindows ?? 16;
  const sampleEvery = o.sampleEvery ?? 10;
  const ownDir = o.runDir === undefined;
  const runDir = o.runDir ?? join(mkdtempSync(join(tmpdir(), "innerloop-soak-")), "run");
  const config = resolveConfig(
    {
      evalEvery: 0,
      checkpointEvery: o.checkpointEvery ?? 1000,
      ...o.config,
      steps: warmupSteps + o.steps,
      analyzeEvery,
      analyzeWindows,
    },
    "tiny",
  );
  const samples: SoakSample[] = [];
  let start: Mark | null = null;
  let end: Mark | null = null;
  const losses: number[] = [];
  // Measures from inside the loop (the trainer awaits plugins, so the GC and the event-loop turns
  // happen between two steps, with nothing of a step alive).
  const probe: TrainerPlugin = {
    name: "soak-probe",
    afterStep: async (ctx) => {
      losses.push(ctx.loss);
      if (ctx.step === warmupSteps) {
        await settle();
        start = mark();
      } else if (ctx.step === warmupSteps + o.steps) {
        // The end is measured here, after the last step and its snapshot, and before the final
        // checkpoint and timeline write, which happen once per run and are not part of the steady state.
        await settle();
        end = mark();
        const s = { step: ctx.step, rssKB: end.rss, liveTensors: end.live };
        samples.push(s);
        o.onSample?.(s);
      } else if (start && (ctx.step - warmupSteps) % sampleEvery === 0) {
        const s = { step: ctx.step, rssKB: rssKB(), liveTensors: torch.memory().liveTensors };
        samples.push(s);
        o.onSample?.(s);
      }
    },
  };
  try {
    const trainer = await Trainer.create({ runDir, config, progress: { quiet: true } });
    const analysis = createAnalysisPlugin({ config: trainer.config, runDir, resumed: false });
    // Analysis first, so that the probe measures after the snapshot of the same step.
    trainer.addPlugin(analysis).addPlugin(probe);
    await trainer.run();
    const s0 = start as Mark | null;
    const e0 = end as Mark | null;
    if (!s0 || !e0) throw new Error("soak: the run stopped before its last step");
    const seconds = Number(e0.t0 - s0.t0) / 1e9;
    const rssEnd = e0.rss;
    const liveEnd = e0.live;
    const lives = samples.map((s) => s.liveTensors);
    return {
      steps: o.steps,
      warmupSteps,
      analyzeEvery,
      analyzeWindows,
      snapshots: analysis.count,
      config: { nLayer: config.nLayer, nEmbd: config.nEmbd, seqLen: config.seqLen, batchSize: config.batchSize, device: config.device },
      rssStartKB: s0.rss,
      rssEndKB: rssEnd,
      rssGrowth: (rssEnd - s0.rss) / s0.rss,
      heapStartKB: s0.heap,
      heapEndKB: e0.heap,
      heapTotalStartKB: s0.heapTotal,
      heapTotalEndKB: e0.heapTotal,
      externalStartKB: s0.external,
      externalEndKB: e0.external,
      rssMaxKB: Math.max(s0.rss, rssEnd, ...samples.map((s) => s.rssKB)),
      liveTensorsStart: s0.live,
      liveTensorsEnd: liveEnd,
      liveTensorsMin: Math.min(s0.live, ...lives),
      liveTensorsMax: Math.max(s0.live, ...lives),
      seconds,
      lossStart: losses[warmupSteps - 1] ?? NaN,
      lossEnd: losses.at(-1) ?? NaN,
    };
  } finally {
    if (ownDir) rmSync(join(runDir, ".."), { recursive: true, force: true });
  }
}

export function formatSoak(r: SoakResult): string {
  const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
  return [
    `soak: ${r.steps} steps after ${r.warmupSteps} warm-up (${r.config.nLayer} layers x ${r.config.nEmbd}, T ${r.config.seqLen}, batch ${r.config.batchSize}, ${r.config.device}), ` +
      `analysis of ${r.analyzeWindows} windows every ${r.analyzeEvery} steps (${r.snapshots} snapshots), ${r.seconds.toFixed(1)} s`,
    `  RSS after warm-up ${mb(r.rssStartKB)}, at the end ${mb(r.rssEndKB)}: growth ${(100 * r.rssGrowth).toFixed(2)}% (max seen ${mb(r.rssMaxKB)})`,
    `  V8 heap used ${mb(r.heapStartKB)} -> ${mb(r.heapEndKB)} (committed ${mb(r.heapTotalStartKB)} -> ${mb(r.heapTotalEndKB)}), external ${mb(r.externalStartKB)} -> ${mb(r.externalEndKB)}`,
    `  live tensors ${r.liveTensorsStart} -> ${r.liveTensorsEnd} (min ${r.liveTensorsMin}, max ${r.liveTensorsMax} between steps)`,
    `  loss ${r.lossStart.toFixed(4)} -> ${r.lossEnd.toFixed(4)}`,
  ].join("\n");
}

/**
 * V8 flags of the soak's process. The young generation is fixed at its largest size from the start:
 * left to itself, V8 doubles it at moments of its choosing (seen once after ~3,000 steps), which
 * adds 16-32 MB of committed heap in one step and reads as growth although nothing is retained.
 */
export const SOAK_NODE_FLAGS = ["--expose-gc", "--min-semi-space-size=16", "--max-semi-space-size=16"];

/**
 * Runs the soak in a fresh Node process with SOAK_NODE_FLAGS (compiled JS next to this file, or
 * the TypeScript source through tsx) and returns its result; the child's stderr (samples) goes to
 * `echo` if given.
 */
export function runSoakProcess(o: Omit<SoakOptions, "onSample"> & { threads?: number }, echo?: NodeJS.WritableStream): Promise<SoakResult> {
  const here = dirname(fileURLToPath(import.meta.url));
  const js = join(here, "soak-main.js");
  const entry = existsSync(js) ? [js] : ["--import", "tsx", join(here, "soak-main.ts")];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...SOAK_NODE_FLAGS, ...entry, JSON.stringify(o)], {
      cwd: resolve(here, "..", ".."),
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, OMP_NUM_THREADS: String(o.threads ?? 1) },
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      echo?.write(d);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code !== 0 || !last.startsWith("{")) {
        return reject(new Error(`soak process exited with ${signal ?? code}: ${err.trim().split("\n").slice(-5).join(" | ")}`));
      }
      resolvePromise(JSON.parse(last) as SoakResult);
    });
  });
}
