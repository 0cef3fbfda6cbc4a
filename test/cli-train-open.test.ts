// innerloop train beyond its own GPT-2 and tokenizers: --vocab-size N on a .bin of token ids makes
// exactly N (an id >= N is an error naming it), --tokenizer PATH/tokenizer.json trains with a
// Hugging Face tokenizer, and --init DIR fine-tunes a pretrained checkpoint (the run directory then
// holds that family's checkpoint, and analysis snapshots run on it).
import { afterAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cli, ROOT } from "./helpers/cli.js";
import { writeTokenBin } from "../lib/data/index.js";
import { loadPretrained } from "../lib/models/index.js";
import { torch } from "../lib/torch/index.js";

torch.setNumThreads(1);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-cli-open-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const FIX = path.join(ROOT, "test", "fixtures", "pretrained");
const FAST = ["--batch-size", "2", "--seq-len", "16", "--eval-every", "0", "--checkpoint-every", "0", "--n-layer", "1", "--n-head", "2", "--n-embd", "16"];
const config = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));

describe(".bin data with --vocab-size", () => {
  it("makes a model of exactly N tokens with no tokenizer", async () => {
    const bin = path.join(tmp, "ids.bin");
    writeTokenBin(bin, Int32Array.from({ length: 3000 }, (_, i) => (i * 31) % 256));
    const out = path.join(tmp, "v256");
    const r = await cli(["train", ...FAST, "--data", bin, "--vocab-size", "256", "--steps", "2", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("token ids (vocab 256)");
    expect(config(out).vocab_size).toBe(256);
    expect(config(out).innerloop.tokenizer).toBeUndefined();
    // With GPT-2's tokenizer named as well, the model still has exactly N rows.
    const out2 = path.join(tmp, "v256-gpt2");
    const g = await cli(["train", ...FAST, "--data", bin, "--tokenizer", "gpt2", "--vocab-size", "256", "--steps", "1", "--out", out2]);
    expect(g.code, g.stderr).toBe(0);
    expect(config(out2).vocab_size).toBe(256);
  });

  it("an id >= N stops the run with an error naming it; no --vocab-size and no tokenizer is a usage error", async () => {
    const bin = path.join(tmp, "big-ids.bin");
    writeTokenBin(bin, Int32Array.from({ length: 40 }, (_, i) => (i === 3 ? 999 : i)));
    const r = await cli(["train", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--eval-every", "0", "--seq-len", "35", "--batch-size", "1", "--data", bin, "--vocab-size", "256", "--steps", "1", "--out", path.join(tmp, "bad")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/big-ids\.bin: token 999 at index 3 is outside the vocabulary \(size 256\)/);
    const u = await cli(["train", ...FAST, "--data", bin, "--steps", "1", "--out", path.join(tmp, "bad2")]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain("needs --vocab-size N");
  });
});

describe("--tokenizer PATH/tokenizer.json", () => {
  it("trains a char-free model with a Hugging Face tokenizer, and sample decodes with it", async () => {
    const tok = path.join(FIX, "tokenizers", "bytelevel", "tokenizer.json");
    const text = path.join(tmp, "text.txt");
    fs.writeFileSync(text, "the cat sat on the mat. ".repeat(200));
    const out = path.join(tmp, "hf-tok");
    const r = await cli(["train", ...FAST, "--data", text, "--tokenizer", tok, "--steps", "2", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/hf tokenizer \(vocab \d+\)/);
    expect(fs.existsSync(path.join(out, "tokenizer.json"))).toBe(true);
    const s = await cli(["sample", "--model", out, "--prompt", "the cat", "--max-new-tokens", "3"]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout.startsWith("the cat")).toBe(true);
    const bad = await cli(["train", ...FAST, "--tokenizer", path.join(tmp, "nope.json"), "--steps", "1", "--out", path.join(tmp, "x")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--tokenizer must be char, gpt2 or the path of an existing tokenizer.json");
  });
});

describe("--init DIR", () => {
  for (const family of ["llama", "neox-seq", "gpt2"]) {
    it(`fine-tunes the ${family} fixture: the run directory holds that family's checkpoint, changed by training`, async () => {
      const init = path.join(FIX, family, "model");
      const out = path.join(tmp, `init-${family}`);
      const r = await cli(["train", "--init", init, "--data", path.join(FIX, "tokens.bin"), "--seq-len", "16", "--batch-size", "2", "--steps", "3", "--lr", "1e-2", "--warmup", "0", "--eval-every", "0", "--analyze-every", "3", "--analyze-windows", "2", "--out", out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`from ${init}`);
      expect(config(out).model_type).toBe(config(init).model_type);
      // Analysis snapshots ran on the model's hook points.
      expect(fs.readdirSync(path.join(out, "analysis")).length).toBeGreaterThan(0);
      // The weights started from the checkpoint's and moved.
      const before = loadPretrained(init, { dtype: "float32" });
      const after = loadPretrained(out, { dtype: "float32" });
      const a = before.stateDict();
      const b = after.stateDict();
      expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
      const moved = Object.keys(a).map((k) => torch.tidy(() => a[k]!.sub(b[k]!).abs().max().item() as number));
      expect(Math.max(...moved)).toBeGreaterThan(0);
      expect(Math.max(...moved)).toBeLessThan(1);
      before.dispose();
      after.dispose();
      // Resume continues the run from the family's checkpoint.
      const more = await cli(["train", "--resume", out, "--steps", "4"]);
      expect(more.code, more.stderr).toBe(0);
      expect(JSON.parse(fs.readFileSync(path.join(out, "trainer_state.json"), "utf8")).step).toBe(4);
    });
  }

  it("a folder without config.json is a usage error", async () => {
    const r = await cli(["train", "--init", tmp, "--steps", "1", "--out", path.join(tmp, "y")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--init must be a folder with config.json");
  });
});
