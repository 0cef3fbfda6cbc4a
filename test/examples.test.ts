// Runs every script in examples/ as a user would (`node examples/x.mjs`, importing "innerloop"
// through the package's exports map, so from dist/) and checks what it prints against independent
// computations: so that the examples cannot rot.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { torch } from "../lib/torch/index.js";
import { GPT2 } from "../lib/models/index.js";

const root = resolve(import.meta.dirname, "..");
const run = promisify(execFile);
// One intra-op thread per example: the test runner already runs test files side by side, and on a
// busy machine OpenMP threads waiting for each other make a tiny model ten times slower.
const env = { ...process.env, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? "1" };
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs an example; returns its stdout lines and the JSON object on its last line. */
async function runExample(file: string, args: string[] = []): Promise<{ lines: string[]; result: any }> {
  if (!existsSync(join(root, "dist", "index.js"))) throw new Error("examples import the built package: run `npm run build:ts` first");
  const { stdout } = await run(process.execPath, [join(root, "examples", file), ...args], { cwd: root, env, timeout: 110_000 });
  const lines = stdout.trim().split("\n");
  return { lines, result: JSON.parse(lines[lines.length - 1]!) };
}

describe("examples", () => {
  it("every example is exercised here", () => {
    const scripts = readdirSync(join(root, "examples")).filter((f) => f.endsWith(".mjs")).sort();
    expect(scripts).toEqual(["hook-norms.mjs", "load-hf-checkpoint.mjs", "train-char-gpt2.mjs"]);
  });

  it("train-char-gpt2: the training loop lowers the loss", async () => {
    const { lines, result } = await runExample("train-char-gpt2.mjs", ["--steps", "80"]);
    // Untrained, the loss is about ln(vocabulary size); 80 steps on a short text take off over a nat.
    const vocab = Number(/vocabulary of (\d+) characters/.exec(lines.join("\n"))![1]);
    expect(Math.abs(result.firstLoss - Math.log(vocab))).toBeLessThan(0.4);
    expect(result.lastLoss).toBeLessThan(result.firstLoss - 1);
    expect(result.steps).toBe(80);
    expect(lines.filter((l) => /^step +\d+ +loss \d+\.\d{4}$/.test(l))).toHaveLength(9);
    expect(lines.some((l) => l.startsWith('sample: "Call me '))).toBe(true);
  });

  it("hook-norms: per-layer norms from hook points equal a direct computation", async () => {
    const { result } = await runExample("hook-norms.mjs");
    expect(result.layers).toBe(4);
    expect(result.shape).toEqual([4, 16, 32]);
    for (const k of ["hiddenNorm", "firstTokenNorm", "gradNorm"]) {
      expect(result[k]).toHaveLength(4);
      for (const v of result[k]) expect(v > 0 && Number.isFinite(v), `${k} ${v}`).toBe(true);
    }
    expect(result.mlpNorm).toHaveLength(3);

    // The same model and ids, computed here without hooks: h^0 is the embedding output, h^L the
    // input of the final LayerNorm, and the loss their forward pass gives.
    const config = { vocabSize: 50, nPositions: 16, nEmbd: 32, nLayer: 3, nHead: 4, dropout: 0 };
    const model = new GPT2(config, { seed: 0 }).eval();
    torch.manualSeed(1);
    const ids = torch.randint(0, config.vocabSize, [4, 17]);
    const direct = torch.tidy(() =>
      torch.noGrad(() => {
        const x = ids.narrow(1, 0, 16);
        let h = model.embed(x);
        const norms = [h.norm(2, -1).mean().item()];
        for (const block of model.blocks) {
          h = block.forward(h);
          norms.push(h.norm(2, -1).mean().item());
        }
        const loss = model.forward(x, { targets: ids.narrow(1, 1, 16) }).loss!.item();
        return { norms, loss };
      }),
    );
    ids.dispose();
    model.dispose();
    direct.norms.forEach((n, l) => expect(result.hiddenNorm[l]).toBeCloseTo(n, 4));
    expect(result.loss).toBeCloseTo(direct.loss, 4);
  });

  it("load-hf-checkpoint: a checkpoint written by transformers gives transformers' numbers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "innerloop-hf-example-"));
    dirs.push(dir);
    await run("python3", [join(root, "examples", "make_tiny_hf_gpt2.py"), dir], { env, timeout: 110_000 });
    const ref = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8"));
    const { result } = await runExample("load-hf-checkpoint.mjs", [dir]);
    expect(result.parameters).toBe(ref.parameters);
    expect(result.logitsShape).toEqual([1, ref.ids.length - 1, 61]);
    expect(Math.abs(result.loss - ref.loss) / ref.loss).toBeLessThan(1e-5);
    result.lastLogits.forEach((v: number, i: number) => expect(Math.abs(v - ref.lastLogits[i])).toBeLessThan(1e-4));
    expect(result.generated).toEqual(ref.generated);
  });

  it("load-hf-checkpoint: without a folder it saves a model with saveGPT2 and loads it back", async () => {
    const { lines, result } = await runExample("load-hf-checkpoint.mjs");
    expect(lines[0]).toMatch(/^saved a tiny random GPT-2 to /);
    expect(result.logitsShape).toEqual([1, 16, 61]);
    expect(Number.isFinite(result.loss)).toBe(true);
    expect(result.generated).toHaveLength(13);
    expect(existsSync(result.dir)).toBe(false); // the example removes what it made
  });
});
