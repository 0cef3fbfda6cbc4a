// The Trainer trains any causal LM on data given to it: a model written here (a Module with
// forward(ids, { targets }) -> { logits, loss }), LLaMA; token ids in memory, .bin files of
// vocabularies of 256 and 32,000 (and beyond 65,535 as uint32), an async iterable of batches.
// Checkpoints resume exactly (weights and losses bitwise equal to an uninterrupted run).
import { afterAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch, F, type Tensor } from "../lib/torch/index.js";
import { Embedding, Linear, Module } from "../lib/nn/index.js";
import { GPT2, Llama, llamaConfigFromHF, loadPretrained } from "../lib/models/index.js";
import { writeTokenBin, CharTokenizer } from "../lib/data/index.js";
import { Trainer, type TrainerOptions } from "../lib/train/index.js";

torch.setNumThreads(1);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-trainer-open-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const quiet = { quiet: true };
let n = 0;
const dir = (name: string) => path.join(tmp, `${name}-${n++}`);

/** A user's own causal LM: token embedding, one hidden layer, output layer. */
class TinyLM extends Module {
  readonly emb: Embedding;
  readonly hidden: Linear;
  readonly out: Linear;
  constructor(readonly vocab: number) {
    super();
    this.emb = this.registerModule("emb", new Embedding(vocab, 16));
    this.hidden = this.registerModule("hidden", new Linear(16, 16));
    this.out = this.registerModule("out", new Linear(16, vocab));
  }
  forward(ids: Tensor, opts: { targets: Tensor }): { logits: Tensor; loss: Tensor } {
    const logits = this.out.forward(this.hidden.forward(this.emb.forward(ids)).relu());
    return { logits, loss: F.crossEntropy(logits.flatten(0, 1), opts.targets.flatten()) };
  }
}

/** The model's initial weights come from the caller: the same seed gives the same model. */
function seeded<M>(make: () => M): M {
  torch.manualSeed(7);
  return make();
}

/** A repeating pattern over `vocab` ids: learnable, so the loss must fall. */
function pattern(count: number, vocab: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => (i * 7 + Math.floor(i / 3)) % vocab);
}

const small = { batchSize: 4, seqLen: 8, lr: 1e-2, minLr: 1e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0, seed: 3 };

function bits(model: Module): Buffer[] {
  return model.parameters().map((p) => Buffer.from((p.toTypedArray() as Float32Array).buffer));
}

/** Trains `steps` straight, and `stop` steps + a resume to `steps`; returns both runs' trainers' results. */
async function straightAndResumed(make: () => Omit<TrainerOptions, "runDir">, steps: number, stop: number, resumeWith: (o: Omit<TrainerOptions, "runDir">) => Partial<TrainerOptions>) {
  const a = new Trainer({ ...make(), runDir: dir("straight"), progress: quiet });
  const ra = await a.run();
  const split = dir("split");
  const b1 = new Trainer({ ...make(), runDir: split, progress: quiet, stopAtStep: stop });
  const r1 = await b1.run();
  b1.close();
  const b2 = new Trainer({ ...resumeWith(make()), runDir: split, resume: true, progress: quiet });
  const r2 = await b2.run();
  return { a, ra, b2, losses: [...r1.losses, ...r2.losses] };
}

describe("a model written by the user", () => {
  it("trains on token ids in memory, and resumes exactly from its checkpoint", async () => {
    const vocab = 11;
    const make = () => ({ model: seeded(() => new TinyLM(vocab)), data: pattern(600, vocab), config: { ...small, steps: 12 } });
    const { a, ra, b2, losses } = await straightAndResumed(make, 12, 5, (o) => ({ model: o.model, data: o.data }));
    expect(ra.losses).toHaveLength(12);
    expect(ra.losses.at(-1)!).toBeLessThan(ra.losses[0]! - 0.3);
    expect(losses).toEqual(ra.losses);
    const wa = bits(a.model);
    const wb = bits(b2.model);
    for (let i = 0; i < wa.length; i++) expect(wb[i]!.equals(wa[i]!)).toBe(true);
    // The run directory holds the state dict under the model's own names and a config.json naming the class.
    const config = JSON.parse(fs.readFileSync(path.join(a.runDir, "config.json"), "utf8"));
    expect(config.architectures).toEqual(["TinyLM"]);
    expect(config.innerloop.training.data).toBe("<600 token ids in memory>");
    a.close();
    b2.close();
  });

  it("needs the same model and data again to resume, and says so", async () => {
    const runDir = dir("needs");
    const t = new Trainer({ runDir, model: new TinyLM(5), data: pattern(200, 5), config: { ...small, steps: 2 }, progress: quiet });
    await t.run();
    t.close();
    expect(() => new Trainer({ runDir, resume: true, progress: quiet })).toThrow(/trained on data given to the Trainer .*pass the same data to resume/);
    expect(() => new Trainer({ runDir, resume: true, data: pattern(200, 5), progress: quiet })).toThrow(/TinyLM|cannot rebuild by itself: pass that model/);
  });

  it("refuses token ids outside the vocabulary (config.vocabSize, or the model's config.vocabSize), naming the id and its index", () => {
    const ids = pattern(100, 5);
    ids[42] = 9;
    expect(() => new Trainer({ runDir: dir("bad-ids"), model: new TinyLM(5), data: ids, config: { ...small, vocabSize: 5 }, progress: quiet })).toThrow(/data: token id 9 at index 42 is not an integer in \[0, 5\)/);
    const declared = Object.assign(new TinyLM(5), { config: { vocabSize: 5 } });
    expect(() => new Trainer({ runDir: dir("bad-ids"), model: declared, data: ids, config: small, progress: quiet })).toThrow(/token id 9 at index 42/);
    expect(() => new Trainer({ runDir: dir("bad-ids"), model: declared, data: [1, 2, -1], config: small, progress: quiet })).toThrow(/token id -1 at index 2/);
  });
});

describe(".bin token files of any vocabulary", () => {
  for (const vocab of [256, 32_000]) {
    it(`vocabulary ${vocab}: the GPT-2 made has exactly ${vocab} rows and trains`, async () => {
      const file = path.join(tmp, `v${vocab}.bin`);
      writeTokenBin(file, pattern(2000, vocab));
      const t = new Trainer({
        runDir: dir(`bin${vocab}`), data: file, progress: quiet,
        config: { ...small, steps: 3, vocabSize: vocab, nLayer: 1, nHead: 2, nEmbd: 16, evalEvery: 3 },
      });
      expect(t.model).toBeInstanceOf(GPT2);
      expect((t.model as GPT2).config.vocabSize).toBe(vocab);
      const r = await t.run();
      expect(r.losses).toHaveLength(3);
      expect(Number.isFinite(r.lastValLoss)).toBe(true);
      // An untrained model's loss is about ln(vocab).
      expect(Math.abs(r.losses[0]! - Math.log(vocab))).toBeLessThan(0.5);
      expect(JSON.parse(fs.readFileSync(path.join(t.runDir, "config.json"), "utf8")).vocab_size).toBe(vocab);
      t.close();
    });
  }

  it("ids beyond 65,535 need uint32 files (binDtype), and an id >= vocabSize stops the run naming it", async () => {
    const file = path.join(tmp, "v70000.bin");
    const ids = pattern(400, 70_000).map((v, i) => (i % 5 === 0 ? 69_999 : v));
    writeTokenBin(file, ids, { dtype: "uint32" });
    const cfg = { ...small, steps: 1, vocabSize: 70_000, binDtype: "uint32" as const, nLayer: 1, nHead: 2, nEmbd: 16 };
    const t = new Trainer({ runDir: dir("u32"), data: file, config: cfg, progress: quiet });
    expect((await t.run()).losses).toHaveLength(1);
    t.close();
    const bad = path.join(tmp, "bad.bin");
    writeTokenBin(bad, Int32Array.from({ length: 300 }, (_, i) => (i === 7 ? 300 : i % 256)));
    // Every window of the training split is drawn somewhere; one step reads 4 random windows, so
    // read the whole file at once with a window as long as the training split.
    const tb = new Trainer({ runDir: dir("bad"), data: bad, config: { ...small, seqLen: 269, batchSize: 1, steps: 1, vocabSize: 256, nLayer: 1, nHead: 2, nEmbd: 16 }, progress: quiet });
    await expect(tb.run()).rejects.toThrow(/bad\.bin: token 300 at index 7 is outside the vocabulary \(size 256\)/);
    tb.close();
  });
});

describe("an async iterable of batches", () => {
  const vocab = 13;
  /** The same batches on every call: a deterministic data pipeline. */
  async function* batches(count: number) {
    const ids = pattern(4000, vocab);
    for (let i = 0; i < count; i++) {
      const rows = Array.from({ length: 4 }, (_, r) => ids.subarray((i * 4 + r) * 9, (i * 4 + r) * 9 + 9));
      const w = torch.tensor(Array.from(rows, (row) => Array.from(row)), { dtype: "int64" });
      yield { inputs: w.narrow(1, 0, 8), targets: w.narrow(1, 1, 8) };
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  it("trains, evaluates on valData, and resumes exactly by skipping the batches already used", async () => {
    const make = () => ({ model: seeded(() => new TinyLM(vocab)), data: batches(10), valData: pattern(300, vocab), config: { ...small, steps: 10, evalEvery: 5, evalBatches: 2 } });
    const { a, ra, b2, losses } = await straightAndResumed(make, 10, 4, (o) => ({ model: o.model, data: o.data, valData: o.valData }));
    expect(ra.losses).toHaveLength(10);
    expect(Number.isFinite(ra.lastValLoss)).toBe(true);
    expect(losses).toEqual(ra.losses);
    const wa = bits(a.model);
    bits(b2.model).forEach((w, i) => expect(w.equals(wa[i]!)).toBe(true));
    a.close();
    b2.close();
  });

  it("an iterable that ends early, or yields something else, is a clear error", async () => {
    const short = new Trainer({ runDir: dir("short"), model: new TinyLM(vocab), data: batches(2), config: { ...small, steps: 3 }, progress: quiet });
    await expect(short.run()).rejects.toThrow(/async iterable of batches ended after 2 batches/);
    short.close();
    async function* wrong() {
      yield { inputs: torch.zeros([2, 8], { dtype: "int64" }), targets: torch.zeros([2, 8], { dtype: "int64" }) };
    }
    const t = new Trainer({ runDir: dir("wrong"), model: new TinyLM(vocab), data: wrong(), config: { ...small, steps: 1 }, progress: quiet });
    await expect(t.run()).rejects.toThrow(/shape \[batchSize = 4, T\], got inputs \[2,8\]/);
    t.close();
    expect(() => new Trainer({ runDir: dir("noval"), model: new TinyLM(vocab), data: batches(2), config: { ...small, evalEvery: 1 }, progress: quiet })).toThrow(/give valData/);
  });
});

describe("a LLaMA model", () => {
  const hf = { model_type: "llama", vocab_size: 40, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 };
  it("resumes exactly from a LLaMA checkpoint rebuilt from the run directory", async () => {
    const make = () => {
      torch.manualSeed(5);
      return { model: new Llama(llamaConfigFromHF(hf)) as never, data: pattern(800, 40), tokenizer: CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"), config: { ...small, steps: 8, evalEvery: 4 } };
    };
    // The resumed run is given no model: the LLaMA is rebuilt from config.json (model_type llama).
    const { a, ra, b2, losses } = await straightAndResumed(make, 8, 3, (o) => ({ data: o.data }));
    expect(b2.model).toBeInstanceOf(Llama);
    expect(losses).toEqual(ra.losses);
    const wa = bits(a.model);
    bits(b2.model).forEach((w, i) => expect(w.equals(wa[i]!)).toBe(true));
    // The run directory is a LLaMA checkpoint that loadPretrained (and transformers) reads, with its tokenizer.
    const loaded = loadPretrained(a.runDir);
    expect(loaded).toBeInstanceOf(Llama);
    expect(JSON.parse(fs.readFileSync(path.join(a.runDir, "config.json"), "utf8")).innerloop.tokenizer.kind).toBe("char");
    loaded.dispose();
    a.close();
    b2.close();
  });
});
