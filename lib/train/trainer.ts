/**
 * The training loop: gradient accumulation, clipping, the learning-rate
 * schedule, validation, metrics, checkpoints and exact resume.
 *
 * One step (nanoGPT's loop):
 *
 *   lr = schedule(step)
 *   for each of gradAccum micro-batches: loss = model(x, y) / gradAccum; loss.backward()
 *     (a plugin may run the first micro-batch's forward pass itself, with work of its own riding
 *     along in the batch: plugins.ts, RideAlong; the loss and gradients are the same)
 *   gradNorm = clip(grads, gradClip)           (the norm is logged even without clipping)
 *   optimizer.step(); zero grads
 *
 * With `cudaGraph` the same step is captured into a CUDA graph after a few eager steps and
 * replayed (graph-step.ts); the loss and gradient norm are then checked after the update.
 *
 * Exactness of resume: everything a step depends on is either a function of
 * the step number (the learning rate) or saved in the checkpoint (weights,
 * AdamW moments and step counts, the torch RNG states that dropout draws
 * from, the window sampler's PRNG state). Validation uses its own freshly
 * seeded sampler and no dropout, so it does not disturb that state.
 */
import { performance } from "node:perf_hooks";
import { torch, type Tensor } from "../torch/index.js";
import { warmupCosine, type AdamW, type LrSchedule } from "../optim/index.js";
import type { TrainConfig } from "./config.js";
import { MetricsWriter, type StepRow } from "./metrics.js";
import { Progress } from "./progress.js";
import type { EndContext, RideAlong, StepContext, TrainerContext, TrainerPlugin } from "./plugins.js";
import type { RunData, BatchSampler } from "./data.js";
import type { TrainModel } from "./model.js";
import type { TokenIds, TrainData } from "./open-data.js";
import type { Tokenizer } from "../data/index.js";
import { writeRunCheckpoint, type TrainerState } from "./state.js";
import { newRunParts, resumeParts } from "./setup.js";
import { GraphedTrainStep } from "./graph-step.js";
import { eagerTrainStep } from "./step.js";

export class NonFiniteLossError extends Error {
  override name = "NonFiniteLossError";
  constructor(
    readonly step: number,
    readonly what: "loss" | "gradient norm",
    value: number,
    lastCheckpoint: number | undefined,
    runDir: string,
  ) {
    super(
      `${what} is ${String(value)} at step ${step}; stopping. ` +
        (lastCheckpoint !== undefined
          ? `The last good checkpoint (step ${lastCheckpoint}) is kept in ${runDir}.`
          : `No checkpoint was written before it (lower --lr or set --grad-clip).`),
    );
  }
}

/**
 * What the trainer needs from data-parallel training (lib/train/ddp.ts `DataParallel` provides
 * it). Every rank runs the same loop: the same global batch is drawn on every rank and each takes
 * its own rows of it, gradients and the loss are averaged over ranks, and rank 0 alone writes
 * metrics and checkpoints and runs evaluations. Ranks agree before every step on whether to stop,
 * so a signal that reaches them at different moments stops them all after the same step. Plugins
 * run on every rank that has them; `runTraining` adds them on rank 0 only.
 */
export interface ParallelContext {
  readonly rank: number;
  readonly worldSize: number;
  readonly isMain: boolean;
  /** backwardsPerStep: how many backward passes each optimizer step makes (gradient accumulation). */
  broadcastParameters(params: Tensor[], backwardsPerStep?: number): void;
  averageGradients(params: Tensor[]): void;
  /** The mean over ranks of a number. */
  meanOf(value: number): number;
}

export interface TrainerOptions {
  /** Run directory: created for a new run, read for a resume. */
  runDir: string;
  /**
   * A new run's configuration; missing fields take the defaults (DEFAULT_TRAIN_CONFIG). With
   * `model`, the model-shape fields (nLayer, nHead, nEmbd, dropout) are not used.
   */
  config?: Partial<TrainConfig>;
  /**
   * The model to train: any causal LM (`CausalLM`: a Module whose `forward(ids, { targets })`
   * returns `{ logits, loss }`), e.g. a GPT2, Llama or GPTNeoX, or a Module of your own. Default:
   * a new GPT-2 from `config`, or the pretrained model of `config.init`. On resume, pass a new
   * instance of the same model (required for a model of your own): its weights, the optimizer
   * state and the data position are restored from the checkpoint.
   */
  model?: TrainModel;
  /**
   * The training data, in place of `config.data`: token ids (Int32Array, Uint16Array, number[],
   * an integer Tensor), the path of a `.bin` file of token ids (`config.binDtype`, uint16 by
   * default), or an async iterable of `{ inputs, targets }` batches [batchSize, seqLen]. Token
   * ids are split 90/10 into training and validation streams unless `valData` is given.
   */
  data?: TrainData;
  /** Held-out token ids for evaluation and analysis snapshots (needed with batches). */
  valData?: TokenIds;
  /** The tokenizer the token ids come from, saved with the run (so that `innerloop sample` can decode). */
  tokenizer?: Tokenizer;
  /** Continue the run in `runDir` from its last checkpoint. */
  resume?: boolean;
  /** With `resume`: settings that do not change the computation of a step (a new total of steps, another device...). */
  overrides?: Partial<Pick<TrainConfig, "steps" | "device" | "checkpointEvery" | "evalEvery" | "cudaGraph">>;
  /** Progress display; `quiet` prints nothing. */
  progress?: { quiet?: boolean; tty?: boolean; stream?: NodeJS.WritableStream };
  /** Stop (with a checkpoint) once this step is done, as an interruption would. For tests and schedulers. */
  stopAtStep?: number;
  /** Data-parallel training: this process is one rank of several. */
  parallel?: ParallelContext;
}

export interface TrainResult {
  /** Steps done in total (including those before a resume). */
  step: number;
  reason: "finished" | "interrupted";
  /** Loss of the last step, validation loss of the last evaluation. */
  lastLoss?: number;
  lastValLoss?: number;
  /** Every step's loss done by this call, in order (metrics.jsonl has them too). */
  losses: number[];
}

export class Trainer {
  readonly runDir: string;
  readonly config: TrainConfig;
  readonly model: TrainModel;
  readonly data: RunData;
  readonly optimizer: AdamW;
  readonly schedule: LrSchedule;
  /** Optimizer steps done so far. */
  step: number;
  readonly startStep: number;
  readonly resumed: boolean;
  private readonly sampler: BatchSampler;
  private readonly plugins: TrainerPlugin[] = [];
  private readonly opts: TrainerOptions;
  private stopRequested = false;
  private lastCheckpointStep: number | undefined;
  private readonly isCuda: boolean;
  /** The trained parameters (their identity never changes during a run). */
  private readonly params: Tensor[];
  private readonly parallel: ParallelContext | undefined;
  /** Rank 0, or the only process: writes metrics and checkpoints, evaluates, shows progress. */
  readonly isMain: boolean;
  /** This rank's rows of each global batch. */
  private readonly rows: { start: number; end: number } | undefined;
  /** With `cudaGraph`: the captured step (made at the first step). */
  private graphStep: GraphedTrainStep | null = null;
  /** A Hugging Face tokenizer's folder, whose files every checkpoint copies. */
  private readonly tokenizerDir: string | undefined;

  /**
   * A new run in `opts.runDir`, or the run there continued from its last checkpoint when
   * `opts.resume`. Loads or builds the model and the data synchronously; `run()` trains.
   */
  constructor(opts: TrainerOptions) {
    const p = opts.resume ? resumeParts(opts) : newRunParts(opts);
    const { config, model, data, optimizer, sampler, step } = p;
    this.tokenizerDir = p.tokenizerDir;
    this.opts = opts;
    this.runDir = opts.runDir;
    this.config = config;
    this.model = model;
    this.data = data;
    this.optimizer = optimizer;
    this.sampler = sampler;
    this.step = step;
    this.startStep = step;
    this.resumed = opts.resume === true;
    if (this.resumed) this.lastCheckpointStep = step;
    this.isCuda = config.device.startsWith("cuda");
    this.params = model.parameters();
    this.parallel = opts.parallel;
    this.isMain = opts.parallel?.isMain ?? true;
    if (opts.parallel && opts.parallel.worldSize > 1) {
      const { rank, worldSize } = opts.parallel;
      if (config.batchSize % worldSize !== 0) {
        throw new RangeError(`batch-size (${config.batchSize}) must be divisible by the number of processes (${worldSize})`);
      }
      const per = config.batchSize / worldSize;
      this.rows = { start: rank * per, end: (rank + 1) * per };
      if (config.cudaGraph === true) throw new RangeError("cuda-graph trains in one process: it cannot be combined with data-parallel training");
    }
    this.schedule = warmupCosine({ lr: config.lr, minLr: config.minLr, warmupSteps: config.warmup, decaySteps: config.steps });
    this.syncParameters();
  }

  /** Builds a new run, or loads the last checkpoint of `runDir` when `opts.resume` (as `new Trainer(opts)`). */
  static async create(opts: TrainerOptions): Promise<Trainer> {
    return new Trainer(opts);
  }

  /** Every rank starts from rank 0's weights. */
  private syncParameters(): this {
    if (this.parallel && this.parallel.worldSize > 1) this.parallel.broadcastParameters(this.params, this.config.gradAccum);
    return this;
  }

  addPlugin(plugin: TrainerPlugin): this {
    this.plugins.push(plugin);
    return this;
  }

  /** Asks the loop to stop after the current step (with a checkpoint), as SIGINT does. */
  requestStop(): void {
    this.stopRequested = true;
  }

  private context(): TrainerContext {
    return {
      runDir: this.runDir,
      config: this.config,
      model: this.model,
      tokenizer: this.data.tokenizer,
      valTokens: this.data.val,
      startStep: this.startStep,
      resumed: this.resumed,
    };
  }

  /** Trains until `config.steps` (or a stop request), writing metrics and checkpoints. */
  async run(): Promise<TrainResult> {
    const c = this.config;
    const main = this.isMain;
    const metrics = main ? new MetricsWriter(this.runDir, this.resumed ? { keepUpToStep: this.step } : {}) : null;
    const progress = new Progress({ totalSteps: c.steps, startStep: this.step, ...this.opts.progress, ...(main ? {} : { quiet: true }) });
    const tokensPerStep = c.batchSize * c.gradAccum * c.seqLen;
    const losses: number[] = [];
    let lastValLoss: number | undefined;
    let reason: TrainResult["reason"] = "finished";
    const base = this.context();
    if (c.dtype === "bfloat16") torch.setFloat32MatmulPrecision("high");
    for (const p of this.plugins) await p.setup?.(base);
    let failed = true;
    try {
      // A new run gets its first checkpoint before any step, so that the directory is a valid
      // (untrained) model from the start and a failure at step 1 still leaves one behind.
      if (main && !this.resumed && this.step === 0) this.checkpoint();
      while (this.step < c.steps) {
        // Ranks agree on stopping (a signal may reach them between different steps).
        if (this.parallel && this.parallel.worldSize > 1) this.stopRequested = this.parallel.meanOf(this.stopRequested ? 1 : 0) > 0;
        if (this.stopRequested) {
          reason = "interrupted";
          break;
        }
        // Batches that arrive asynchronously (an async iterable) are fetched before the step.
        if (this.sampler.prefetch) await this.sampler.prefetch(c.gradAccum);
        const row = this.trainStep(tokensPerStep);
        losses.push(row.loss);
        metrics?.write(row);
        progress.update(row);
        const stepCtx: StepContext = { ...base, ...row };
        for (const p of this.plugins) await p.afterStep?.(stepCtx);
        const last = this.step === c.steps;
        if (main && c.evalEvery > 0 && (this.step % c.evalEvery === 0 || last)) {
          lastValLoss = this.evaluate();
          metrics?.write({ step: this.step, valLoss: lastValLoss });
          progress.eval(this.step, lastValLoss);
          for (const p of this.plugins) await p.afterEval?.({ ...base, step: this.step, valLoss: lastValLoss });
        }
        if (this.opts.stopAtStep !== undefined && this.step >= this.opts.stopAtStep) this.stopRequested = true;
        const periodic = c.checkpointEvery > 0 && this.step % c.checkpointEvery === 0;
        if (main && (periodic || last || this.stopRequested)) {
          this.checkpoint();
          if (!last && !this.stopRequested) progress.log(`step ${this.step}: checkpoint written`);
          for (const p of this.plugins) await p.onCheckpoint?.(stepCtx);
        }
        // Let signal handlers (and other events) run between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (this.stopRequested && this.step < c.steps) reason = "interrupted";
      // A stop that arrived between steps: the last step is not in a checkpoint yet.
      if (main && this.lastCheckpointStep !== this.step) {
        this.checkpoint();
        for (const p of this.plugins) await p.onCheckpoint?.({ ...base, step: this.step, reason });
      }
      failed = false;
    } finally {
      progress.done();
      metrics?.close();
      const end: EndContext = { ...base, step: this.step, reason: failed ? "failed" : reason };
      for (const p of this.plugins) {
        try {
          await p.teardown?.(end);
        } catch (e) {
          if (!failed) throw e;
        }
      }
    }
    return { step: this.step, reason, lastLoss: losses.at(-1), lastValLoss, losses };
  }

  /** One optimizer step; returns its metrics row. */
  private trainStep(tokensPerStep: number): StepRow {
    if (this.config.cudaGraph === true) return this.graphedTrainStep(tokensPerStep);
    const c = this.config;
    const lr = this.schedule(this.step);
    this.optimizer.setLr(lr);
    this.model.train();
    if (this.isCuda) torch.cuda.synchronize(); // the clock starts with an idle device
    const t0 = performance.now();
    const stepNo = this.step + 1;
    const parallel = this.parallel && this.parallel.worldSize > 1 ? this.parallel : null;
    const { loss, gradNorm } = eagerTrainStep(
      {
        params: this.params,
        optimizer: this.optimizer,
        forwardLoss: (x, y) => this.forwardLoss(x, y),
        gradAccum: c.gradAccum,
        gradClip: c.gradClip > 0 ? c.gradClip : Number.POSITIVE_INFINITY,
      },
      () => this.sampler.next(c.device, this.rows),
      {
        rideAlong: (inputs, targets) => this.rideAlong(inputs, targets),
        // Equal shares of the global batch: the mean of the ranks' means is the global mean.
        afterBackward: parallel
          ? (l) => {
              parallel.averageGradients(this.params);
              return parallel.meanOf(l);
            }
          : undefined,
        nonFinite: (what, value) => new NonFiniteLossError(stepNo, what, value, this.lastCheckpointStep, this.runDir),
      },
    );
    if (this.isCuda) torch.cuda.synchronize();
    const stepMs = performance.now() - t0;
    this.step = stepNo;
    return { step: stepNo, loss, lr, stepMs, tokensPerSec: tokensPerStep / (stepMs / 1000), gradNorm };
  }

  /**
   * One optimizer step through the captured CUDA graph: the micro-batches are copied into its
   * inputs and the graph is replayed (the first steps run eagerly, then it is captured). The
   * loss and gradient norm are read after the update, so a non-finite one stops the run after
   * the step that produced it; the checkpoints on disk are those written before.
   */
  private graphedTrainStep(tokensPerStep: number): StepRow {
    const c = this.config;
    const lr = this.schedule(this.step);
    this.optimizer.setLr(lr);
    this.model.train();
    this.graphStep ??= new GraphedTrainStep({
      params: this.params,
      optimizer: this.optimizer,
      forwardLoss: (x, y) => this.forwardLoss(x, y),
      gradAccum: c.gradAccum,
      gradClip: c.gradClip > 0 ? c.gradClip : Number.POSITIVE_INFINITY,
    });
    const graphStep = this.graphStep;
    torch.cuda.synchronize();
    const t0 = performance.now();
    const out = torch.tidy(() => {
      const batches = [];
      for (let micro = 0; micro < c.gradAccum; micro++) batches.push(this.sampler.next(c.device, this.rows));
      return graphStep.run(batches);
    });
    const loss = (out.lossSum.item() as number) / c.gradAccum;
    const gradNorm = out.gradNorm.item() as number;
    const stepNo = this.step + 1;
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(stepNo, "loss", loss, this.lastCheckpointStep, this.runDir);
    if (!Number.isFinite(gradNorm)) throw new NonFiniteLossError(stepNo, "gradient norm", gradNorm, this.lastCheckpointStep, this.runDir);
    torch.cuda.synchronize();
    const stepMs = performance.now() - t0;
    this.step = stepNo;
    return { step: stepNo, loss, lr, stepMs, tokensPerSec: tokensPerStep / (stepMs / 1000), gradNorm };
  }

  /** The first plugin's ride-along forward pass of the step's first micro-batch, if one offers it. */
  private rideAlong(inputs: Tensor, targets: Tensor): RideAlong | null {
    for (const p of this.plugins) {
      const r = p.stepForward?.({ ...this.context(), step: this.step, inputs, targets });
      if (r) return r;
    }
    return null;
  }

  private forwardLoss(inputs: Tensor, targets: Tensor): Tensor {
    const run = () => this.model.forward(inputs, { targets }).loss;
    return this.config.dtype === "bfloat16" ? torch.autocast(this.config.device, "bfloat16", run) : run();
  }

  /** Mean validation loss over `evalBatches` fixed batches (the same windows at every evaluation). */
  evaluate(): number {
    const c = this.config;
    const sampler = this.data.valSampler(c.seed);
    const wasTraining = this.model.training;
    this.model.eval();
    try {
      let sum = 0;
      for (let b = 0; b < c.evalBatches; b++) {
        sum += torch.tidy(() =>
          torch.noGrad(() => {
            const { inputs, targets } = sampler.next(c.device);
            return this.forwardLoss(inputs, targets).item() as number;
          }),
        );
      }
      return sum / c.evalBatches;
    } finally {
      this.model.train(wasTraining);
    }
  }

  /** Frees the model, the optimizer state and open data files. The trainer cannot be used afterwards. */
  close(): void {
    this.graphStep?.dispose();
    this.graphStep = null;
    this.data.close();
    this.optimizer.dispose();
    this.model.dispose();
  }

  /** Writes the current state as the run's checkpoint (atomically, as one unit). */
  checkpoint(): void {
    const state: Omit<TrainerState, "rng" | "optimizer"> = {
      format: 1,
      step: this.step,
      config: this.config,
      tokenizer: this.data.tokenizerJSON,
      sampler: this.sampler.state(),
      data: { trainTokens: this.data.trainTokens, valTokens: this.data.valTokens },
    };
    writeRunCheckpoint(this.runDir, { model: this.model, optimizer: this.optimizer, state, hfExtra: this.hfExtra(), tokenizerDir: this.tokenizerDir });
    this.lastCheckpointStep = this.step;
  }

  /**
   * What config.json carries besides the model's fields. A Hugging Face tokenizer is not named
   * there: its tokenizer.json lies beside config.json, where every reader looks for it.
   */
  private hfExtra(): Record<string, unknown> {
    const tok = this.data.tokenizerJSON;
    return { innerloop: { ...(tok !== null && tok.kind !== "hf" ? { tokenizer: tok } : {}), training: this.config, step: this.step } };
  }
}
