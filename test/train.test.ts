// Training: loss goes down, metrics rows, exact resume, checkpoints as one unit, Hugging Face
// transformers loading a run directory with the same loss, plugins, non-finite loss, flat memory.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";
import { Trainer, NonFiniteLossError } from "../lib/train/trainer.js";
import { resolveConfig, type TrainConfig } from "../lib/train/config.js";
import { readMetrics, type StepRow, type EvalRow } from "../lib/train/metrics.js";
import { commitCheckpoint, hasCheckpoint, recoverRunDir } from "../lib/train/checkpoint.js";
import { readTrainerState } from "../lib/train/state.js";
import { loadGPT2 } from "../lib/models/index.js";
import type { TrainerPlugin } from "../lib/train/plugins.js";
import { Progress } from "../lib/train/progress.js";
import { Writable } from "node:stream";
import v8 from "node:v8";
import vm from "node:vm";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

/** Collects garbage and lets Node run the finalizers it queued (they run from the event loop). */
async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const ROOT = path.resolve(import.meta.dirname, "..");
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-train-"));
  // Test files run in parallel processes on few cores: one intra-op thread each avoids the
  // oversubscription that makes OpenMP thread pools wait on each other (10x slower steps).
  torch.setNumThreads(1);
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The 2-layer, 64-wide char model of the tests, with small batches. */
function tiny(over: Partial<TrainConfig> = {}): TrainConfig {
  return resolveConfig({ evalEvery: 0, checkpointEvery: 0, ...over }, "tiny");
}

const quiet = { quiet: true };
const stepRows = (dir: string) => readMetrics(path.join(dir, "metrics.jsonl")).filter((r): r is StepRow => "loss" in r);
const evalRows = (dir: string) => readMetrics(path.join(dir, "metrics.jsonl")).filter((r): r is EvalRow => "valLoss" in r);

describe("a 2-layer, 64-wide char model on moby-dick", () => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(tmp, "learn");
    const trainer = await Trainer.create({ runDir: dir, config: tiny({ steps: 150, batchSize: 8, seqLen: 32, evalEvery: 50, evalBatches: 4 }), progress: quiet });
    await trainer.run();
  });

  it("loses at least 1 nat of training loss in 150 steps", () => {
    const rows = stepRows(dir);
    expect(rows.map((r) => r.step)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    const first = rows[0]!.loss;
    const last10 = rows.slice(-10).reduce((s, r) => s + r.loss, 0) / 10;
    // Uniform over a vocabulary of ~80 characters is ln 80 = 4.4 nats.
    expect(first).toBeGreaterThan(3.5);
    expect(first - last10).toBeGreaterThanOrEqual(1);
  });

  it("writes step rows { step, loss, lr, stepMs, tokensPerSec, gradNorm } and eval rows { step, valLoss }", () => {
    for (const r of stepRows(dir)) {
      expect(Object.keys(r).sort()).toEqual(["gradNorm", "loss", "lr", "step", "stepMs", "tokensPerSec"]);
      expect(r.stepMs).toBeGreaterThan(0);
      expect(r.tokensPerSec).toBeCloseTo((8 * 32) / (r.stepMs / 1000), 3);
      expect(Number.isFinite(r.gradNorm) && r.gradNorm > 0).toBe(true);
    }
    const rows = stepRows(dir);
    // Warmup (20 steps) then cosine from 3e-3 to 3e-4.
    expect(rows[0]!.lr).toBeCloseTo(3e-3 / 21, 12);
    expect(rows[20]!.lr).toBeCloseTo(3e-3, 12);
    expect(rows[149]!.lr).toBeLessThan(3.1e-4);
    const evals = evalRows(dir);
    expect(evals.map((r) => r.step)).toEqual([50, 100, 150]);
    expect(evals[2]!.valLoss).toBeLessThan(evals[0]!.valLoss);
  });

  it("leaves a checkpoint: config.json with GPT-2 fields, tokenizer and training settings; trainer state", () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    expect(cfg).toMatchObject({ model_type: "gpt2", n_layer: 2, n_embd: 64, n_head: 2, n_positions: 32 });
    expect(cfg.innerloop.tokenizer.kind).toBe("char");
    expect(cfg.vocab_size).toBe(cfg.innerloop.tokenizer.vocab.length);
    expect(cfg.innerloop.training).toMatchObject({ nLayer: 2, nEmbd: 64, steps: 150, data: "moby-dick" });
    const state = readTrainerState(dir);
    expect(state.step).toBe(150);
    expect(hasCheckpoint(dir)).toBe(true);
    for (const f of ["model.safetensors", "optimizer.safetensors", "trainer_state.json"]) expect(fs.existsSync(path.join(dir, f))).toBe(true);
  });

  it("loads in Hugging Face transformers and gives the same loss as innerloop on the same ids", () => {
    // Windows of T+1 ids from the validation part of the corpus, through the run's tokenizer.
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    const vocab: string[] = cfg.innerloop.tokenizer.vocab;
    const text = "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse";
    const ids = [...text].map((ch) => vocab.indexOf(ch));
    expect(ids.every((i) => i >= 0)).toBe(true);
    const windows = [ids.slice(0, 33), ids.slice(40, 73)];
    const idsFile = path.join(tmp, "ids.json");
    fs.writeFileSync(idsFile, JSON.stringify(windows));
    const out = execFileSync("python3", [path.join(ROOT, "scripts/ref/hf_load_check.py"), dir, idsFile], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const hf = JSON.parse(out.trim().split("\n").at(-1)!);
    expect(hf.model_type).toBe("gpt2");
    expect(hf.missing_keys).toEqual([]);
    expect(hf.unexpected_keys).toEqual([]);

    const model = loadGPT2(dir);
    model.eval();
    const ours = torch.tidy(() =>
      torch.noGrad(() => {
        const t = torch.tensor(windows, { dtype: "int64" });
        const { loss, logits } = model.forward(t.narrow(1, 0, 32), { targets: t.narrow(1, 1, 32) });
        return { loss: loss!.item() as number, first: (logits.narrow(0, 0, 1).narrow(1, 0, 1).flatten().toArray() as number[]).slice(0, 8) };
      }),
    );
    model.dispose();
    expect(Math.abs(ours.loss - hf.loss)).toBeLessThan(1e-5 * Math.max(1, hf.loss));
    ours.first.forEach((v, i) => expect(v).toBeCloseTo(hf.first_logits[i], 4));
  }, 120_000);
});

describe("resume", () => {
  it("continues exactly: 20 steps straight equal 10 steps + resume for 10 (dropout and grad accumulation on)", async () => {
    const config = tiny({ steps: 20, dropout: 0.1, gradAccum: 2, batchSize: 4, seqLen: 32, evalEvery: 5, evalBatches: 2 });
    const straight = path.join(tmp, "straight");
    const a = await (await Trainer.create({ runDir: straight, config, progress: quiet })).run();
    expect(a.reason).toBe("finished");
    expect(a.losses).toHaveLength(20);

    const split = path.join(tmp, "split");
    const b1 = await (await Trainer.create({ runDir: split, config, progress: quiet, stopAtStep: 10 })).run();
    expect(b1.reason).toBe("interrupted");
    expect(b1.step).toBe(10);
    expect(readTrainerState(split).step).toBe(10);
    // Whatever the process did in between must not matter.
    torch.manualSeed(999);
    torch.rand([100]).dispose();
    const resumed = await Trainer.create({ runDir: split, resume: true, progress: quiet });
    expect(resumed.step).toBe(10);
    const b2 = await resumed.run();
    expect(b2.step).toBe(20);

    const joined = [...b1.losses, ...b2.losses];
    joined.forEach((l, i) => expect(Math.abs(l - a.losses[i]!)).toBeLessThanOrEqual(1e-6));
    // metrics.jsonl of the resumed run reads as one run, and equals the straight run's.
    const sa = stepRows(straight);
    const sb = stepRows(split);
    expect(sb.map((r) => r.step)).toEqual(sa.map((r) => r.step));
    sb.forEach((r, i) => {
      expect(Math.abs(r.loss - sa[i]!.loss)).toBeLessThanOrEqual(1e-6);
      expect(r.lr).toBe(sa[i]!.lr);
      expect(Math.abs(r.gradNorm - sa[i]!.gradNorm)).toBeLessThanOrEqual(1e-5 * sa[i]!.gradNorm);
    });
    expect(evalRows(split).map((r) => r.valLoss)).toEqual(evalRows(straight).map((r) => r.valLoss));
  });

  it("drops metrics rows written after the checkpoint it resumes from", async () => {
    const dir = path.join(tmp, "rows");
    await (await Trainer.create({ runDir: dir, config: tiny({ steps: 8, batchSize: 2, seqLen: 16 }), progress: quiet, stopAtStep: 4 })).run();
    // As if the process had logged steps 5 and 6 and then died before its next checkpoint.
    fs.appendFileSync(path.join(dir, "metrics.jsonl"), JSON.stringify({ step: 5, loss: 9, lr: 0, stepMs: 1, tokensPerSec: 1, gradNorm: 1 }) + '\n{"step": 6, "lo');
    const t = await Trainer.create({ runDir: dir, resume: true, progress: quiet });
    await t.run();
    const steps = stepRows(dir).map((r) => r.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(stepRows(dir)[4]!.loss).not.toBe(9);
  });

  it("refuses to resume when the total steps would be below the step reached, and a folder without a checkpoint", async () => {
    const dir = path.join(tmp, "rows");
    await expect(Trainer.create({ runDir: dir, resume: true, overrides: { steps: 3 }, progress: quiet })).rejects.toThrow(/steps \(3\).*\(8\)/);
    // A new run never overwrites an existing one.
    await expect(Trainer.create({ runDir: dir, config: tiny({ steps: 2 }), progress: quiet })).rejects.toThrow(/already holds a run/);
    // A hand-edited trainer state is checked field by field.
    const edited = path.join(tmp, "edited");
    fs.cpSync(dir, edited, { recursive: true });
    const stateFile = path.join(edited, "trainer_state.json");
    const st = JSON.parse(fs.readFileSync(stateFile, "utf8"));
    st.config.nLayer = "two";
    fs.writeFileSync(stateFile, JSON.stringify(st));
    await expect(Trainer.create({ runDir: edited, resume: true, progress: quiet })).rejects.toThrow(/trainer_state\.json: config\.nLayer must be an integer >= 1 \(got "two"\)/);
    const empty = path.join(tmp, "empty");
    fs.mkdirSync(empty);
    await expect(Trainer.create({ runDir: empty, resume: true, progress: quiet })).rejects.toThrow(/no complete checkpoint/);
  });
});

describe("checkpoints are committed as one unit", () => {
  const write = (dir: string, tag: string) =>
    commitCheckpoint(dir, (d) => {
      for (const f of ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"]) fs.writeFileSync(path.join(d, f), tag);
    });
  const read = (dir: string) => ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"].map((f) => fs.readFileSync(path.join(dir, f), "utf8"));

  it("an interrupted commit after COMMIT is rolled forward; before it, rolled back", () => {
    const dir = path.join(tmp, "unit");
    write(dir, "old");
    fs.writeFileSync(path.join(dir, "metrics.jsonl"), "keep\n");
    // Killed after COMMIT was written and two files were renamed.
    const pending = path.join(dir, ".checkpoint-pending");
    fs.mkdirSync(pending);
    for (const f of ["optimizer.safetensors", "trainer_state.json"]) fs.writeFileSync(path.join(pending, f), "new");
    fs.writeFileSync(path.join(dir, "config.json"), "new");
    fs.writeFileSync(path.join(dir, "model.safetensors"), "new");
    fs.writeFileSync(path.join(pending, "COMMIT"), JSON.stringify({ files: ["config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"] }));
    recoverRunDir(dir);
    expect(read(dir)).toEqual(["new", "new", "new", "new"]);
    expect(fs.existsSync(pending)).toBe(false);
    // Killed while writing the pending files (no COMMIT): the previous checkpoint stays.
    fs.mkdirSync(pending);
    fs.writeFileSync(path.join(pending, "model.safetensors"), "partial");
    expect(hasCheckpoint(dir)).toBe(true);
    expect(read(dir)).toEqual(["new", "new", "new", "new"]);
    expect(fs.existsSync(pending)).toBe(false);
    expect(fs.readFileSync(path.join(dir, "metrics.jsonl"), "utf8")).toBe("keep\n");
  });

  it("a failing writer leaves the previous checkpoint untouched", () => {
    const dir = path.join(tmp, "unit2");
    write(dir, "v1");
    expect(() =>
      commitCheckpoint(dir, (d) => {
        fs.writeFileSync(path.join(d, "model.safetensors"), "half");
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(read(dir)).toEqual(["v1", "v1", "v1", "v1"]);
    expect(fs.existsSync(path.join(dir, ".checkpoint-pending"))).toBe(false);
  });
});

describe("trainer plugins and failure handling", () => {
  it("calls plugins at setup, every step, eval, checkpoint and teardown; memory stays flat", async () => {
    const calls: string[] = [];
    const live: number[] = [];
    const plugin: TrainerPlugin = {
      name: "probe",
      setup: (ctx) => void calls.push(`setup:${ctx.startStep}`),
      afterStep: (ctx) => {
        calls.push(`step:${ctx.step}`);
        expect(ctx.loss).toBeGreaterThan(0);
        expect(ctx.valTokens).toBeDefined();
        live.push(torch.memory().liveTensors);
      },
      afterEval: (ctx) => void calls.push(`eval:${ctx.step}`),
      onCheckpoint: (ctx) => void calls.push(`ckpt:${ctx.step}`),
      teardown: (ctx) => void calls.push(`end:${ctx.reason}`),
    };
    const dir = path.join(tmp, "plugins");
    // Models of earlier tests that are garbage but not yet collected would otherwise leave the
    // live count whenever the collector happens to run during this one.
    await collectGarbage();
    const t = await Trainer.create({ runDir: dir, config: tiny({ steps: 30, batchSize: 2, seqLen: 16, evalEvery: 10, evalBatches: 1, checkpointEvery: 15 }), progress: quiet });
    await t.addPlugin(plugin).run();
    expect(calls.filter((c) => !c.startsWith("step:"))).toEqual(["setup:0", "eval:10", "ckpt:15", "eval:20", "eval:30", "ckpt:30", "end:finished"]);
    expect(calls.filter((c) => c.startsWith("step:"))).toHaveLength(30);
    // No tensor leaks from step to step.
    expect(live[29]).toBe(live[4]);
  });

  it("a non-finite loss stops the run naming the step and keeps the last good checkpoint", async () => {
    const dir = path.join(tmp, "nan");
    const t = await Trainer.create({ runDir: dir, config: tiny({ steps: 50, batchSize: 2, seqLen: 16, lr: 1e30, minLr: 0, warmup: 0, gradClip: 0 }), progress: quiet });
    const err = await t.run().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NonFiniteLossError);
    const e = err as NonFiniteLossError;
    expect(e.message).toMatch(new RegExp(`at step ${e.step}\\b`));
    expect(e.message).toMatch(/last good checkpoint \(step 0\)/);
    expect(readTrainerState(dir).step).toBe(0);
    expect(stepRows(dir).every((r) => Number.isFinite(r.loss))).toBe(true);
  });
});

describe("devices", () => {
  const devices = ["cpu", ...(torch.cuda.isAvailable() ? ["cuda"] : [])] as const;
  for (const device of devices) {
    for (const dtype of device === "cuda" ? (["float32", "bfloat16"] as const) : (["float32"] as const)) {
      it(`trains on ${device} in ${dtype}`, async () => {
        const dir = path.join(tmp, `dev-${device}-${dtype}`);
        const r = await (await Trainer.create({ runDir: dir, config: tiny({ steps: 20, device, dtype }), progress: quiet })).run();
        expect(r.losses.every(Number.isFinite)).toBe(true);
        expect(r.losses.at(-1)!).toBeLessThan(r.losses[0]!);
      });
    }
  }
});

describe("progress display", () => {
  const sink = () => {
    let text = "";
    const stream = new Writable({
      write(chunk, _e, cb) {
        text += String(chunk);
        cb();
      },
    });
    return { stream, text: () => text };
  };
  const row = (step: number) => ({ step, loss: 2.5, lr: 1e-3, gradNorm: 0.5, stepMs: 10, tokensPerSec: 12345 });

  it("draws a bar with step, loss, tokens/s and ETA on a terminal, redrawn in place", () => {
    const out = sink();
    const p = new Progress({ totalSteps: 4, startStep: 0, stream: out.stream, tty: true });
    p.update(row(1));
    p.eval(1, 2.25);
    p.update(row(4));
    p.done();
    const text = out.text();
    expect(text).toMatch(/\r█{6}░{18} 1\/4 loss 2\.5000 12\.3k tok\/s ETA \S+\x1b\[K/);
    expect(text).toContain("step 1: val loss 2.2500\n");
    expect(text).toMatch(/\r█{24} 4\/4 loss 2\.5000 val 2\.2500 12\.3k tok\/s ETA 0s\x1b\[K\n$/);
  });

  it("prints about 20 plain lines per run otherwise", () => {
    const out = sink();
    const p = new Progress({ totalSteps: 100, startStep: 0, stream: out.stream, tty: false });
    for (let s = 1; s <= 100; s++) p.update(row(s));
    const lines = out.text().trim().split("\n");
    expect(lines).toHaveLength(21); // step 1, then every 5th
    expect(lines[0]).toMatch(/^step 1\/100 loss 2\.5000 lr 1\.00e-3 grad-norm 0\.500 10\.0 ms\/step 12\.3k tok\/s ETA \S+$/);
    expect(lines.at(-1)).toMatch(/^step 100\/100 /);
    expect(out.text()).not.toContain("\r");
  });
});
