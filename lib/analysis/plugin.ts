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

import { registerTrainerPlugin, type TrainerPlugin, type TrainerPluginOptions, type StepContext, type EndContext, type TrainerContext } from "../train/plugins.js";
import { analyzeModel } from "./analyze.js";
import type { AnalysisModel } from "./adapter.js";
import { arrayTokenStream, toTokenStream, type TokenStream } from "./windows.js";
import { appendTimelineSnapshots, readTimeline, writeTimeline, type Snapshot } from "./files.js";

export interface AnalysisPluginOptions {
  runDir: string;
  every: number;
  windows: number;
  seqLen: number;
  batchSize: number;
  resumed?: boolean;
  /** Minimum seconds between timeline rewrites (default 5; 0 = after every snapshot). */
  flushSeconds?: number;
}

export class AnalysisPlugin implements TrainerPlugin {
  readonly name = "analysis";
  /** Snapshots (as JSON text) not yet written to timeline.json. */
  private pending: string[] = [];
  /** Snapshots already in timeline.json. */
  private written = 0;
  private heldOut: TokenStream | null = null;
  private lastFlush = 0;
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
  }

  /** Analyses the held-out windows with the model as it is now and records the snapshot. */
  snapshot(model: AnalysisModel, step: number): Snapshot {
    if (!this.heldOut) throw new Error("AnalysisPlugin: setup() was not called");
    const t0 = performance.now();
    const res = analyzeModel(model, this.heldOut, {
      seqLen: this.opts.seqLen,
      batchSize: this.opts.batchSize,
      maxWindows: this.opts.windows,
    });
    const ms = performance.now() - t0;
    this.timesMs.push(ms);
    const snap: Snapshot = { step, ...res, meta: { analysisMs: ms } };
    this.pending.push(JSON.stringify(snap));
    return snap;
  }

  afterStep(ctx: StepContext): void {
    if (ctx.step % this.opts.every !== 0) return;
    this.snapshot(ctx.model as AnalysisModel, ctx.step);
    const now = Date.now();
    const gap = Math.max((this.opts.flushSeconds ?? 5) * 1000, 10 * this.lastFlushMs);
    if (now - this.lastFlush >= gap) this.flush();
  }

  onCheckpoint(): void {
    this.flush();
  }

  teardown(_ctx: EndContext): void {
    this.flush();
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
  });
}

registerTrainerPlugin("analysis", createAnalysisPlugin);
