// Data-parallel training on c10d (Gloo, 2 processes on this machine): gradients averaged while
// the backward pass runs (c10d's Reducer) equal the gradients of one process with the whole
// global batch, with gradient accumulation (only the last micro-step reduces) and GPT-2's tied
// embedding; the trainer takes the overlapped path; a dead or stuck rank makes the other fail
// with a clear error instead of hanging. Ranks run test/helpers/ddp-worker.ts.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const WORKER = path.join(ROOT, "test/helpers/ddp-worker.ts");

interface Rank {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function startRank(job: Record<string, unknown>, timeoutMs = 90_000): { child: ChildProcess; done: Promise<Rank> } {
  const t0 = Date.now();
  const child = spawn(process.execPath, ["--import", "tsx", WORKER, JSON.stringify(job)], {
    cwd: ROOT,
    env: { ...process.env, OMP_NUM_THREADS: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const done = new Promise<Rank>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`rank ${String(job.rank)} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
  return { child, done };
}

/** Runs every rank of `job` (worldSize of them) and returns their results by rank. */
async function runRanks(job: Record<string, unknown>, worldSize: number): Promise<Rank[]> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const ranks = Array.from({ length: worldSize }, (_, rank) => startRank({ ...job, rank, worldSize, port }));
  return Promise.all(ranks.map((r) => r.done));
}

function output(r: Rank): any {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

function readFloats(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

describe("data-parallel training (Gloo, 2 processes)", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-dist-"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("overlapped averaging with gradient accumulation and a tied embedding gives one process's gradients", async () => {
    // 3 steps of 3 micro-batches; small buckets so that several are reduced during backward.
    const job = { mode: "grads", steps: 3, gradAccum: 3, globalBatch: 8, dp: { bucketBytes: 64 * 1024, firstBucketBytes: 16 * 1024 } };
    const oneDir = path.join(tmp, "g1");
    const twoDir = path.join(tmp, "g2");
    fs.mkdirSync(oneDir);
    fs.mkdirSync(twoDir);
    const [one] = await runRanks({ ...job, out: oneDir }, 1);
    const two = await runRanks({ ...job, out: twoDir }, 2);
    const ref = output(one!);
    const r0 = output(two[0]!);
    output(two[1]!);
    // The first step counts the backward passes and averages after them; the next two reduce
    // during their third pass (the first two only accumulate), in more than one bucket.
    expect(r0.stats).toMatchObject({ stepsReduced: 2, stepsNotReduced: 1, backwardsPerStep: 3 });
    expect(r0.stats.bucketBytes.length).toBeGreaterThan(2);
    // GPT-2's output layer is the token embedding: listed once, its gradient has both uses.
    expect(ref.names.filter((n: string) => n.includes("wte"))).toEqual(["transformer.wte.weight"]);
    expect(ref.names).not.toContain("lm_head.weight");
    const expected = readFloats(path.join(oneDir, "grads-rank0.bin"));
    const got0 = readFloats(path.join(twoDir, "grads-rank0.bin"));
    const got1 = readFloats(path.join(twoDir, "grads-rank1.bin"));
    expect(got0.length).toBe(expected.length);
    const perStep = expected.length / 3;
    const wteSize = ref.sizes[ref.names.indexOf("transformer.wte.weight")] as number;
    const wteOffset = (ref.sizes as number[]).slice(0, ref.names.indexOf("transformer.wte.weight")).reduce((a, b) => a + b, 0);
    for (let step = 0; step < 3; step++) {
      let maxDiff = 0;
      let maxRef = 0;
      for (let i = step * perStep; i < (step + 1) * perStep; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(got0[i]! - expected[i]!));
        maxRef = Math.max(maxRef, Math.abs(expected[i]!));
        // Both ranks hold the same averaged gradient.
        expect(got1[i]).toBe(got0[i]);
      }
      expect(maxRef).toBeGreaterThan(1e-3);
      expect(maxDiff, `step ${step + 1}`).toBeLessThan(1e-6);
      // The tied embedding's gradient on its own.
      let wteDiff = 0;
      for (let i = step * perStep + wteOffset; i < step * perStep + wteOffset + wteSize; i++) wteDiff = Math.max(wteDiff, Math.abs(got0[i]! - expected[i]!));
      expect(wteDiff).toBeLessThan(1e-6);
    }
  });

  it("the trainer averages during backward and follows one process's loss curve", async () => {
    const job = { mode: "train", steps: 8, gradAccum: 2, config: { batchSize: 4 } };
    const [one] = await runRanks({ ...job, out: path.join(tmp, "t1") }, 1);
    const two = await runRanks({ ...job, out: path.join(tmp, "t2") }, 2);
    const a = output(one!);
    const b = output(two[0]!);
    expect(output(two[1]!).losses).toEqual(b.losses);
    expect(b.losses).toHaveLength(8);
    (b.losses as number[]).forEach((l, i) => expect(Math.abs(l - a.losses[i])).toBeLessThan(1e-3));
    // The trainer announces its passes per step, so every step reduced in its last backward pass.
    expect(b.stats).toMatchObject({ stepsReduced: 8, stepsNotReduced: 0, backwardsPerStep: 2 });
  });

  it("a rank that dies makes the other exit with an error instead of hanging", async () => {
    const [r0, r1] = await runRanks({ mode: "fail", failure: "die", failAt: 3, steps: 5, gradAccum: 1, timeoutMs: 60_000 }, 2);
    expect(r1!.signal).toBe("SIGKILL");
    expect(r0!.code).toBe(1);
    // Gloo notices the closed connection at once; far below the 60 s timeout.
    expect(r0!.ms).toBeLessThan(45_000);
    expect(r0!.stderr).toMatch(/^rank 0: .*(Connection closed by peer|Connection reset by peer|remote worker)/m);
  });

  it("a rank that stops answering makes the other fail after the process group's timeout", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const job = { mode: "fail", failure: "stall", failAt: 2, steps: 4, gradAccum: 1, timeoutMs: 4000, port, worldSize: 2 };
    const stuck = startRank({ ...job, rank: 1 });
    const r0 = await startRank({ ...job, rank: 0 }).done;
    stuck.child.kill("SIGKILL");
    await stuck.done;
    expect(r0.code).toBe(1);
    expect(r0.stderr).toMatch(/^rank 0: .*[Tt]imed out/m);
    // The 4 s timeout plus start-up (tsx, libtorch): well below the test's own limit.
    expect(r0.ms).toBeLessThan(45_000);
  });

  it("refuses a step whose backward passes outnumber the reducing one, and bad reducer arguments", () => {
    expect(torch.distributed.hasGradientReducer()).toBe(true);
    // A one-rank group needs no peers: the Reducer's bookkeeping runs all the same.
    const pg = torch.distributed.initProcessGroup({ backend: "gloo", rank: 0, worldSize: 1, masterPort: 20000 + Math.floor(Math.random() * 20000) });
    const w = torch.randn([4, 3], { requiresGrad: true });
    const b = torch.zeros([3], { requiresGrad: true });
    try {
      expect(() => pg.gradientReducer([w, w])).toThrow(/listed twice/);
      expect(() => pg.gradientReducer([w.detach()])).toThrow(/leaf tensor that requires grad/);
      const r = pg.gradientReducer([w, b], { names: ["w", "b"], backwardsPerStep: 1 });
      const step = (useB: boolean) =>
        torch.tidy(() => {
          const x = torch.ones([2, 4]);
          (useB ? x.matmul(w).add(b) : x.matmul(w)).sum().backward();
        });
      step(true);
      expect(r.finish()).toEqual({ reduced: true, backwards: 1 });
      // With one rank the mean is the gradient itself: x = ones -> dL/dw = 2 everywhere.
      expect(w.grad!.toArray()).toEqual([[2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]);
      w.grad!.zero_();
      step(true);
      step(true);
      expect(() => r.finish()).toThrow(/averaged over ranks in backward pass 1 of this step, but 2 passes ran/);
      expect(() => r.setBackwardsPerStep(-1)).toThrow(RangeError);
      r.setBackwardsPerStep(0);
      step(false);
      expect(r.finish()).toEqual({ reduced: false, backwards: 1 });
      expect(r.stats()).toMatchObject({ stepsReduced: 1, stepsNotReduced: 1, backwardsPerStep: 0 });
      // A parameter outside the loss of the reducing pass is named.
      r.setBackwardsPerStep(1);
      step(false);
      expect(() => r.finish()).toThrow(/1 parameter got no gradient in the backward pass that averages them \(b\)/);
      r.destroy();
      expect(() => r.finish()).toThrow(/destroyed/);
    } finally {
      pg.destroy();
    }
  });
});

describe("NCCL process groups", () => {
  // Where this build has no NCCL (a CPU libtorch), asking for it says so; where it has NCCL but no
  // GPU is visible (scripts/check-cuda-build.sh runs this file with a CUDA build on a CPU-only
  // machine), libtorch's refusal comes through as a TorchError. Neither hangs or crashes.
  it("is refused with a clear error where it cannot run", async () => {
    const d = await import("../lib/torch/distributed.js");
    const port = 20000 + Math.floor(Math.random() * 20000);
    const init = () => d.initProcessGroup({ backend: "nccl", rank: 0, worldSize: 1, masterAddr: "127.0.0.1", masterPort: port, timeoutMs: 5000 });
    if (!d.hasNccl()) expect(init).toThrow(/this build of innerloop has no NCCL support/);
    else if (!torch.cuda.isAvailable()) expect(init).toThrow(/NCCL.*(GPU|CUDA)/);
    else {
      // With a GPU: a one-process group forms and all-reduces on the device.
      const g = init();
      const t = torch.ones([4], { device: "cuda" });
      g.allReduce([t]);
      expect(t.cpu().toArray()).toEqual([1, 1, 1, 1]);
      g.destroy();
    }
  });
});
