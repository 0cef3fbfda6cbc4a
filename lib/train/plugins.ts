/**
 * Trainer plugins: code that runs at fixed points of the training loop
 * without the trainer knowing what it does (analysis snapshots, extra
 * logging, early stopping).
 *
 * A plugin is an object with any of the optional methods of `TrainerPlugin`;
 * add it with `trainer.addPlugin(plugin)`. The trainer calls, in order:
 *
 *   setup(ctx)            once, before the first step (also after a resume)
 *   stepForward(ctx)      at the start of every step: may run its first micro-batch's forward
 *                         pass itself, carrying work of its own along (see RideAlong)
 *   afterStep(ctx)        after every optimizer step, with that step's metrics
 *   afterEval(ctx)        after each validation pass, with `valLoss`
 *   onCheckpoint(ctx)     after a checkpoint was written to `ctx.runDir`
 *   teardown(ctx)         once at the end (finished, interrupted or failed)
 *
 * Methods may be async; the trainer awaits them. Time spent in plugins is
 * not counted in `stepMs`. A plugin must not change the model's weights, the
 * torch RNG stream it relies on, or the sampler (resume exactness depends on
 * them); it should put the model in eval mode for its own forward passes
 * and may leave it in either mode (the trainer sets train mode before every
 * step). Tensors it creates are its own to dispose (use `torch.tidy`).
 *
 * The CLI turns `--analyze-every N --analyze-windows K` into a plugin
 * through the factory registered under the name "analysis":
 *
 * ```ts
 * // in a module the CLI imports (e.g. the analyze command's file); this
 * // file has no runtime imports, so registering costs nothing:
 * import { registerTrainerPlugin } from "../train/plugins.js";
 * registerTrainerPlugin("analysis", async (opts) => {
 *   const { AnalysisPlugin } = await import("../analysis/train-plugin.js");
 *   return new AnalysisPlugin(opts);
 * });
 * ```
 *
 * `opts.config.analyzeEvery` / `opts.config.analyzeWindows` carry the flag
 * values; `ctx.valTokens` is the held-out token stream to take windows from.
 */
import type { TrainConfig } from "./config.js";
import type { Tensor } from "../torch/index.js";
import type { ScalarSink } from "./tensorboard.js";

/** What a plugin sees of the run. Shared by all hooks. */
export interface TrainerContext {
  /** The run directory (metrics.jsonl, checkpoints; put plugin output in a sub-folder). */
  runDir: string;
  config: Readonly<TrainConfig>;
  /** The model being trained (any CausalLM: GPT-2, LLaMA family, GPT-NeoX or a Module of the caller). */
  model: unknown;
  /** The tokenizer of the run (lib/data `Tokenizer`). */
  tokenizer: unknown;
  /** Held-out validation tokens (lib/data token stream; null when there are none); analysis windows come from here. */
  valTokens: unknown;
  /** Step of the run the trainer started from (0, or the resumed step). */
  startStep: number;
  /** True when this process resumed an earlier run. */
  resumed: boolean;
}

export interface StepContext extends TrainerContext {
  /** Optimizer steps done so far (1 after the first step). */
  step: number;
  /** Mean training loss of this step (over its micro-batches). */
  loss: number;
  lr: number;
  gradNorm: number;
  stepMs: number;
  tokensPerSec: number;
}

export interface EvalContext extends TrainerContext {
  step: number;
  valLoss: number;
}

export interface EndContext extends TrainerContext {
  step: number;
  /** Why the run ended. */
  reason: "finished" | "interrupted" | "failed";
}

export interface StepForwardContext extends TrainerContext {
  /** Optimizer steps done so far: the step about to run is `step + 1`. */
  step: number;
  /** The first micro-batch of the step: input and target token ids [B, T] on the run's device. */
  inputs: Tensor;
  targets: Tensor;
}

/**
 * A forward pass run by a plugin for the trainer, with work of the plugin's own riding along in
 * the same batch (the analysis plugin's held-out windows: lib/models/gpt2-probe.ts).
 */
export interface RideAlong {
  /** The micro-batch's training loss: the value and parameter gradients of `model.forward(inputs, { targets }).loss`. */
  loss: Tensor;
  /** A scalar the trainer adds to the differentiated loss; its gradient reaches no parameter. */
  extra: Tensor;
  /** Called right after the backward pass, inside the micro-step's tensor scope. */
  afterBackward(): void;
}

type MaybePromise<T> = T | Promise<T>;

export interface TrainerPlugin {
  /** A short name for messages. */
  name?: string;
  setup?(ctx: TrainerContext): MaybePromise<void>;
  /**
   * Runs the forward pass of the step's first micro-batch instead of the trainer, or returns null
   * to leave it alone. The trainer differentiates loss / gradAccum + extra, then calls
   * afterBackward(). The step's time (stepMs) includes all of it. At most one plugin rides along
   * per step (the first that answers).
   */
  stepForward?(ctx: StepForwardContext): RideAlong | null;
  afterStep?(ctx: StepContext): MaybePromise<void>;
  afterEval?(ctx: EvalContext): MaybePromise<void>;
  onCheckpoint?(ctx: StepContext | EndContext): MaybePromise<void>;
  teardown?(ctx: EndContext): MaybePromise<void>;
}

export interface TrainerPluginOptions {
  config: Readonly<TrainConfig>;
  runDir: string;
  resumed: boolean;
  /** Where to send scalars for TensorBoard (set when the run writes event files). */
  scalars?: ScalarSink;
}

/** May be async, so that a light module can register it and import the heavy plugin code lazily. */
export type TrainerPluginFactory = (opts: TrainerPluginOptions) => TrainerPlugin | Promise<TrainerPlugin>;

const factories = new Map<string, TrainerPluginFactory>();

/** Makes a plugin available by name (the CLI asks for "analysis"). Registering a name again replaces it. */
export function registerTrainerPlugin(name: string, factory: TrainerPluginFactory): void {
  factories.set(name, factory);
}

export function getTrainerPluginFactory(name: string): TrainerPluginFactory | undefined {
  return factories.get(name);
}
