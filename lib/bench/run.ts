// The benchmark: for each configuration, the innerloop side and the PyTorch side run the same
// training step on the same random-token batches (from one file) and the same initial weights
// (written by the innerloop side, read by the reference), in separate processes on the same machine
// one after the other, with the same thread count. Results: median step times and their ratio,
// throughput and MFU on CUDA, peak memory, and optionally a phase profile, the analysis overhead
// and memory over a long run.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { CONFIGS, CPU_DEFAULT, CUDA_DEFAULT, flopsPerToken, peakBf16Flops, type BenchConfig } from "./configs.js";
import { DEFAULT_OPTIM, type SideResult, type SideSpec } from "./spec.js";
import { runInnerloopSide, runTorchSide, type SideRun } from "./sides.js";
import { median } from "./stats.js";
import { randomTokens } from "./tokens.js";
import { ANALYSIS_CONFIGS, compareAnalysis, type AnalysisComparison } from "./analysis-compare.js";
import { runAtenCallBench, type AtenCallReport } from "./aten-call.js";

export interface BenchOptions {
  configs?: string[];
  device?: "cpu" | "cuda";
  /** Timed steps per side (after warmup). */
  reps?: number;
  warmup?: number;
  /** Steps of the memory run (tiny config); 0 skips it. */
  steps?: number;
  /** Processes per side, alternating with the other side; step times are pooled (default 3 on CPU, 1 on CUDA). */
  rounds?: number;
  /**
   * Intra-op threads on both sides, one setting or several (each timed in turn); 0 leaves each
   * library at its own default, what a user gets. Default on CPU: [0, 1] (the library default,
   * then one thread); on CUDA the cores. The analysis overhead and the memory run use 1 when it is
   * among them.
   */
  threads?: number | number[];
  /** The analysis against the PyTorch hooks script (analysis-compare.ts): sizes by name; [] skips it. Default on CPU: small, gpt2-124m. */
  analysisConfigs?: string[];
  /**
   * Calls per round of the `torch.aten` per-call comparison with Python's `torch.ops.aten`
   * (aten-call.ts); 0 skips it. Default on CPU 20000.
   */
  atenCalls?: number;
  /** Windows of the gpt2-124m analysis comparison (default 4). */
  analysisWindows124m?: number;
  profile?: boolean;
  /** CUDA: also time innerloop's step captured into a CUDA graph, against the same PyTorch eager runs. */
  cudaGraph?: boolean;
  /** Measure the analysis plugin's overhead (every step) with each of these numbers of windows; 0 or [] skips it. */
  analyzeWindows?: number | number[];
  /** Steps timed with and without analysis. */
  analyzeSteps?: number;
  /** Start both sides from the same weights (written by innerloop, read by PyTorch). Default true except gpt2-124m. */
  sameWeights?: boolean;
  seed?: number;
  timeoutSeconds?: number;
  /** Progress messages go here. */
  log?: (line: string) => void;
  /** Echo the children's stderr here. */
  echo?: NodeJS.WritableStream;
}

export interface ConfigResult {
  name: string;
  /** The thread setting of this row (0: each library's default; the sides report the count they ran with). */
  threads: number;
  innerloop: SideResult;
  pytorch: SideResult;
  /** innerloop median / PyTorch median (below 1: innerloop is faster). */
  ratio: number;
  /** The same for the CPU time of a step (less sensitive to other load on the machine). */
  cpuRatio: number;
  /** Both sides ran the same model shape, batch, precision and optimizer settings. */
  sameConfig: boolean;
  /** |loss difference| at the first step (same weights and batch); null when weights differ. */
  firstLossDiff: number | null;
  tokensPerStep: number;
  tokensPerSec?: { innerloop: number; pytorch: number };
  mfu?: { innerloop: number; pytorch: number; peakFlops: number; flopsPerToken: number };
}

export interface BenchReport {
  date: string;
  machine: { cpu: string; cores: number; node: string; platform: string };
  device: string;
  deviceName: string | null;
  /** The thread settings timed (0: each library's default). */
  threads: number[];
  reps: number;
  warmup: number;
  rounds: number;
  configs: ConfigResult[];
  memory?: { config: string; innerloop: SideResult["soak"]; pytorch: SideResult["soak"] };
  analysis?: Array<{ config: string } & NonNullable<SideResult["analysis"]>>;
  /** `innerloop analyze` against the PyTorch hooks script, fields compared, at each size. */
  analysisVsTorch?: AnalysisComparison[];
  /** The per-call cost of `torch.aten` against Python's `torch.ops.aten`. */
  atenCalls?: AtenCallReport;
}

/** Goals of the issue for the CPU configurations (innerloop / PyTorch step time), at every thread setting. */
export const CPU_GOALS: Record<string, number> = { micro: 0.3, tiny: 0.75, mid: 0.9 };
/** Goal for the analysis: innerloop's time at most this fraction of the PyTorch script's, peak RSS no higher. */
export const ANALYSIS_GOAL = 0.5;

export function resolveConfigs(names: string[] | undefined, device: "cpu" | "cuda"): BenchConfig[] {
  const list = names && names.length > 0 ? names : device === "cuda" ? CUDA_DEFAULT : CPU_DEFAULT;
  return list.map((n) => {
    const c = CONFIGS[n];
    if (!c) throw new RangeError(`unknown benchmark config '${n}' (known: ${Object.keys(CONFIGS).join(", ")})`);
    if (c.cudaOnly && device !== "cuda") throw new RangeError(`config '${n}' runs only with --device cuda`);
    return c;
  });
}

/** The step's token file: little-endian int32 (vocabularies here are far below 2^31). */
function writeTokens(file: string, count: number, vocab: number, seed: number): void {
  writeFileSync(file, Buffer.from(Int32Array.from(randomTokens(count, vocab, seed)).buffer));
}

function cpuModel(): string {
  return cpus()[0]?.model?.trim() || "unknown";
}

export async function runBench(o: BenchOptions = {}): Promise<BenchReport> {
  const device = o.device ?? "cpu";
  const configs = resolveConfigs(o.configs, device);
  const reps = o.reps ?? 20;
  const warmup = o.warmup ?? 10;
  // Several alternating rounds on the CPU, where other work on the machine moves single runs by 10-20%.
  const rounds = o.rounds ?? (device === "cpu" ? 3 : 1);
  // One thread by default on the CPU: on a machine shared with other work, an OpenMP team of two
  // stalls at every barrier whenever one of its cores is busy elsewhere, which measures the
  // neighbours rather than the step.
  const threadSettings = [o.threads ?? (device === "cpu" ? [0, 1] : availableParallelism())].flat();
  // The analysis overhead and the memory run are measured at one setting: 1 thread where timed.
  const threads = threadSettings.includes(1) ? 1 : threadSettings[0]!;
  const seed = o.seed ?? 1234;
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), "innerloop-bench-"));
  const spawnOpts = { timeoutSeconds: o.timeoutSeconds ?? 1800, echo: o.echo };

  const specFor = (c: BenchConfig, extra: Partial<SideSpec> = {}): SideSpec => {
    const nBatches = Math.max(1, Math.min(8, (extra.warmup ?? warmup) + (extra.reps ?? reps)));
    const maxBatch = Math.max(...c.batchCandidates);
    const tokensFile = join(dir, `${c.name}-tokens.bin`);
    writeTokens(tokensFile, nBatches * maxBatch * (c.model.seqLen + 1), c.model.vocabSize, seed);
    return {
      configName: c.name,
      model: c.model,
      device: device === "cuda" ? "cuda:0" : "cpu",
      precision: device === "cuda" ? c.precision : "float32",
      tf32: device === "cuda" && c.tf32,
      batchCandidates: c.batchCandidates,
      threads,
      seed,
      warmup,
      reps,
      optim: { ...DEFAULT_OPTIM },
      tokensFile,
      nBatches,
      maxBatch,
      ...extra,
    };
  };

  /** Whether both sides start from the same weights, and the file the innerloop side writes them to. */
  const sameWeights = (c: BenchConfig): boolean => o.sameWeights ?? !c.cudaOnly;
  const initWeights = (c: BenchConfig): string | undefined => (sameWeights(c) ? join(dir, `${c.name}-init.safetensors`) : undefined);

  /**
   * Runs both sides with the same spec, `rounds` times alternating (innerloop, PyTorch, PyTorch,
   * innerloop, ...) so that a change in machine load hits both alike; the step times of all rounds
   * are pooled. The innerloop side writes the initial weights the reference reads.
   */
  const runPair = async (c: BenchConfig, extra: Partial<SideSpec> = {}, rounds = 1): Promise<[SideResult, SideResult]> => {
    const weights = initWeights(c);
    const base = specFor(c, extra);
    const ilFile = join(dir, `${c.name}-innerloop.json`);
    const ptFile = join(dir, `${c.name}-pytorch.json`);
    writeFileSync(ilFile, JSON.stringify({ ...base, saveWeightsTo: weights }));
    const { analysis: _unused, ...ptSpec } = base;
    writeFileSync(ptFile, JSON.stringify({ ...ptSpec, weightsFile: weights }));
    const ils: SideRun[] = [];
    const pts: SideRun[] = [];
    for (let k = 0; k < rounds; k++) {
      if (k % 2 === 0) {
        ils.push(await runInnerloopSide(ilFile, spawnOpts));
        pts.push(await runTorchSide(ptFile, spawnOpts));
      } else {
        pts.push(await runTorchSide(ptFile, spawnOpts));
        ils.push(await runInnerloopSide(ilFile, spawnOpts));
      }
      // On CUDA each side takes the largest batch that fits; if they differ, run again at the smaller.
      const bi = ils[k]!.result.config.batch;
      const bp = pts[k]!.result.config.batch;
      if (bi !== bp) {
        const b = Math.min(bi, bp);
        log(`  batch ${bi} (innerloop) vs ${bp} (PyTorch): running both at ${b}`);
        return runPair(c, { ...extra, batchCandidates: [b] }, rounds);
      }
    }
    return [pool(ils.map((r) => r.result)), pool(pts.map((r) => r.result))];
  };

  const report: BenchReport = {
    date: new Date().toISOString(),
    machine: { cpu: cpuModel(), cores: cpus().length, node: process.version, platform: `${process.platform}-${process.arch}` },
    device,
    deviceName: null,
    threads: threadSettings,
    reps,
    warmup,
    rounds,
    configs: [],
  };

  try {
    const atenCalls = o.atenCalls ?? (device === "cpu" ? 20000 : 0);
    if (atenCalls > 0) {
      log(`torch.aten per call against Python's torch.ops.aten: ${atenCalls} calls per round, 1 thread`);
      report.atenCalls = await runAtenCallBench({ ...spawnOpts, calls: atenCalls });
    }

    for (const t of threadSettings) for (const c of configs) {
      log(`${c.name}, ${threadsLabel(t)}: ${c.model.nLayer} layers x ${c.model.nEmbd}, T ${c.model.seqLen}, batch ${c.batchCandidates.join(" or ")}, ${reps} reps after ${warmup} warmup`);
      const [il, pt] = await runPair(c, { profile: o.profile ?? false, threads: t }, rounds);
      const r = compare(c, il, pt, sameWeights(c), t);
      report.deviceName = il.deviceName ?? pt.deviceName;
      report.configs.push(r);
      log(`  innerloop ${fmtMs(r.innerloop.medianMs)}  PyTorch ${fmtMs(r.pytorch.medianMs)}  ratio ${r.ratio.toFixed(3)} (CPU time: ${fmtMs(r.innerloop.medianCpuMs)} / ${fmtMs(r.pytorch.medianCpuMs)} = ${r.cpuRatio.toFixed(3)})`);
      if (o.cudaGraph && device === "cuda") {
        // The same configuration and batch, innerloop's step captured into a CUDA graph, against
        // the PyTorch eager runs just made (its weights are the ones written for them).
        const file = join(dir, `${c.name}-innerloop-graph.json`);
        writeFileSync(file, JSON.stringify(specFor(c, { cudaGraph: true, batchCandidates: [il.config.batch], weightsFile: initWeights(c), threads: t })));
        const runs: SideResult[] = [];
        for (let k = 0; k < rounds; k++) runs.push((await runInnerloopSide(file, spawnOpts)).result);
        const g = compare(c, pool(runs), pt, sameWeights(c), t);
        g.name = `${c.name} (CUDA graph)`;
        report.configs.push(g);
        log(`  innerloop with a CUDA graph ${fmtMs(g.innerloop.medianMs)}  ratio ${g.ratio.toFixed(3)}`);
      }
    }

    const windowCounts = [o.analyzeWindows ?? []].flat().filter((k) => k > 0);
    if (windowCounts.length > 0) report.analysis = [];
    for (const aw of windowCounts) {
      for (const c of configs.filter((c) => !c.cudaOnly)) {
        for (const rideAlong of [true, false]) {
          log(`analysis overhead: ${c.name}, analysis of ${aw} windows after every step${rideAlong ? "" : ", each in a pass of its own"}`);
          const spec = specFor(c, { analysis: { windows: aw, steps: o.analyzeSteps ?? 20, rideAlong }, reps: 1, warmup: 1 });
          const file = join(dir, `${c.name}-analysis-${aw}-${rideAlong ? "ride" : "own"}.json`);
          writeFileSync(file, JSON.stringify(spec));
          const il = await runInnerloopSide(file, spawnOpts);
          report.analysis!.push({ config: c.name, ...(il.result.analysis ?? { available: false, reason: "no result" }) });
        }
      }
    }

    const steps = o.steps ?? 0;
    if (steps > 0) {
      const c = CONFIGS.tiny!;
      log(`memory: ${steps} steps of tiny on both sides`);
      const [il, pt] = await runPair(c, { soakSteps: steps, reps: 3, warmup: 2 });
      report.memory = { config: c.name, innerloop: il.soak, pytorch: pt.soak };
    }

    const analysisConfigs = o.analysisConfigs ?? (device === "cpu" ? ["small", "gpt2-124m"] : []);
    if (analysisConfigs.length > 0) report.analysisVsTorch = [];
    for (const name of analysisConfigs) {
      const c = ANALYSIS_CONFIGS[name];
      if (!c) throw new RangeError(`unknown analysis size '${name}' (known: ${Object.keys(ANALYSIS_CONFIGS).join(", ")})`);
      const windows = name === "gpt2-124m" ? o.analysisWindows124m : undefined;
      const m = c.model;
      log(`analysis vs PyTorch hooks, ${name}: ${m.nLayer} x ${m.nEmbd}, vocabulary ${m.vocabSize}, ${windows ?? c.windows} windows of T ${m.seqLen}, batch ${c.batchSize}, default threads`);
      report.analysisVsTorch!.push(await compareAnalysis(c, { ...spawnOpts, dir, seed, rounds: 1, windows, log }));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/** One result from several rounds of the same side: step times pooled, memory maxima taken. */
function pool(rs: SideResult[]): SideResult {
  const first = rs[0]!;
  if (rs.length === 1) return first;
  const stepMs = rs.flatMap((r) => r.stepMs);
  const cpuMs = rs.flatMap((r) => r.cpuMs);
  const max = (f: (r: SideResult) => number | undefined) => Math.max(...rs.map((r) => f(r) ?? 0));
  return {
    ...first,
    stepMs,
    medianMs: median(stepMs),
    cpuMs,
    medianCpuMs: median(cpuMs),
    maxRssKB: max((r) => r.maxRssKB),
    ...(first.cudaMaxAllocated !== undefined ? { cudaMaxAllocated: max((r) => r.cudaMaxAllocated) } : {}),
    roundMedians: rs.map((r) => r.medianMs),
  };
}

function sameConfig(a: SideResult["config"], b: SideResult["config"]): boolean {
  const keys = ["nLayer", "nEmbd", "nHead", "seqLen", "nPositions", "vocabSize", "batch", "precision", "params", "clip", "weightDecay"] as const;
  return keys.every((k) => a[k] === b[k]);
}

export function compare(c: BenchConfig, il: SideResult, pt: SideResult, sameWeights: boolean, threads: number): ConfigResult {
  const tokensPerStep = il.config.batch * c.model.seqLen;
  const r: ConfigResult = {
    name: c.name,
    threads,
    innerloop: il,
    pytorch: pt,
    ratio: il.medianMs / pt.medianMs,
    cpuRatio: il.medianCpuMs / pt.medianCpuMs,
    sameConfig: sameConfig(il.config, pt.config),
    firstLossDiff: sameWeights && il.losses.length && pt.losses.length ? Math.abs(il.losses[0]! - pt.losses[0]!) : null,
    tokensPerStep,
  };
  if (il.device.startsWith("cuda")) {
    const tps = (side: SideResult) => tokensPerStep / (side.medianMs / 1000);
    r.tokensPerSec = { innerloop: tps(il), pytorch: tps(pt) };
    const peak = peakBf16Flops(il.deviceName);
    const fpt = flopsPerToken(c.model);
    if (peak !== null) r.mfu = { innerloop: (fpt * r.tokensPerSec.innerloop) / peak, pytorch: (fpt * r.tokensPerSec.pytorch) / peak, peakFlops: peak, flopsPerToken: fpt };
  }
  return r;
}

/** "default threads" for 0, else "1 thread", "2 threads". */
export function threadsLabel(t: number): string {
  return t === 0 ? "default threads" : t === 1 ? "1 thread" : `${t} threads`;
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`;
}
