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
 * samplers and takes its own slice of it; after backward the gradients are
 * averaged over ranks (bucketed all-reduce), so every rank applies the same
 * update, and the parameters, broadcast from rank 0 at the start, stay
 * identical. Rank 0 alone writes metrics, checkpoints and analysis.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { torch, type Tensor } from "../torch/index.js";
import type { ProcessGroup } from "../torch/index.js";

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

/** The collectives a data-parallel trainer needs, over one process group. */
export class DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  readonly isMain: boolean;

  private constructor(private readonly pg: ProcessGroup) {
    this.rank = pg.rank;
    this.worldSize = pg.worldSize;
    this.isMain = pg.rank === 0;
  }

  /** Joins the run described by env; NCCL on CUDA devices, Gloo otherwise. */
  static join(env: DistEnv, device: string, timeoutMs = 120_000): DataParallel {
    const backend = device.startsWith("cuda") ? "nccl" : "gloo";
    const pg = torch.distributed.initProcessGroup({
      backend,
      rank: env.rank,
      worldSize: env.worldSize,
      masterAddr: env.masterAddr,
      masterPort: env.masterPort,
      timeoutMs,
    });
    return new DataParallel(pg);
  }

  /** Makes every rank start from rank 0's parameters. */
  broadcastParameters(params: Tensor[]): void {
    torch.noGrad(() => this.pg.broadcast(params, 0));
  }

  /** Replaces each gradient by its mean over ranks. */
  averageGradients(params: Tensor[]): void {
    this.pg.averageGradients(params);
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
    this.pg.destroy();
  }
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
