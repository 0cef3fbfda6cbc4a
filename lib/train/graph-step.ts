/**
 * A whole training step captured into a CUDA graph (`innerloop train --cuda-graph`, `innerloop
 * bench --cuda-graph`): forward and loss of every micro-batch, backward, clipping of the gradient
 * norm and the AdamW update are recorded once and then replayed with a single launch per step.
 * For a model whose kernels are short, launching them one by one from the host is what bounds the
 * step; a replay removes that cost.
 *
 * How (PyTorch's "whole network capture"):
 * - the first `warmup` steps run eagerly, on the graph's own stream, so that everything created
 *   lazily (AdamW's moments and step tensors, cuBLAS workspaces, the autograd engine's device
 *   threads) exists before capture and belongs to the stream the capture records;
 * - before capturing, gradients are dropped; the captured backward pass then writes them (the
 *   first micro-batch's) and adds to them (the others'), into memory of the graph's own pool, and
 *   every replay does the same into the same memory: gradients are not dropped between replays;
 * - micro-batches are copied into static input tensors before each replay; the loss sum and the
 *   gradient norm are static outputs that each replay rewrites;
 * - the optimizer must be capturable (step counts and learning rate on the device): the schedule's
 *   learning rate is written into its tensor before each replay.
 *
 * The step is the same arithmetic as the eager one, so losses agree with an eager run to rounding
 * (the kernels are the same; a few may pick another algorithm under capture).
 */
import { torch, type Tensor } from "../torch/index.js";
import { AdamW, clipGradNormTensor_ } from "../optim/index.js";
import { sameShape } from "../util/shape.js";

export interface GraphStepOptions {
  /** The trained parameters (those the optimizer updates). */
  params: Tensor[];
  /** A capturable AdamW (`new AdamW(groups, { capturable: true })`). */
  optimizer: AdamW;
  /** Forward pass with the mean loss of one micro-batch (autocast inside it where wanted). */
  forwardLoss: (inputs: Tensor, targets: Tensor) => Tensor;
  /** Micro-batches per step: their losses are averaged and their gradients summed (scaled by 1/gradAccum). */
  gradAccum: number;
  /** Clip the total gradient norm to this (Infinity: measure it only). */
  gradClip: number;
  /** Eager steps before the capture (at least 1). */
  warmup?: number;
}

export interface Microbatch {
  inputs: Tensor;
  targets: Tensor;
}

/** What one step returns: tensors owned by the step, valid until its next call. */
export interface GraphStepOutput {
  /** Sum of the micro-batches' mean losses (0-dim, float32). */
  lossSum: Tensor;
  /** Total gradient norm before clipping (0-dim, float32). */
  gradNorm: Tensor;
}

export class GraphedTrainStep {
  private readonly opts: Required<GraphStepOptions>;
  private eagerSteps = 0;
  /** Made at the first step (the warm-up runs on its stream); `captured` once the step is recorded. */
  private graph: InstanceType<typeof torch.cuda.CudaGraph> | null = null;
  private staticInputs: Tensor[] = [];
  private staticTargets: Tensor[] = [];
  private outputs: GraphStepOutput | null = null;

  constructor(opts: GraphStepOptions) {
    if (!opts.optimizer.capturable) throw new Error("GraphedTrainStep: the optimizer must be capturable (new AdamW(..., { capturable: true }))");
    const warmup = opts.warmup ?? 3;
    if (!Number.isInteger(warmup) || warmup < 1) throw new RangeError(`GraphedTrainStep: warmup must be an integer >= 1, got ${warmup}`);
    if (!Number.isInteger(opts.gradAccum) || opts.gradAccum < 1) throw new RangeError(`GraphedTrainStep: gradAccum must be an integer >= 1, got ${opts.gradAccum}`);
    const device = opts.params[0]?.device ?? "cpu";
    if (!device.startsWith("cuda")) throw new Error(`GraphedTrainStep: CUDA graphs need parameters on a CUDA device (they are on ${device})`);
    this.opts = { ...opts, warmup };
  }

  /** True once the step has been captured (every later call is a replay). */
  get captured(): boolean {
    return this.graph?.captured === true;
  }

  /**
   * Runs one optimizer step on `batches` (gradAccum micro-batches of the same shapes every step).
   * Returns without waiting for the device.
   */
  run(batches: Microbatch[]): GraphStepOutput {
    const o = this.opts;
    if (batches.length !== o.gradAccum) throw new RangeError(`GraphedTrainStep.run: expected ${o.gradAccum} micro-batches, got ${batches.length}`);
    this.graph ??= new torch.cuda.CudaGraph(deviceIndex(o.params[0]!.device));
    const graph = this.graph;
    if (!graph.captured && this.eagerSteps < o.warmup) {
      this.eagerSteps++;
      this.disposeOutputs();
      torch.tidy(() => o.optimizer.zeroGrad());
      this.outputs = torch.keep(graph.onStream(() => this.body(batches)));
      return this.outputs;
    }
    if (!graph.captured) this.capture(graph, batches);
    this.copyInputs(batches);
    o.optimizer.refreshLr();
    graph.replay();
    return this.outputs!;
  }

  /** Frees the graph, the static tensors and the outputs; the gradients stay (they belong to the parameters). */
  dispose(): void {
    this.graph?.dispose();
    this.graph = null;
    this.opts.optimizer.capturedBy(null);
    this.disposeOutputs();
    for (const t of [...this.staticInputs, ...this.staticTargets]) t.dispose();
    this.staticInputs = [];
    this.staticTargets = [];
  }

  /** Forward and backward of every micro-batch, clipping and the update; no gradient is dropped. */
  private body(batches: Microbatch[]): GraphStepOutput {
    const o = this.opts;
    return torch.tidy(() => {
      let lossSum: Tensor | null = null;
      for (const { inputs, targets } of batches) {
        const loss = o.forwardLoss(inputs, targets);
        (o.gradAccum > 1 ? loss.div(o.gradAccum) : loss).backward();
        const l = loss.detach().float();
        lossSum = lossSum === null ? l : lossSum.add(l);
      }
      const gradNorm = clipGradNormTensor_(o.params, o.gradClip);
      o.optimizer.step();
      return { lossSum: lossSum!, gradNorm };
    });
  }

  private capture(graph: InstanceType<typeof torch.cuda.CudaGraph>, batches: Microbatch[]): void {
    const o = this.opts;
    for (const t of [...this.staticInputs, ...this.staticTargets]) t.dispose();
    this.staticInputs = batches.map((b) => torch.keep(torch.emptyLike(b.inputs)));
    this.staticTargets = batches.map((b) => torch.keep(torch.emptyLike(b.targets)));
    this.disposeOutputs();
    torch.tidy(() => o.optimizer.zeroGrad());
    // Nothing runs during the capture: the inputs and the learning rate are written before each
    // replay, this step's first included (run()).
    const statics = this.staticInputs.map((inputs, i) => ({ inputs, targets: this.staticTargets[i]! }));
    try {
      this.outputs = torch.keep(graph.capture(() => this.body(statics)));
    } catch (e) {
      // The gradients a failed capture made were never computed: drop them.
      torch.tidy(() => o.optimizer.zeroGrad());
      throw e;
    }
    // From here the graph reads and writes the optimizer's state and the gradients in place.
    o.optimizer.capturedBy(this);
  }

  private copyInputs(batches: Microbatch[]): void {
    torch.noGrad(() => {
      batches.forEach((b, i) => {
        checkSameShape(b.inputs, this.staticInputs[i]!, "inputs");
        checkSameShape(b.targets, this.staticTargets[i]!, "targets");
        this.staticInputs[i]!.copy_(b.inputs);
        this.staticTargets[i]!.copy_(b.targets);
      });
    });
  }

  private disposeOutputs(): void {
    if (this.outputs !== null) {
      this.outputs.lossSum.dispose();
      this.outputs.gradNorm.dispose();
    }
    this.outputs = null;
  }
}

function checkSameShape(t: Tensor, s: Tensor, what: string): void {
  if (!sameShape(t.shape, s.shape)) {
    throw new RangeError(`GraphedTrainStep.run: ${what} of shape [${t.shape}], but the captured step takes [${s.shape}] (shapes are fixed by the capture)`);
  }
}

function deviceIndex(device: string): number {
  return device === "cuda" ? 0 : Number(device.slice("cuda:".length));
}
