/**
 * Data-parallel training on torch.distributed.
 *
 * Launch: `innerloop train --nproc N` starts N worker processes of the same
 * command with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so torchrun, Slurm or any
 * launcher that sets these variables can start workers on several machines
 * too (`--nnodes`, `--node-rank`, `--master-addr`, `--master-port`).
 *
 * Each step every rank draws the same global batch from identically seeded
 * samplers and takes its own slice of it; the gradients are averaged over
 * ranks, so every rank applies the same update, and the parameters, broadcast
 * from rank 0 at the start, stay identical. Rank 0 alone writes metrics,
 * checkpoints and analysis.
 *
 * Averaging overlaps the backward pass by default (c10d's Reducer, see
 * `GradientReducer`): buckets of gradients are all-reduced while backward
 * computes the rest. With gradient accumulation only the step's last backward
 * pass reduces. The trainer does not say how many passes a step has, so the
 * first step averages after backward (the earlier path, `overlap: false`) and
 * counts them; later steps reduce in their last pass. A step that ends
 * without a reducing pass falls back to averaging after backward.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { torch, type Tensor } from "../torch/index.js";
import type { ProcessGroup } from "../torch/index.js";
import type { GradientReducer, GradientReducerStats } from "../torch/distributed.js";

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
}

function intEnv(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`environment variable ${name}=${v} must be a non-negative integer`);
  return n;
}

/** The torchrun-style environment of this process, or null when it is not a worker of a multi-process run. */
export function distEnvFromProcess(): DistEnv | null {
  const worldSize = intEnv("WORLD_SIZE");
  if (worldSize === undefined || worldSize <= 1) return null;
  const rank = intEnv("RANK");
  if (rank === undefined || rank >= worldSize) throw new RangeError(`RANK must be set and below WORLD_SIZE (${worldSize})`);
  return {
    rank,
    worldSize,
    localRank: intEnv("LOCAL_RANK") ?? rank,
    masterAddr: process.env.MASTER_ADDR ?? "127.0.0.1",
    masterPort: intEnv("MASTER_PORT") ?? 29500,
  };
}

export interface DataParallelOptions {
  /**
   * Average gradients while the backward pass runs (default), or after it. The environment
   * variable INNERLOOP_DDP_OVERLAP=0 turns it off where the option is not given.
   */
  overlap?: boolean;
  /** Bucket size for the all-reduce (default 25 MiB; INNERLOOP_DDP_BUCKET_MB where not given). */
  bucketBytes?: number;
  /** Size of the first bucket of the overlapped path (default 1 MiB). */
  firstBucketBytes?: number;
}

function envOverlap(): boolean {
  const v = process.env.INNERLOOP_DDP_OVERLAP;
  if (v === undefined || v === "" || v === "1") return true;
  if (v === "0") return false;
  throw new RangeError(`environment variable INNERLOOP_DDP_OVERLAP=${v} must be 0 or 1`);
}

function envBucketBytes(): number | undefined {
  const v = process.env.INNERLOOP_DDP_BUCKET_MB;
  if (v === undefined || v === "") return undefined;
  const mb = Number(v);
  if (!(mb > 0) || !Number.isFinite(mb)) throw new RangeError(`environment variable INNERLOOP_DDP_BUCKET_MB=${v} must be a positive number`);
  return Math.max(1, Math.round(mb * 1024 * 1024));
}

/** The collectives a data-parallel trainer needs, over one process group. */
export class DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  readonly isMain: boolean;
  /** Whether gradients are averaged during the backward pass (asked for, and this build can). */
  readonly overlap: boolean;
  private readonly bucketBytes: number;
  private readonly firstBucketBytes: number | undefined;
  private reducer: GradientReducer | null = null;

  private constructor(
    private readonly pg: ProcessGroup,
    opts: DataParallelOptions,
  ) {
    this.rank = pg.rank;
    this.worldSize = pg.worldSize;
    this.isMain = pg.rank === 0;
    this.overlap = (opts.overlap ?? envOverlap()) && torch.distributed.hasGradientReducer();
    this.bucketBytes = opts.bucketBytes ?? envBucketBytes() ?? 25 * 1024 * 1024;
    this.firstBucketBytes = opts.firstBucketBytes;
  }

  /** Joins the run described by env; NCCL on CUDA devices, Gloo otherwise. */
  static join(env: DistEnv, device: string, timeoutMs = 120_000, opts: DataParallelOptions = {}): DataParallel {
    const backend = device.startsWith("cuda") ? "nccl" : "gloo";
    const pg = torch.distributed.initProcessGroup({
      backend,
      rank: env.rank,
      worldSize: env.worldSize,
      masterAddr: env.masterAddr,
      masterPort: env.masterPort,
      timeoutMs,
    });
    return new DataParallel(pg, opts);
  }

  /**
   * Makes every rank start from rank 0's parameters. With overlap, these are the parameters whose
   * gradients are then averaged during backward (their hooks are installed here); given the
   * number of backward passes per optimizer step, the first step already reduces during its last
   * pass (otherwise it counts them and averages after backward).
   */
  broadcastParameters(params: Tensor[], backwardsPerStep?: number): void {
    torch.noGrad(() => this.pg.broadcast(params, 0));
    if (this.overlap && this.worldSize > 1) {
      this.reducer?.destroy();
      this.reducer = this.pg.gradientReducer(params, {
        bucketBytes: this.bucketBytes,
        firstBucketBytes: this.firstBucketBytes,
        backwardsPerStep,
      });
    }
  }

  /**
   * Replaces each gradient by its mean over ranks. Called once per optimizer step, after its last
   * backward pass. With overlap the reducing pass has already done it; a step without one (the
   * first, or one whose number of passes changed) is averaged here.
   */
  averageGradients(params: Tensor[]): void {
    const r = this.reducer;
    if (r && sameTensors(params, r.params)) {
      const { reduced, backwards } = r.finish();
      if (reduced) return;
      this.pg.averageGradients(params, this.bucketBytes);
      // Every rank counted the same passes (the same loop), so they all start reducing together.
      if (backwards > 0) r.setBackwardsPerStep(backwards);
      return;
    }
    this.pg.averageGradients(params, this.bucketBytes);
  }

  /** How the overlapped path went so far (null without it). */
  overlapStats(): GradientReducerStats | null {
    return this.reducer?.stats() ?? null;
  }

  /** The mean over ranks of a number (e.g. the step's loss). */
  meanOf(value: number): number {
    return torch.tidy(() => {
      const t = torch.tensor([value], { dtype: "float64" });
      this.pg.allReduce(t, "sum");
      return (t.item() as number) / this.worldSize;
    });
  }

  barrier(): void {
    this.pg.barrier();
  }

  destroy(): void {
    this.reducer?.destroy();
    this.reducer = null;
    this.pg.destroy();
  }
}

function sameTensors(a: readonly Tensor[], b: readonly Tensor[]): boolean {
  return a === b || (a.length === b.length && a.every((t, i) => t === b[i]));
}

/** The slice [start, end) of a global batch of `globalBatch` rows that `rank` trains on. */
export function rankSlice(globalBatch: number, rank: number, worldSize: number): { start: number; end: number } {
  if (globalBatch % worldSize !== 0) {
    throw new RangeError(`--batch-size ${globalBatch} must be divisible by the number of processes (${worldSize})`);
  }
  const per = globalBatch / worldSize;
  return { start: rank * per, end: (rank + 1) * per };
}

export interface LaunchOptions {
  /** Worker processes on this machine. */
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** The command line each worker runs (node flags and script included). */
  argv: string[];
  /** How long to wait for the other workers after one failed, before stopping them. */
  graceMs?: number;
  stderr?: NodeJS.WritableStream;
}

/**
 * Starts the workers of this node and waits for them. When one fails, the
 * others are given `graceMs` to notice (their collectives fail) and are then
 * terminated; the exit status is the first failure's.
 */
export function launchWorkers(o: LaunchOptions): Promise<number> {
  const worldSize = o.nproc * o.nnodes;
  const stderr = o.stderr ?? process.stderr;
  const children: ChildProcess[] = [];
  return new Promise((resolve) => {
    let remaining = o.nproc;
    let firstFailure = 0;
    let killTimer: NodeJS.Timeout | undefined;
    const forward = (sig: NodeJS.Signals) => () => {
      for (const c of children) c.kill(sig);
    };
    const onInt = forward("SIGINT");
    const onTerm = forward("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    for (let local = 0; local < o.nproc; local++) {
      const rank = o.nodeRank * o.nproc + local;
      const env = {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(o.nproc),
        GROUP_RANK: String(o.nodeRank),
        MASTER_ADDR: o.masterAddr,
        MASTER_PORT: String(o.masterPort),
      };
      // Only rank 0 draws the progress display; the others report errors only.
      // Own process group: a terminal's Ctrl-C reaches the workers once, through the forwarding above.
      const child = spawn(process.execPath, o.argv, {
        env,
        detached: true,
        stdio: ["ignore", rank === 0 ? "inherit" : "ignore", "inherit"],
      });
      children.push(child);
      child.on("exit", (code, signal) => {
        const status = code ?? (signal ? 128 + 1 : 1);
        if (status !== 0 && firstFailure === 0) {
          firstFailure = status;
          stderr.write(`innerloop: worker rank ${rank} exited with ${signal ?? `status ${code}`}; stopping the others\n`);
          killTimer = setTimeout(() => {
            for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
          }, o.graceMs ?? 30_000);
        }
        if (--remaining === 0) {
          if (killTimer) clearTimeout(killTimer);
          process.off("SIGINT", onInt);
          process.off("SIGTERM", onTerm);
          resolve(firstFailure);
        }
      });
    }
  });
}
