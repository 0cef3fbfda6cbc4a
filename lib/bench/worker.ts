// The innerloop side of a benchmark comparison, run in its own process (so that its memory is
// measured the same way as the PyTorch reference's): builds the GPT-2 of lib/models and AdamW of
// lib/optim from a SideSpec, times the training step and prints one JSON line (a SideResult).
//
// The step is exactly what scripts/bench/torch_step.py times: forward with the loss (under bf16
// autocast where asked), backward, clipping of the gradient norm, the optimizer step and dropping
// the gradients; the batch is already on the device; the clock stops after the device is idle.
// It is the trainer's own step function (lib/train/step.ts, eagerTrainStep), loss and gradient
// norm read back as `innerloop train` reads them, so a step time measured here holds there.

import { readFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { torch, OutOfMemoryError } from "../torch/index.js";
import type { Device, Tensor } from "../torch/index.js";
import { saveSafetensors, loadSafetensors } from "../torch/safetensors.js";
import { GPT2 } from "../models/index.js";
import { AdamW, clipGradNormTensor_, weightDecayGroups } from "../optim/index.js";
import { GraphedTrainStep } from "../train/graph-step.js";
import { eagerTrainStep } from "../train/step.js";
import { median, msBetween, rssKB, maxRssKB } from "./stats.js";
import { countNativeCalls, opOverheadUs } from "./probe.js";
import type { SideResult, SideSpec, PhaseProfile } from "./spec.js";

const rssAtStart = rssKB();

interface Setup {
  graph?: GraphedTrainStep;
  model: GPT2;
  opt: AdamW;
  params: Tensor[];
  batches: Array<[Tensor, Tensor]>;
  batch: number;
}

function log(msg: string): void {
  process.stderr.write(`[innerloop] ${msg}\n`);
}

function readTokens(spec: SideSpec): Int32Array {
  const buf = readFileSync(spec.tokensFile);
  const want = spec.nBatches * spec.maxBatch * (spec.model.seqLen + 1);
  if (buf.length !== want * 4) throw new Error(`${spec.tokensFile}: expected ${want} int32 tokens, found ${buf.length / 4}`);
  return new Int32Array(buf.buffer, buf.byteOffset, want);
}

function setup(spec: SideSpec, tokens: Int32Array, batch: number): Setup {
  const m = spec.model;
  const device = spec.device as Device;
  const model = new GPT2(
    { vocabSize: m.vocabSize, nPositions: m.nPositions, nEmbd: m.nEmbd, nLayer: m.nLayer, nHead: m.nHead, dropout: 0, bias: true },
    { seed: spec.seed },
  );
  if (spec.saveWeightsTo) {
    const named: Record<string, Tensor> = {};
    for (const [n, p] of model.namedParameters()) named[n] = p;
    saveSafetensors(spec.saveWeightsTo, named);
  }
  if (spec.weightsFile) {
    const { tensors } = loadSafetensors(spec.weightsFile);
    model.loadStateDict(tensors, { strict: false });
    for (const t of Object.values(tensors)) t.dispose();
  }
  model.to({ device });
  model.train();
  const o = spec.optim;
  const opt = new AdamW(weightDecayGroups(model.parameters(), o.weightDecay), {
    lr: o.lr,
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    capturable: spec.cudaGraph === true,
  });
  const T = m.seqLen;
  const batches: Array<[Tensor, Tensor]> = [];
  for (let i = 0; i < spec.nBatches; i++) {
    const x = new BigInt64Array(batch * T);
    const y = new BigInt64Array(batch * T);
    for (let b = 0; b < batch; b++) {
      const row = (i * spec.maxBatch + b) * (T + 1);
      for (let t = 0; t < T; t++) {
        x[b * T + t] = BigInt(tokens[row + t]!);
        y[b * T + t] = BigInt(tokens[row + t + 1]!);
      }
    }
    const pair = torch.tidy(() => [
      torch.tensor(x, { dtype: "int64" }).view([batch, T]).to(device),
      torch.tensor(y, { dtype: "int64" }).view([batch, T]).to(device),
    ]);
    batches.push(torch.keep(pair) as [Tensor, Tensor]);
  }
  return { model, opt, params: model.parameters(), batches, batch };
}

function teardown(s: Partial<Setup>): void {
  s.graph?.dispose();
  s.opt?.dispose();
  s.model?.dispose();
  for (const [x, y] of s.batches ?? []) {
    x.dispose();
    y.dispose();
  }
}

export async function main(spec: SideSpec): Promise<SideResult> {
  const cuda = spec.device.startsWith("cuda");
  // 0: the library's default, what `innerloop train` runs with.
  if (spec.threads > 0) torch.setNumThreads(spec.threads);
  if (spec.tf32) torch.setFloat32MatmulPrecision("high");
  const autocast = spec.precision === "bf16-autocast";
  const sync = cuda ? () => torch.cuda.synchronize() : () => {};
  const tokens = readTokens(spec);

  let s: Setup | null = null;
  let times: number[] = [];
  let cpuTimes: number[] = [];
  let losses: number[] = [];
  let forwardLoss!: (x: Tensor, y: Tensor) => Tensor;
  /** One training step on a batch; returns its loss. */
  let step!: (x: Tensor, y: Tensor) => number;
  let rssReady: number | null = null;

  for (const batch of spec.batchCandidates) {
    let cur: Partial<Setup> = {};
    try {
      s = setup(spec, tokens, batch);
      cur = s;
      const { model, opt, params } = s;
      const clip = spec.optim.clip;
      const fwd = (x: Tensor, y: Tensor): Tensor => model.forward(x, { targets: y }).loss!;
      forwardLoss = autocast ? (x, y) => torch.autocast(spec.device, "bfloat16", () => fwd(x, y)) : fwd;
      if (spec.cudaGraph) {
        // The same step captured after three eager ones (within the warmup) and replayed; the
        // loss it returns is a copy, the graph's own output being rewritten by the next replay.
        const graph = (s.graph = new GraphedTrainStep({ params, optimizer: opt, forwardLoss, gradAccum: 1, gradClip: clip, warmup: Math.min(3, Math.max(1, spec.warmup - 1)) }));
        // Loss and gradient norm read back after the replay, as the trainer's graphed step does.
        step = (x, y) => torch.tidy(() => {
          const out = graph.run([{ inputs: x, targets: y }]);
          out.gradNorm.item();
          return out.lossSum.item() as number;
        });
      } else {
        const parts = { params, optimizer: opt, forwardLoss, gradAccum: 1, gradClip: clip };
        step = (x, y) => eagerTrainStep(parts, () => ({ inputs: x, targets: y })).loss;
      }
      if (cuda) torch.cuda.resetPeakMemoryStats();
      rssReady = rssKB();
      times = [];
      cpuTimes = [];
      losses = [];
      const total = spec.warmup + spec.reps;
      for (let i = 0; i < total; i++) {
        const [x, y] = s.batches[i % s.batches.length]!;
        // A turn of the event loop between steps (outside the clock), as the trainer takes: Node-API
        // runs the finalizers of collected tensor wrappers from there (see BENCHMARKS.md, memory).
        await turn();
        sync();
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        const loss = step(x, y);
        sync();
        const t1 = process.hrtime.bigint();
        const c1 = process.cpuUsage(c0);
        losses.push(loss);
        if (i >= spec.warmup) {
          times.push(msBetween(t0, t1));
          cpuTimes.push((c1.user + c1.system) / 1000);
        }
      }
      break;
    } catch (e) {
      if (!(e instanceof OutOfMemoryError)) throw e;
      log(`batch ${batch}: out of memory (${e.message.split("\n")[0]}); trying a smaller batch`);
      losses = [];
      teardown(cur);
      s = null;
      torch.cuda.emptyCache();
    }
  }
  if (s === null) throw new Error("every batch size ran out of memory");

  const m = spec.model;
  const result: SideResult = {
    side: "innerloop",
    torch: torch.version.libtorch,
    threads: torch.getNumThreads(),
    device: spec.device,
    deviceName: cuda ? torch.cuda.deviceName(0) : null,
    config: {
      ...m,
      batch: s.batch,
      precision: spec.precision,
      params: s.model.numParameters(),
      optimizer: s.opt.isFused ? (s.graph ? "AdamW(fused, capturable)" : "AdamW(fused)") : "AdamW",
      clip: spec.optim.clip,
      weightDecay: spec.optim.weightDecay,
    },
    stepMs: times,
    medianMs: median(times),
    cpuMs: cpuTimes,
    medianCpuMs: median(cpuTimes),
    losses,
    rssAtStartKB: rssAtStart,
    rssReadyKB: rssReady,
    rssAfterKB: rssKB(),
    maxRssKB: maxRssKB(),
  };
  if (cuda) result.cudaMaxAllocated = torch.cuda.maxMemoryAllocated();

  if (s.graph) result.cudaGraph = { captured: s.graph.captured };
  // The phases of a replayed graph cannot be timed apart: the profile is of the eager step.
  if (spec.profile && !s.graph) result.profile = await profile(spec, s, forwardLoss, step, sync);
  if (spec.soakSteps) result.soak = await soak(spec.soakSteps, s, step, sync);
  teardown(s);
  return result;
}

/** Each phase of the step timed on its own (device synchronised between phases), and call counts. */
async function profile(spec: SideSpec, s: Setup, forwardLoss: (x: Tensor, y: Tensor) => Tensor, step: (x: Tensor, y: Tensor) => number, sync: () => void): Promise<PhaseProfile> {
  const names = ["forwardMs", "backwardMs", "clipMs", "optimMs", "zeroGradMs"] as const;
  const acc: Record<(typeof names)[number], number[]> = { forwardMs: [], backwardMs: [], clipMs: [], optimMs: [], zeroGradMs: [] };
  for (let i = 0; i < spec.reps; i++) {
    const [x, y] = s.batches[i % s.batches.length]!;
    await turn();
    const marks: bigint[] = [];
    torch.tidy(() => {
      sync(); marks.push(process.hrtime.bigint());
      const loss = forwardLoss(x, y);
      sync(); marks.push(process.hrtime.bigint());
      loss.backward();
      sync(); marks.push(process.hrtime.bigint());
    });
    clipGradNormTensor_(s.params, spec.optim.clip).dispose();
    sync(); marks.push(process.hrtime.bigint());
    s.opt.step();
    sync(); marks.push(process.hrtime.bigint());
    s.opt.zeroGrad();
    sync(); marks.push(process.hrtime.bigint());
    // marks[2] -> marks[3] includes leaving the tidy scope: part of the clipping phase's share.
    names.forEach((n, k) => acc[n].push(msBetween(marks[k]!, marks[k + 1]!)));
  }
  const [x, y] = s.batches[0]!;
  const { total, byName } = countNativeCalls(() => {
    step(x, y);
  });
  return {
    forwardMs: median(acc.forwardMs),
    backwardMs: median(acc.backwardMs),
    clipMs: median(acc.clipMs),
    optimMs: median(acc.optimMs),
    zeroGradMs: median(acc.zeroGradMs),
    callsPerStep: total,
    callsByName: byName,
    opOverheadUs: opOverheadUs(spec.device),
  };
}

/** One turn of the event loop. */
function turn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

/**
 * Many more steps: resident memory and live tensors at the start and the end. First with a turn of
 * the event loop after every step, as the trainer does (Node-API runs the finalizers of collected
 * tensor wrappers from the event loop), then the same number in one synchronous loop, as a script
 * that never yields would run them.
 */
async function soak(steps: number, s: Setup, step: (x: Tensor, y: Tensor) => number, sync: () => void): Promise<NonNullable<SideResult["soak"]>> {
  gc();
  const rssStart = rssKB();
  const liveStart = torch.memory().liveTensors;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) {
    const [x, y] = s.batches[i % s.batches.length]!;
    step(x, y);
    await turn();
  }
  sync();
  const seconds = msBetween(t0, process.hrtime.bigint()) / 1000;
  gc();
  await turn();
  const rssEnd = rssKB();
  const liveEnd = torch.memory().liveTensors;
  for (let i = 0; i < steps; i++) {
    const [x, y] = s.batches[i % s.batches.length]!;
    step(x, y);
  }
  sync();
  gc();
  return {
    steps,
    rssStartKB: rssStart,
    rssEndKB: rssEnd,
    liveTensorsStart: liveStart,
    liveTensorsEnd: liveEnd,
    seconds,
    syncLoop: { rssEndKB: rssKB(), liveTensorsEnd: torch.memory().liveTensors },
  };
}

// Run as a script: `node worker.js SPEC.json` prints the result as one JSON line.
export async function runFromArgv(argv: string[]): Promise<void> {
  const file = argv[0];
  if (!file) throw new Error("usage: worker SPEC.json");
  const spec = JSON.parse(readFileSync(file, "utf8")) as SideSpec;
  const result = await main(spec);
  if (spec.analysis) result.analysis = await analysisOverhead(spec);
  process.stdout.write(JSON.stringify(result) + "\n");
}

/**
 * `--analyze-every 1`: the step time with the trainer's analysis plugin running after every step
 * against the step alone, on a fresh model of the same configuration.
 */
async function analysisOverhead(spec: SideSpec): Promise<NonNullable<SideResult["analysis"]>> {
  let plugin: typeof import("../analysis/plugin.js");
  let streams: typeof import("../analysis/windows.js");
  try {
    plugin = await import("../analysis/plugin.js");
    streams = await import("../analysis/windows.js");
  } catch (e) {
    return { available: false, reason: `analysis plugin not loadable: ${(e as Error).message.split("\n")[0]}` };
  }
  const tokens = readTokens(spec);
  const s = setup({ ...spec, saveWeightsTo: undefined }, tokens, spec.batchCandidates[0]!);
  const cuda = spec.device.startsWith("cuda");
  const sync = cuda ? () => torch.cuda.synchronize() : () => {};
  const runDir = mkdtempSync(join(tmpdir(), "innerloop-bench-analysis-"));
  try {
    const { windows, steps } = spec.analysis!;
    const T = spec.model.seqLen;
    // The held-out windows: the benchmark's own random tokens, repeated as often as needed.
    const held = new Int32Array(windows * (T + 1));
    for (let i = 0; i < held.length; i++) held[i] = tokens[i % tokens.length]!;
    const { rideAlong } = spec.analysis!;
    const p = new plugin.AnalysisPlugin({ runDir, every: 1, windows, seqLen: T, batchSize: Math.min(s.batch, windows), rideAlong });
    // What the trainer tells the plugin of the run: it decides from it whether snapshots can ride
    // along in the next step (a run that never ends, so that every snapshot has a next step).
    const config = { steps: Number.MAX_SAFE_INTEGER, device: spec.device, dtype: spec.precision === "bf16-autocast" ? "bfloat16" : "float32" };
    const ctx = { runDir, config: config as never, model: s.model, tokenizer: null, valTokens: streams.arrayTokenStream(held), startStep: 0, resumed: false };
    p.setup(ctx);
    const fwd = (x: Tensor, y: Tensor): Tensor => s.model.forward(x, { targets: y }).loss!;
    const forwardLoss = spec.precision === "bf16-autocast" ? (x: Tensor, y: Tensor) => torch.autocast(spec.device, "bfloat16", () => fwd(x, y)) : fwd;
    let analysedSteps = 0;
    // One training step as the trainer runs it; with `analysed`, the plugin may carry a due snapshot along.
    const parts = { params: s.params, optimizer: s.opt, forwardLoss, gradAccum: 1, gradClip: spec.optim.clip };
    const step = (x: Tensor, y: Tensor, analysed: boolean) => {
      s.model.train();
      eagerTrainStep(parts, () => ({ inputs: x, targets: y }), {
        rideAlong: analysed ? (inputs, targets) => p.stepForward({ ...ctx, step: analysedSteps, inputs, targets }) : undefined,
      });
      if (analysed) analysedSteps++;
    };
    const plain: number[] = [];
    let rodeAlong = 0;
    const withAnalysis: number[] = [];
    const analysisOnly: number[] = [];
    const warm = Math.min(spec.warmup, 2);
    // Alternate the two kinds of step so that both see the same machine load.
    for (let i = 0; i < warm + steps; i++) {
      const [x, y] = s.batches[i % s.batches.length]!;
      await turn();
      sync();
      const t0 = process.hrtime.bigint();
      step(x, y, false);
      sync();
      const t1 = process.hrtime.bigint();
      const snapshots = p.timesMs.length;
      step(x, y, true);
      sync();
      const t2 = process.hrtime.bigint();
      // A snapshot taken inside the step rode along in it.
      const rode = p.timesMs.length > snapshots;
      p.afterStep({ ...ctx, step: analysedSteps, loss: 0, lr: spec.optim.lr, stepMs: 0, tokensPerSec: 0, gradNorm: 0 } as never);
      sync();
      const t3 = process.hrtime.bigint();
      if (i >= warm) {
        plain.push(msBetween(t0, t1));
        withAnalysis.push(msBetween(t1, t3));
        // A snapshot that rode along in the step: its measures' time (the rest is in the step's).
        if (rode) rodeAlong++;
        analysisOnly.push(rode ? p.timesMs.at(-1)! : msBetween(t2, t3));
      }
    }
    p.teardown({ ...ctx, step: warm + steps, reason: "finished" } as never);
    const a = median(plain);
    const b = median(withAnalysis);
    // Each step with analysis is compared with the plain step just before it: the median of those
    // ratios follows the machine's load as it drifts, where the ratio of the two medians mixes
    // minutes of different load (both are reported).
    const paired = median(withAnalysis.map((w, k) => w / plain[k]!)) - 1;
    return {
      available: true,
      windows,
      rideAlong,
      rodeAlong,
      medianStepMs: a,
      medianWithAnalysisMs: b,
      medianAnalysisMs: median(analysisOnly),
      overhead: paired,
      overheadOfMedians: b / a - 1,
    };
  } finally {
    teardown(s);
    rmSync(runDir, { recursive: true, force: true });
  }
}
