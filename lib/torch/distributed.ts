// torch.distributed: c10d process groups (Gloo on CPU, NCCL on CUDA) with
// torchrun's environment conventions (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT).
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";

export type Backend = "gloo" | "nccl";
export type ReduceOp = "sum" | "avg" | "max" | "min" | "product";

export interface InitOptions {
  backend?: Backend;
  rank?: number;
  worldSize?: number;
  masterAddr?: string;
  masterPort?: number;
  /** How long rendezvous and each collective may wait for the other ranks. */
  timeoutMs?: number;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`distributed: environment variable ${name}=${v} is not a non-negative integer`);
  return n;
}

/** A process group: the ranks that take part in collectives together. */
export class ProcessGroup {
  private handle: number | null;
  constructor(handle: number, readonly rank: number, readonly worldSize: number, readonly backend: Backend) {
    this.handle = handle;
  }
  private id(): number {
    if (this.handle === null) throw new Error("distributed: the process group was destroyed");
    return this.handle;
  }
  /** Reduces each tensor across ranks, in place. */
  allReduce(tensors: Tensor | Tensor[], op: ReduceOp = "sum"): void {
    native.distributed.allReduce(this.id(), Array.isArray(tensors) ? tensors : [tensors], op);
  }
  /** Copies each tensor from rank `root` to every rank, in place. */
  broadcast(tensors: Tensor | Tensor[], root = 0): void {
    native.distributed.broadcast(this.id(), Array.isArray(tensors) ? tensors : [tensors], root);
  }
  barrier(): void {
    native.distributed.barrier(this.id());
  }
  /**
   * Replaces every parameter's gradient by its mean over ranks, after backward: gradients are
   * packed into buckets of at most `bucketBytes`, and every bucket's all-reduce is started before
   * any is waited for. A parameter without a gradient gets zeros first.
   */
  averageGradients(params: Tensor[], bucketBytes = 25 * 1024 * 1024): void {
    native.distributed.averageGradients(this.id(), params, bucketBytes);
  }
  /**
   * A reducer that averages the gradients of `params` over ranks while the backward pass runs
   * (c10d's Reducer, what PyTorch's DistributedDataParallel uses). Every rank must create it with
   * the same parameters in the same order, listing shared (tied) parameters once.
   */
  gradientReducer(params: Tensor[], opts: GradientReducerOptions = {}): GradientReducer {
    if (!hasGradientReducer()) throw new Error("gradientReducer: this build of innerloop cannot average gradients during backward (see distributed.hasGradientReducer)");
    if (params.length === 0) throw new RangeError("gradientReducer: no parameters");
    if (opts.names && opts.names.length !== params.length) {
      throw new RangeError(`gradientReducer: ${opts.names.length} names for ${params.length} parameters`);
    }
    for (const [k, v] of [["bucketBytes", opts.bucketBytes], ["firstBucketBytes", opts.firstBucketBytes]] as const) {
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new RangeError(`gradientReducer: ${k} must be a positive integer, got ${v}`);
    }
    const handle = native.distributed.reducer(
      this.id(),
      params,
      opts.names ?? null,
      opts.bucketBytes ?? 25 * 1024 * 1024,
      opts.firstBucketBytes ?? 1024 * 1024,
    ) as number;
    const reducer = new GradientReducer(handle, params);
    if (opts.backwardsPerStep !== undefined) reducer.setBackwardsPerStep(opts.backwardsPerStep);
    return reducer;
  }
  destroy(): void {
    if (this.handle !== null) native.distributed.destroy(this.handle);
    this.handle = null;
  }
}

export interface GradientReducerOptions {
  /** Bucket size (default 25 MiB, as in PyTorch). */
  bucketBytes?: number;
  /** Size of the first bucket, the first to be reduced (default 1 MiB, as in PyTorch). */
  firstBucketBytes?: number;
  /** Parameter names, for error messages. */
  names?: string[];
  /** See `GradientReducer.setBackwardsPerStep` (default 0: no pass reduces until it is set). */
  backwardsPerStep?: number;
}

/** What `GradientReducer.finish` found. */
export interface ReduceResult {
  /** The gradients hold their means over ranks (reduced during the step's last backward pass). */
  reduced: boolean;
  /** Backward passes since the previous `finish`. */
  backwards: number;
}

export interface GradientReducerStats {
  /** Steps whose gradients were averaged during the backward pass. */
  stepsReduced: number;
  /** Steps that ended without a reducing pass. */
  stepsNotReduced: number;
  backwardsPerStep: number;
  /** The current buckets' sizes, in the order they are reduced. */
  bucketBytes: number[];
}

/**
 * Averages gradients over ranks while the backward pass runs: a bucket's all-reduce starts as
 * soon as its gradients are accumulated, and the pass ends with the means in the gradients.
 *
 *   reducer.setBackwardsPerStep(microBatches);
 *   for each micro-batch: loss.backward();   // the last pass averages; the earlier ones only accumulate
 *   const { reduced } = reducer.finish();    // false: no pass reduced, average some other way
 *   optimizer.step();
 *
 * Backward passes that compute parameter gradients through `torch.autograd.grad` do not count
 * (they leave `.grad` alone). A dead or stuck rank makes the reducing pass throw once the process
 * group's timeout has passed.
 */
export class GradientReducer {
  private handle: number | null;
  constructor(handle: number, readonly params: readonly Tensor[]) {
    this.handle = handle;
  }
  private id(): number {
    if (this.handle === null) throw new Error("distributed: the gradient reducer was destroyed");
    return this.handle;
  }
  /**
   * Every step has `n` backward passes and the n-th averages the gradients (PyTorch's `no_sync`
   * for the others); 0: no pass does. Call between steps.
   */
  setBackwardsPerStep(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`setBackwardsPerStep: expected an integer >= 0, got ${n}`);
    native.distributed.reducerSetBackwardsPerStep(this.id(), n);
  }
  /**
   * Ends a step: after its last backward pass, before the gradients are read. Throws when the
   * reducing pass left a parameter without a gradient, or when passes ran after it.
   */
  finish(): ReduceResult {
    return native.distributed.reducerFinish(this.id()) as ReduceResult;
  }
  stats(): GradientReducerStats {
    return native.distributed.reducerStats(this.id()) as GradientReducerStats;
  }
  /** Removes the hooks from the parameters. */
  destroy(): void {
    if (this.handle !== null) native.distributed.reducerDestroy(this.handle);
    this.handle = null;
  }
}

/**
 * Joins (or, on rank 0, hosts) the rendezvous and creates a process group.
 * Options default to the torchrun environment variables. Blocks until every
 * rank has joined or timeoutMs passes (then throws).
 */
export function initProcessGroup(opts: InitOptions = {}): ProcessGroup {
  const backend = opts.backend ?? "gloo";
  const rank = opts.rank ?? envInt("RANK") ?? 0;
  const worldSize = opts.worldSize ?? envInt("WORLD_SIZE") ?? 1;
  const masterAddr = opts.masterAddr ?? process.env.MASTER_ADDR ?? "127.0.0.1";
  const masterPort = opts.masterPort ?? envInt("MASTER_PORT") ?? 29500;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const handle = native.distributed.init(backend, rank, worldSize, masterAddr, masterPort, timeoutMs);
  return new ProcessGroup(handle, rank, worldSize, backend);
}

/**
 * Whether this build can average gradients during the backward pass (`gradientReducer`): false
 * for an addon built before it existed, or against a libtorch whose c10d Reducer it does not know.
 */
export function hasGradientReducer(): boolean {
  return native.distributed.hasReducer === true;
}

/** Whether this build can make NCCL process groups. */
export function hasNccl(): boolean {
  return native.distributed.hasNccl;
}
