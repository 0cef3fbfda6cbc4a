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
  /** Replaces every parameter's gradient by its mean over ranks (bucketed all-reduce). */
  averageGradients(params: Tensor[], bucketBytes = 25 * 1024 * 1024): void {
    native.distributed.averageGradients(this.id(), params, bucketBytes);
  }
  destroy(): void {
    if (this.handle !== null) native.distributed.destroy(this.handle);
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

/** Whether this build can make NCCL process groups. */
export function hasNccl(): boolean {
  return native.distributed.hasNccl;
}
