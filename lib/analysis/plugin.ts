// Analysis snapshots during training (`innerloop train --analyze-every N --analyze-windows K`).
//
// A fixed held-out set (the first K windows of the validation tokens, per docs/analysis.md) is
// analysed after every N-th optimizer step and appended to RUN/analysis/timeline.json as
// { step, ...analysis.json fields }. The analysis uses autograd.grad, so it leaves parameters'
// .grad alone, draws no random numbers (eval mode, no dropout) and does not touch the sampler:
// resumed runs stay exact.
//
// Snapshots are appended to timeline.json atomically, but not after every snapshot when snapshots
// are frequent: at most about every 5 seconds (and never taking more than a tenth of the time
// between writes), and always at checkpoints and at the end. Only snapshots not yet written are
// held in memory, so a long run's memory stays flat however many snapshots it takes.
//
// The held-out windows' tensors, their token-frequency buckets and the analysis accumulators are
// set up at the first snapshot and reused by every later one (HeldOutAnalysis), so a snapshot
// costs its forward and backward pass and a fixed few dozen reductions.
//
// Where it can (a GPT-2 on the CPU in float32/float64 without dropout, the windows one batch), the
// snapshot of the weights after step s rides along in step s+1: the held-out windows are appended
// to that step's first micro-batch as extra rows (lib/models/gpt2-probe.ts), whose forward pass
// still runs on the weights after step s. The training rows' loss and gradients are exactly those
// of the step without them; the windows cost about their share of the batch, where a pass of their
// own is a few small kernels on one thread. The last step's snapshot, and one still due when a run
// stops, are taken in a pass of their own.
//
// On a CPU, a snapshot of its own, and the measures of one that rode along, run with the process's
// thread count or with one thread, whichever measured faster for that kind of work (ThreadChoice):
// they are many small operations, and with libgomp's passive waiting (lib/torch/native.ts) each of
// them pays for waking the second thread, which on a shared 2-core machine costs more than the
// second core gives back.

import { torch } from "../torch/index.js";
import { registerTrainerPlugin, type TrainerPlugin, type TrainerPluginOptions, type StepContext, type EndContext, type TrainerContext, type StepForwardContext, type RideAlong } from "../train/plugins.js";
import type { TrainConfig } from "../train/config.js";
import { GPT2 } from "../models/gpt2.js";
import { forwardProbed, probedForwardApplies } from "../models/gpt2-probe.js";
import { HeldOutAnalysis } from "./analyze.js";
import type { AnalysisModel } from "./adapter.js";
import type { AnalysisResult } from "./result.js";
import { arrayTokenStream, toTokenStream, type TokenStream } from "./windows.js";
import type { ScalarSink } from "../train/tensorboard.js";
import { snapshotScalars } from "./scalars.js";
import { appendTimelineSnapshots, readTimeline, writeTimeline, type Snapshot } from "./files.js";

export interface AnalysisPluginOptions {
  runDir: string;
  /** Receives each snapshot's per-layer summary measures (TensorBoard event files). */
  scalars?: ScalarSink;
  every: number;
  windows: number;
  seqLen: number;
  batchSize: number;
  resumed?: boolean;
  /** Minimum seconds between timeline rewrites (default 5; 0 = after every snapshot). */
  flushSeconds?: number;
  /** On a CPU, run each snapshot with the faster of the process's thread count and one thread (default true). */
  chooseThreads?: boolean;
  /** Let snapshots ride along in the next training step where they can (default true; see canRideAlong). */
  rideAlong?: boolean;
}

/**
 * Chooses the thread count of CPU snapshots: `base` (the process's) or 1, by measured time. Each
 * is timed on the first snapshots (alternately, three times each); after that the one with the
 * lower median of its last five times is used, and the other is timed again every 16th snapshot,
 * so that a change in the machine's load is noticed.
 */
export class ThreadChoice {
  private readonly times = new Map<number, number[]>();
  private calls = 0;
  constructor(readonly base: number) {
    this.times.set(base, []);
    this.times.set(1, []);
  }

  /** The thread count for the next snapshot. */
  next(): number {
    if (this.base <= 1) return this.base;
    this.calls++;
    const nb = this.times.get(this.base)!.length;
    const n1 = this.times.get(1)!.length;
    if (nb < 3 || n1 < 3) return nb <= n1 ? this.base : 1;
    const best = this.best();
    return this.calls % 16 === 0 ? (best === 1 ? this.base : 1) : best;
  }

  /** Records how long a snapshot with `threads` threads took. */
  record(threads: number, ms: number): void {
    const t = this.times.get(threads);
    if (!t) return;
    t.push(ms);
    if (t.length > 5) t.shift();
  }

  /** The faster setting so far (the base while either is unmeasured). */
  best(): number {
    const median = (a: number[]): number => {
      const s = [...a].sort((x, y) => x - y);
      return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const tb = this.times.get(this.base)!;
    const t1 = this.times.get(1)!;
    if (tb.length === 0 || t1.length === 0) return this.base;
    return median(t1) < median(tb) ? 1 : this.base;
  }
}

export class AnalysisPlugin implements TrainerPlugin {
  readonly name = "analysis";
  /** Snapshots (as JSON text) not yet written to timeline.json. */
  private pending: string[] = [];
  /** Snapshots already in timeline.json. */
  private written = 0;
  private heldOut: TokenStream | null = null;
  private analysis: HeldOutAnalysis | null = null;
  private readonly threads = new Map<"snapshot" | "measures", ThreadChoice>();
  private lastFlush = 0;
  /** The step whose snapshot rides along in the next training step (null when none is due). */
  private due: number | null = null;
  private lastFlushMs = 0;
  /** Milliseconds spent in each snapshot (for overhead measurements). */
  readonly timesMs: number[] = [];

  constructor(private readonly opts: AnalysisPluginOptions) {
    if (!Number.isInteger(opts.every) || opts.every < 1) throw new RangeError(`--analyze-every must be a positive integer, got ${opts.every}`);
    if (!Number.isInteger(opts.windows) || opts.windows < 1) throw new RangeError(`--analyze-windows must be a positive integer, got ${opts.windows}`);
  }

  setup(ctx: TrainerContext): void {
    const src = toTokenStream(ctx.valTokens);
    const T1 = this.opts.seqLen + 1;
    if (src.length < this.opts.seqLen + 1) {
      throw new Error(`analysis: the held-out tokens (${src.length}) are fewer than one window of ${this.opts.seqLen + 1}`);
    }
    // The fixed set: the first K windows of the held-out stream, copied once.
    this.heldOut = arrayTokenStream(src.read(0, Math.min(this.opts.windows, Math.floor(src.length / T1)) * T1));
    // A resumed run keeps the snapshots up to the step it resumed from.
    const prior = ctx.resumed || this.opts.resumed ? readTimeline(this.opts.runDir) : null;
    if (prior) {
      const kept = prior.snapshots.filter((s) => s.step <= ctx.startStep);
      if (kept.length !== prior.snapshots.length) writeTimeline(this.opts.runDir, { snapshots: kept });
      this.written = kept.length;
    }
    this.lastFlush = Date.now();
    // A snapshot that was to ride along in the step after the checkpoint, when the run stopped
    // before that step finished: the resumed weights are the ones it would have analysed.
    const s0 = ctx.startStep;
    if ((ctx.resumed || this.opts.resumed) && s0 > 0 && s0 % this.opts.every === 0 && !(prior?.snapshots ?? []).some((s) => s.step === s0)) {
      this.snapshot(ctx.model as AnalysisModel, s0);
    }
  }

  /** The analysis set-up for `model` (made at the first snapshot, and again if the model changed). */
  private analysisFor(model: AnalysisModel): { analysis: HeldOutAnalysis; fresh: boolean } {
    if (!this.heldOut) throw new Error("AnalysisPlugin: setup() was not called");
    if (this.analysis?.fits(model)) return { analysis: this.analysis, fresh: false };
    this.analysis?.dispose();
    this.analysis = null;
    this.analysis = new HeldOutAnalysis(model, this.heldOut, {
      seqLen: this.opts.seqLen,
      batchSize: this.opts.batchSize,
      maxWindows: this.opts.windows,
    });
    return { analysis: this.analysis, fresh: true };
  }

  /** Analyses the held-out windows with the model as it is now, in a pass of its own, and records the snapshot. */
  snapshot(model: AnalysisModel, step: number): Snapshot {
    const t0 = performance.now();
    const { analysis, fresh } = this.analysisFor(model);
    const res = this.withThreadChoice(analysis.device, "snapshot", () => analysis.run(), fresh);
    return this.record(step, res, { analysisMs: performance.now() - t0 });
  }

  /**
   * Runs `f` on a CPU with the thread count that measured faster for this kind of work so far
   * (ThreadChoice, one per kind: whole snapshots, and the measures of snapshots that rode along).
   * A first run on a new set-up (`unfair`) is not recorded.
   */
  private withThreadChoice<R>(device: string, kind: "snapshot" | "measures", f: () => R, unfair: boolean): R {
    if (device !== "cpu" || this.opts.chooseThreads === false) return f();
    const base = torch.getNumThreads();
    let choice = this.threads.get(kind);
    if (choice?.base !== base) this.threads.set(kind, (choice = new ThreadChoice(base)));
    const n = choice.next();
    if (n !== base) torch.setNumThreads(n);
    const t1 = performance.now();
    try {
      return f();
    } finally {
      if (n !== base) torch.setNumThreads(base);
      if (!unfair) choice.record(n, performance.now() - t1);
    }
  }

  private record(step: number, res: AnalysisResult, meta: Snapshot["meta"] & { analysisMs: number }): Snapshot {
    this.timesMs.push(meta.analysisMs);
    const snap: Snapshot = { step, ...res, meta };
    this.pending.push(JSON.stringify(snap));
    this.opts.scalars?.addScalars(step, snapshotScalars(snap));
    return snap;
  }

  /**
   * Whether the snapshot of the weights after a step can ride along in the next training step:
   * a GPT-2 trained on the CPU in float32/float64 without dropout, the held-out windows one batch.
   */
  private canRideAlong(model: unknown, config: Partial<TrainConfig>): boolean {
    if (this.opts.rideAlong === false || !(model instanceof GPT2)) return false;
    if (config.device !== "cpu" || config.dtype === "bfloat16" || model.config.dropout !== 0) return false;
    if (!probedForwardApplies(model)) return false;
    const { analysis } = this.analysisFor(model as unknown as AnalysisModel);
    return analysis.singleBatch !== null;
  }

  /** Carries a snapshot that is due along in this step's first micro-batch (see canRideAlong). */
  stepForward(ctx: StepForwardContext): RideAlong | null {
    const step = this.due;
    if (step === null) return null;
    this.due = null;
    const model = ctx.model as AnalysisModel;
    // The weights are still those after step `due` (the snapshot is taken before they change).
    if (ctx.step !== step) return null;
    const { analysis } = this.analysisFor(model);
    const batch = analysis.singleBatch;
    const probed = batch && ctx.model instanceof GPT2 ? forwardProbed(ctx.model, ctx.inputs, ctx.targets, batch.ids, batch.targets) : undefined;
    if (!probed) {
      this.snapshot(model, step);
      return null;
    }
    return {
      loss: probed.loss,
      extra: probed.probeLoss,
      afterBackward: () => {
        const t0 = performance.now();
        const res = this.withThreadChoice(analysis.device, "measures", () => analysis.runCaptured(probed.capture), false);
        // analysisMs: the measures alone; the windows' share of the forward and backward pass is in the step's time.
        this.record(step, res, { analysisMs: performance.now() - t0, rodeAlong: true });
      },
    };
  }

  afterStep(ctx: StepContext): void {
    if (ctx.step % this.opts.every === 0) {
      // The last step's snapshot has no next step to ride along in.
      if (ctx.step < (ctx.config.steps ?? 0) && this.canRideAlong(ctx.model, ctx.config)) this.due = ctx.step;
      else this.snapshot(ctx.model as AnalysisModel, ctx.step);
    }
    if (this.pending.length === 0) return;
    const now = Date.now();
    const gap = Math.max((this.opts.flushSeconds ?? 5) * 1000, 10 * this.lastFlushMs);
    if (now - this.lastFlush >= gap) this.flush();
  }

  onCheckpoint(): void {
    this.flush();
  }

  teardown(ctx: EndContext): void {
    // A snapshot still due (the run stopped before the next step): the weights are unchanged since.
    if (this.due !== null && this.due === ctx.step) {
      try {
        this.snapshot(ctx.model as AnalysisModel, this.due);
      } finally {
        this.due = null;
      }
    }
    this.dispose();
    this.flush();
  }

  /** Frees the held-out windows' tensors and the accumulators (a later snapshot sets them up again). */
  dispose(): void {
    this.analysis?.dispose();
    this.analysis = null;
  }

  /** Appends the snapshots not yet written to timeline.json (atomically). */
  flush(): void {
    if (this.pending.length === 0) return;
    const t0 = Date.now();
    appendTimelineSnapshots(this.opts.runDir, this.pending);
    this.written += this.pending.length;
    this.pending = [];
    this.lastFlushMs = Date.now() - t0;
    this.lastFlush = Date.now();
  }

  /** Number of snapshots in the timeline (including those kept from before a resume). */
  get count(): number {
    return this.written + this.pending.length;
  }
}

export function createAnalysisPlugin(o: TrainerPluginOptions): AnalysisPlugin {
  const c = o.config;
  return new AnalysisPlugin({
    runDir: o.runDir,
    every: c.analyzeEvery,
    windows: c.analyzeWindows,
    seqLen: c.seqLen,
    batchSize: Math.min(c.batchSize, c.analyzeWindows),
    resumed: o.resumed,
    scalars: o.scalars,
  });
}

registerTrainerPlugin("analysis", createAnalysisPlugin);
