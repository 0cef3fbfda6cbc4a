// One rank of a data-parallel run, started by test/distributed.test.ts with a JSON job as its
// only argument; prints one JSON line (its results) on stdout, or exits non-zero with the error
// on stderr.
//
//   grads:   a small GPT-2 (tied embedding, no dropout); each step is `gradAccum` micro-batches
//            of the global batch's rows for this rank; the averaged gradients of every step are
//            written to `out` (float32, one file per rank). worldSize 1 is the reference.
//   train:   the trainer with DataParallel (as `innerloop train --nproc N` runs it); prints the
//            losses and how the gradients were averaged.
//   fail:    like grads, but rank 1 dies (`die`) or stops answering (`stall`) at step `failAt`.
//   bench:   step time (forward, backward, averaging) with averaging during backward and after
//            it, alternating step by step so that both see the same machine load; `model` sets
//            the GPT-2 size. Prints the medians (docs/distributed.md has the command).
import * as fs from "node:fs";
import * as path from "node:path";
import { torch } from "../../lib/torch/index.js";
import { performance } from "node:perf_hooks";
import { GPT2 } from "../../lib/models/index.js";
import { DataParallel, type DataParallelOptions } from "../../lib/train/ddp.js";
import { Trainer } from "../../lib/train/trainer.js";
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from "../../lib/train/config.js";

interface Job {
  mode: "grads" | "train" | "fail" | "bench";
  rank: number;
  worldSize: number;
  port: number;
  timeoutMs?: number;
  dp?: DataParallelOptions;
  steps: number;
  gradAccum: number;
  /** Rows of the global batch per micro-step (grads, fail). */
  globalBatch?: number;
  out?: string;
  config?: Partial<TrainConfig>;
  failAt?: number;
  failure?: "die" | "stall";
  model?: { nLayer: number; nEmbd: number; nHead: number; seqLen: number };
}

const job = JSON.parse(process.argv[2]!) as Job;

function join(): DataParallel | null {
  if (job.worldSize === 1) return null;
  return DataParallel.join(
    { rank: job.rank, worldSize: job.worldSize, localRank: job.rank, masterAddr: "127.0.0.1", masterPort: job.port },
    "cpu",
    job.timeoutMs ?? 120_000,
    job.dp ?? {},
  );
}

function gradientSteps(dp: DataParallel | null): void {
  const T = 16;
  const vocab = 96;
  const model = new GPT2({ vocabSize: vocab, nPositions: T, nEmbd: 32, nLayer: 2, nHead: 2, dropout: 0, bias: true }, { seed: 7 });
  const params = model.parameters();
  // Different starting weights on other ranks: the broadcast must make them rank 0's.
  if (job.rank > 0) torch.noGrad(() => params[0]!.add_(1));
  dp?.broadcastParameters(params);
  const B = job.globalBatch ?? 8;
  const per = B / job.worldSize;
  const rows = { start: job.rank * per, end: (job.rank + 1) * per };
  torch.manualSeed(11);
  const out: Buffer[] = [];
  for (let step = 1; step <= job.steps; step++) {
    for (let micro = 0; micro < job.gradAccum; micro++) {
      torch.tidy(() => {
        // Every rank draws the same global batch and keeps its rows.
        const ids = torch.randint(0, vocab, [B, T + 1], { dtype: "int64" });
        const mine = ids.narrow(0, rows.start, rows.end - rows.start);
        const { loss } = model.forward(mine.narrow(1, 0, T).contiguous(), { targets: mine.narrow(1, 1, T).contiguous() });
        if (job.mode === "fail" && job.rank === 1 && step === job.failAt) {
          if (job.failure === "die") process.kill(process.pid, "SIGKILL");
          // Stuck: alive, connections open, never answering.
          else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
        }
        loss!.div(job.gradAccum).backward();
      });
    }
    dp?.averageGradients(params);
    torch.tidy(() => {
      for (const p of params) out.push(Buffer.from(p.grad!.contiguous().to("float32").bytes()));
      model.zeroGrad();
    });
  }
  if (job.out && (job.rank === 0 || job.mode === "grads")) fs.writeFileSync(path.join(job.out, `grads-rank${job.rank}.bin`), Buffer.concat(out));
  const names = model.namedParameters().map(([n]) => n);
  process.stdout.write(JSON.stringify({ names, sizes: params.map((p) => p.numel), stats: dp?.overlapStats() ?? null }) + "\n");
  dp?.destroy();
}

function benchSteps(): void {
  const m = job.model ?? { nLayer: 6, nEmbd: 384, nHead: 6, seqLen: 128 };
  const vocab = 128;
  const model = new GPT2({ vocabSize: vocab, nPositions: m.seqLen, nEmbd: m.nEmbd, nLayer: m.nLayer, nHead: m.nHead, dropout: 0, bias: true }, { seed: 7 });
  const params = model.parameters();
  const pg = torch.distributed.initProcessGroup({ backend: "gloo", rank: job.rank, worldSize: job.worldSize, masterPort: job.port });
  const reducer = pg.gradientReducer(params, job.dp ?? {});
  const per = (job.globalBatch ?? 8) / job.worldSize;
  type Times = { step: number[]; backward: number[]; after: number[] };
  const times: Record<"overlap" | "after", Times> = { overlap: { step: [], backward: [], after: [] }, after: { step: [], backward: [], after: [] } };
  for (let step = 0; step < 2 * job.steps + 4; step++) {
    const mode = step % 2 === 0 ? "overlap" : "after";
    reducer.setBackwardsPerStep(mode === "overlap" ? 1 : 0);
    pg.barrier();
    const t0 = performance.now();
    torch.tidy(() => {
      const ids = torch.randint(0, vocab, [per, m.seqLen + 1], { dtype: "int64" });
      model.forward(ids.narrow(1, 0, m.seqLen).contiguous(), { targets: ids.narrow(1, 1, m.seqLen).contiguous() }).loss!.backward();
    });
    const t1 = performance.now();
    const { reduced } = reducer.finish();
    if (reduced !== (mode === "overlap")) throw new Error(`step ${step}: expected ${mode}`);
    if (!reduced) pg.averageGradients(params);
    const t2 = performance.now();
    torch.tidy(() => model.zeroGrad());
    // The first steps of each mode warm up (allocations, the buckets' rebuild).
    if (step >= 4) {
      times[mode].step.push(t2 - t0);
      times[mode].backward.push(t1 - t0);
      times[mode].after.push(t2 - t1);
    }
  }
  const median = (xs: number[]) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1);
  const summary = (t: Times) => ({ stepMs: median(t.step), forwardBackwardMs: median(t.backward), averagingAfterMs: median(t.after), steps: t.step.length });
  process.stdout.write(
    JSON.stringify({ params: model.numParameters(), buckets: reducer.stats().bucketBytes.length, overlap: summary(times.overlap), after: summary(times.after) }) + "\n",
  );
  reducer.destroy();
  pg.destroy();
}

async function trainSteps(dp: DataParallel | null): Promise<void> {
  const config: TrainConfig = {
    ...DEFAULT_TRAIN_CONFIG,
    nLayer: 2,
    nHead: 2,
    nEmbd: 32,
    seqLen: 32,
    batchSize: 4,
    evalEvery: 0,
    checkpointEvery: 0,
    warmup: 2,
    lr: 3e-3,
    ...job.config,
    steps: job.steps,
    gradAccum: job.gradAccum,
  };
  const trainer = await Trainer.create({ runDir: job.out!, config, progress: { quiet: true }, ...(dp ? { parallel: dp } : {}) });
  try {
    const result = await trainer.run();
    process.stdout.write(JSON.stringify({ losses: result.losses, stats: dp?.overlapStats() ?? null }) + "\n");
  } finally {
    trainer.close();
    dp?.destroy();
  }
}

try {
  if (job.mode === "bench") benchSteps();
  else if (job.mode === "train") await trainSteps(join());
  else gradientSteps(join());
} catch (e) {
  process.stderr.write(`rank ${job.rank}: ${(e as Error).message.split("\n")[0]}\n`);
  process.exit(1);
}
