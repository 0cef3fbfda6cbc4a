// CUDA graphs: the capturable AdamW (step counts and learning rate on the device) is the same
// optimizer as the plain one; what needs no GPU (refusals with clear errors, the configuration
// and flags) runs everywhere; capture, replay and a captured training step against the eager one
// run where CUDA is available.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import { torch, TorchError, type Tensor } from "../lib/torch/index.js";
import { AdamW, weightDecayGroups } from "../lib/optim/index.js";
import { GPT2 } from "../lib/models/index.js";
import { GraphedTrainStep } from "../lib/train/graph-step.js";
import { Trainer } from "../lib/train/trainer.js";
import { configProblems, resolveConfig, type TrainConfig } from "../lib/train/config.js";
import { hasCuda } from "./helpers/devices.js";

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-graph-"));
  torch.setNumThreads(1);
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Two copies of the same small parameter set on `device`. */
function twinParams(device: "cpu" | "cuda"): [Tensor[], Tensor[]] {
  torch.manualSeed(7);
  const a = [torch.randn([6, 5]), torch.randn([5]), torch.randn([5, 3])].map((t) => torch.keep(t.to({ device }).requiresGrad_(true)));
  const b = a.map((t) => torch.keep(t.detach().clone().requiresGrad_(true)));
  return [a, b];
}

/** One step of a fixed loss on `ps`; the learning rate changes every step, as a schedule does. */
function stepOnce(ps: Tensor[], opt: AdamW, k: number): void {
  opt.setLr(0.01 * (1 + (k % 3)));
  torch.tidy(() => ps[0]!.matmul(ps[2]!).add(ps[1]!.sum()).pow(2).sum().backward());
  opt.step();
  opt.zeroGrad();
}

function maxDiff(a: Tensor[], b: Tensor[]): number {
  return Math.max(...a.map((t, i) => torch.tidy(() => t.sub(b[i]!).abs().max().item() as number)));
}

describe("capturable AdamW", () => {
  it("gives bitwise the same parameters and step counts as the plain fused AdamW on the CPU", () => {
    const [a, b] = twinParams("cpu");
    const plain = new AdamW(weightDecayGroups(a, 0.1), { beta2: 0.95 });
    const cap = new AdamW(weightDecayGroups(b, 0.1), { beta2: 0.95, capturable: true });
    expect(cap.capturable).toBe(true);
    for (let k = 0; k < 7; k++) {
      stepOnce(a, plain, k);
      stepOnce(b, cap, k);
    }
    expect(maxDiff(a, b)).toBe(0);
    // The counts live on the device in capturable mode; the state dict reads them back.
    expect(cap.stateDict().meta.steps).toEqual(plain.stateDict().meta.steps);
    expect(Object.values(cap.stateDict().meta.steps)).toEqual([7, 7, 7]);
  });

  it("resumes from a state dict exactly, in either direction between the two modes", () => {
    const [a, b] = twinParams("cpu");
    const straight = new AdamW(a, { capturable: true });
    for (let k = 0; k < 6; k++) stepOnce(a, straight, k);
    const first = new AdamW(b, { capturable: true });
    for (let k = 0; k < 3; k++) stepOnce(b, first, k);
    const sd = first.stateDict();
    // Loading writes new step tensors: the counts continue from 3.
    const plain = new AdamW(b);
    plain.loadStateDict(sd);
    stepOnce(b, plain, 3);
    const again = new AdamW(b, { capturable: true });
    again.loadStateDict(plain.stateDict());
    for (let k = 4; k < 6; k++) stepOnce(b, again, k);
    expect(maxDiff(a, b)).toBe(0);
    expect(again.stateDict().meta.steps).toEqual({ 0: 6, 1: 6, 2: 6 });
  });

  it("while a captured step holds it, what would move its state under the graph throws", () => {
    const [a] = twinParams("cpu");
    const opt = new AdamW(a, { capturable: true });
    stepOnce(a, opt, 0);
    const sd = opt.stateDict();
    opt.capturedBy({});
    expect(() => opt.zeroGrad()).toThrow(/captured in a CUDA graph/);
    expect(() => opt.loadStateDict(sd)).toThrow(/captured in a CUDA graph/);
    expect(() => opt.dispose()).toThrow(/captured in a CUDA graph/);
    expect(opt.stateDict().meta.steps).toEqual(sd.meta.steps); // reading is fine
    opt.capturedBy(null);
    opt.loadStateDict(sd);
    opt.dispose();
  });

  it("refuses what it cannot do, with errors that say why", () => {
    const [a] = twinParams("cpu");
    expect(() => new AdamW(a, { capturable: true, foreach: false })).toThrow(/capturable needs the fused native kernel/);
    expect(() => new AdamW(a, { capturable: "yes" as never })).toThrow(TypeError);
    expect(new AdamW(a).capturable).toBe(false);
  });
});

describe("without a GPU", () => {
  it.skipIf(hasCuda())("a CUDA graph is refused with an error naming what is missing, and nothing is capturing", () => {
    expect(() => new torch.cuda.CudaGraph()).toThrow(TorchError);
    expect(() => new torch.cuda.CudaGraph()).toThrow(/CUDA graphs need a CUDA device/);
    expect(torch.cuda.isCapturing()).toBe(false);
  });

  it("a captured training step needs CUDA parameters and a capturable optimizer", () => {
    const model = new GPT2({ vocabSize: 32, nPositions: 8, nEmbd: 16, nLayer: 1, nHead: 2 });
    try {
      const params = model.parameters();
      const forwardLoss = (x: Tensor, y: Tensor) => model.forward(x, { targets: y }).loss!;
      expect(() => new GraphedTrainStep({ params, optimizer: new AdamW(params), forwardLoss, gradAccum: 1, gradClip: 1 })).toThrow(/must be capturable/);
      const optimizer = new AdamW(params, { capturable: true });
      expect(() => new GraphedTrainStep({ params, optimizer, forwardLoss, gradAccum: 1, gradClip: 1 })).toThrow(/parameters on a CUDA device \(they are on cpu\)/);
      expect(() => new GraphedTrainStep({ params, optimizer, forwardLoss, gradAccum: 0, gradClip: 1 })).toThrow(RangeError);
      expect(() => new GraphedTrainStep({ params, optimizer, forwardLoss, gradAccum: 1, gradClip: 1, warmup: 0 })).toThrow(/warmup must be an integer >= 1/);
    } finally {
      model.dispose();
    }
  });

  it("the training configuration checks cudaGraph", () => {
    const base = resolveConfig({}, "tiny");
    expect(configProblems({ ...base, cudaGraph: true })).toEqual(["cuda-graph needs a CUDA device (device is cpu)"]);
    expect(configProblems({ ...base, cudaGraph: "on" as never })[0]).toBe('cudaGraph must be true or false (got "on")');
    expect(configProblems({ ...base, device: "cuda", cudaGraph: true })).toEqual([]);
    // Configurations saved before the field existed stay valid.
    const { cudaGraph: _none, ...old } = { ...base, cudaGraph: false };
    expect(configProblems(old as TrainConfig)).toEqual([]);
  });

  it("the command line refuses --cuda-graph where it cannot apply: one line, exit status 2", async () => {
    const { main } = await import("../lib/cli/main.js");
    const run = async (args: string[]) => {
      const chunks: string[] = [];
      const sink = () => new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
      const code = await main(args, { stdout: sink(), stderr: sink() });
      return { code, text: chunks.join("").trim() };
    };
    const cpu = await run(["train", "--cuda-graph", "--device", "cpu", "--out", path.join(tmp, "never")]);
    expect(cpu.code).toBe(2);
    expect(cpu.text).toBe("innerloop train: cuda-graph needs a CUDA device (device is cpu) (see innerloop train --help)");
    const ddp = await run(["train", "--cuda-graph", "--device", "cuda", "--nproc", "2", "--out", path.join(tmp, "never2")]);
    expect(ddp.code).toBe(2);
    expect(ddp.text).toMatch(/--cuda-graph trains in one process/);
    const bench = await run(["bench", "--cuda-graph", "--device", "cpu"]);
    expect(bench.code).toBe(2);
    expect(bench.text).toMatch(/--cuda-graph needs --device cuda/);
    expect(fs.existsSync(path.join(tmp, "never"))).toBe(false);
  });
});

describe.skipIf(!hasCuda())("CUDA graphs on the GPU", () => {
  it("replays captured work on new inputs copied into the captured ones", () => {
    const x = torch.keep(torch.zeros([4, 4], { device: "cuda" }));
    const w = torch.keep(torch.randn([4, 4], { device: "cuda" }));
    x.copy_(torch.randn([4, 4]).to({ device: "cuda" }));
    torch.tidy(() => x.matmul(w).relu()); // eager once first, as the rules ask
    const g = new torch.cuda.CudaGraph();
    const y = torch.keep(g.capture(() => torch.tidy(() => x.matmul(w).relu().mul(2).add(1))));
    expect(g.captured).toBe(true);
    for (let k = 0; k < 3; k++) {
      const fresh = torch.randn([4, 4]);
      x.copy_(fresh.to({ device: "cuda" }));
      g.replay();
      const want = torch.tidy(() => fresh.to({ device: "cuda" }).matmul(w).relu().mul(2).add(1));
      expect(torch.tidy(() => y.sub(want).abs().max().item() as number)).toBeLessThan(1e-5);
    }
    g.dispose();
    expect(() => g.replay()).toThrow(/disposed/);
  });

  it("a capture that waits for the device throws, and the graph and the device stay usable", () => {
    const x = torch.keep(torch.ones([3], { device: "cuda" }));
    const g = new torch.cuda.CudaGraph();
    expect(() => g.capture(() => x.sum().item())).toThrow(Error);
    expect(g.captured).toBe(false);
    expect(torch.cuda.isCapturing()).toBe(false);
    expect(torch.tidy(() => x.add(1).sum().item())).toBe(6);
    const y = torch.keep(g.capture(() => x.mul(3)));
    g.replay();
    expect(torch.tidy(() => y.sum().item())).toBe(9);
    g.dispose();
  });

  it("a captured GPT-2 training step follows the eager one: losses, gradient norms and weights", () => {
    const make = () => {
      const model = new GPT2({ vocabSize: 64, nPositions: 16, nEmbd: 32, nLayer: 2, nHead: 4 }, { seed: 3 });
      model.to({ device: "cuda" });
      model.train();
      return model;
    };
    torch.manualSeed(11);
    const batches = Array.from({ length: 8 }, () =>
      torch.keep({ inputs: torch.randint(0, 64, [4, 16]).to({ device: "cuda" }), targets: torch.randint(0, 64, [4, 16]).to({ device: "cuda" }) }),
    );
    const runs = [false, true].map((graphed) => {
      const model = make();
      const params = model.parameters();
      const optimizer = new AdamW(weightDecayGroups(params, 0.1), { lr: 1e-3, beta2: 0.95, capturable: graphed });
      const forwardLoss = (x: Tensor, y: Tensor) => model.forward(x, { targets: y }).loss!;
      const losses: number[] = [];
      const norms: number[] = [];
      const step = graphed ? new GraphedTrainStep({ params, optimizer, forwardLoss, gradAccum: 2, gradClip: 1, warmup: 2 }) : null;
      for (let k = 0; k < 4; k++) {
        optimizer.setLr(1e-3 * (k + 1)); // the schedule's rate reaches the replays
        const micro = [batches[2 * k]!, batches[2 * k + 1]!];
        if (step) {
          const out = step.run(micro);
          losses.push((out.lossSum.item() as number) / 2);
          norms.push(out.gradNorm.item() as number);
        } else {
          torch.tidy(() => optimizer.zeroGrad());
          let sum = 0;
          for (const b of micro) sum += torch.tidy(() => { const l = forwardLoss(b.inputs, b.targets); l.div(2).backward(); return l.item() as number; });
          losses.push(sum / 2);
          norms.push(torch.tidy(() => torch.clipGradNorm(params, 1).item() as number));
          optimizer.step();
        }
      }
      expect(step?.captured ?? true).toBe(true);
      const weights = params.map((p) => torch.keep(p.detach().to({ device: "cpu" })));
      step?.dispose();
      model.dispose();
      return { losses, norms, weights };
    });
    const [eager, graphed] = runs;
    for (let k = 0; k < 4; k++) {
      expect(Math.abs(graphed!.losses[k]! - eager!.losses[k]!)).toBeLessThan(1e-4);
      expect(Math.abs(graphed!.norms[k]! - eager!.norms[k]!)).toBeLessThan(1e-3 * Math.max(1, eager!.norms[k]!));
    }
    expect(maxDiff(graphed!.weights, eager!.weights)).toBeLessThan(1e-4);
  });

  it("innerloop train with cudaGraph: the same losses as an eager run, and an exact checkpoint to resume from", async () => {
    const cfg = (over: Partial<TrainConfig>) => resolveConfig({ evalEvery: 0, checkpointEvery: 0, device: "cuda", steps: 8, batchSize: 4, seqLen: 32, ...over }, "tiny");
    const eager = await Trainer.create({ runDir: path.join(tmp, "eager"), config: cfg({}), progress: { quiet: true } });
    const a = await eager.run();
    eager.close();
    const graphed = await Trainer.create({ runDir: path.join(tmp, "graphed"), config: cfg({ cudaGraph: true, steps: 5 }), progress: { quiet: true } });
    const b1 = await graphed.run();
    graphed.close();
    // Resumed (a new capture after three eager steps) to the same total.
    const resumed = await Trainer.create({ runDir: path.join(tmp, "graphed"), resume: true, overrides: { steps: 8 }, progress: { quiet: true } });
    const b2 = await resumed.run();
    resumed.close();
    const b = [...b1.losses, ...b2.losses];
    expect(b).toHaveLength(8);
    b.forEach((l, k) => expect(Math.abs(l - a.losses[k]!)).toBeLessThan(2e-4));
  });
});
