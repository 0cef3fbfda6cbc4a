// GPT-2 against Hugging Face transformers on the same random weights (fixture made by
// scripts/ref/gpt2_reference.py): logits, loss, gradients and residual-stream hook points; our
// save format loaded by transformers (scripts/ref/gpt2_hf_check.py); generation with and
// without the KV cache; initialisation; config mapping.
import { describe, it, expect, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { torch } from "../lib/torch/index.js";
import type { Device, Tensor } from "../lib/torch/index.js";
import { loadSafetensors } from "../lib/torch/safetensors.js";
import { GPT2, loadGPT2, saveGPT2, readHFConfig, fromHFConfig, toHFConfig, gpt2Config } from "../lib/models/index.js";
import { AdamW, weightDecayGroups, clipGradNorm_ } from "../lib/optim/index.js";
import { devices } from "./helpers/devices.js";
import { expectClose } from "./helpers/close.js";

// Test files run in parallel processes on few cores: one intra-op thread per process avoids
// oversubscription, which slows libtorch's CPU kernels down by orders of magnitude under load.
torch.setNumThreads(1);

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(here, "fixtures", "gpt2");
const MODEL_DIR = path.join(FIXTURE, "model");
const HF_CHECK = path.join(here, "..", "scripts", "ref", "gpt2_hf_check.py");

const expected = JSON.parse(fs.readFileSync(path.join(FIXTURE, "expected.json"), "utf8")) as {
  ids: number[][];
  targets: number[][];
  loss: number;
  gradParams: string[];
  prompt: number[][];
  greedy: number[][];
};
const { tensors: exp } = loadSafetensors(path.join(FIXTURE, "expected.safetensors"));
for (const t of Object.values(exp)) torch.keep(t);
const values = (name: string) => exp[name]!.toTypedArray() as Float32Array;

// Float32 against float64 references: 1e-4 relative, with an absolute floor for values near 0
// (relative to the largest magnitude of the tensor).
const TOL = { rtol: 1e-4, atol: 1e-5 };

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-gpt2-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const HOOK_NAMES = (nLayer: number) => [
  ...Array.from({ length: nLayer }, (_, l) => [
    `blocks.${l}.attn.hook_q`,
    `blocks.${l}.attn.hook_k`,
    `blocks.${l}.hook_resid_pre`,
    `blocks.${l}.hook_attn_out`,
    `blocks.${l}.hook_resid_mid`,
    `blocks.${l}.hook_mlp_out`,
    `blocks.${l}.hook_resid_post`,
  ]).flat(),
  "ln_final.hook_normalized",
];

function ids(data: number[][], device: Device): Tensor {
  return torch.tensor(data, { dtype: "int64", device });
}

describe("GPT-2 matches transformers", () => {
  for (const device of devices()) {
    it(`logits, loss, gradients and hook points (${device})`, () => {
      const model = loadGPT2(MODEL_DIR, { device });
      expect(model.config).toEqual(
        gpt2Config({ vocabSize: 101, nPositions: 24, nEmbd: 48, nLayer: 2, nHead: 3, dropout: 0.1 }),
      );
      model.eval();
      const hooks = model.hookPoints();
      const captured: Record<string, Tensor> = {};
      for (const [name, key] of [
        ["blocks.0.hook_resid_pre", "h0"],
        ["blocks.0.hook_resid_post", "h1"],
        ["blocks.1.hook_resid_post", "resid_final"],
        ["ln_final.hook_normalized", "normalized"],
      ] as const) {
        hooks.get(name)!.setHook((x) => {
          captured[key] = torch.keep(x.detach());
          return x;
        });
      }
      torch.tidy(() => {
        const { logits, loss } = model.forward(ids(expected.ids, device), { targets: ids(expected.targets, device) });
        expect(logits.shape).toEqual([3, 13, 101]);
        expectClose(logits, values("logits"), TOL, "logits");
        expect(Math.abs((loss!.item() as number) - expected.loss) / expected.loss).toBeLessThan(1e-5);
        loss!.backward();
      });
      for (const key of ["h0", "h1", "resid_final", "normalized"]) {
        expectClose(captured[key]!, values(key), TOL, key);
        captured[key]!.dispose();
      }
      for (const hp of hooks.values()) hp.setHook(null);
      const params = new Map(model.namedParameters());
      for (const name of expected.gradParams) {
        const g = params.get(name)!.grad!;
        expectClose(g, values(`grad.${name}`), TOL, `grad ${name}`);
      }
      model.dispose();
    });
  }

  it("exposes exactly the hook names, none of them in the state dict", () => {
    const model = new GPT2({ vocabSize: 11, nPositions: 8, nEmbd: 12, nLayer: 3, nHead: 2 });
    expect([...model.hookPoints().keys()].sort()).toEqual(HOOK_NAMES(3).sort());
    const keys = Object.keys(model.stateDict());
    expect(keys.some((k) => k.includes("hook"))).toBe(false);
    // transformers' names, lm_head tied and therefore absent.
    const hfFile = loadSafetensors(path.join(MODEL_DIR, "model.safetensors")).tensors;
    const hfKeys = Object.keys(hfFile);
    torch.dispose(hfFile);
    const loaded = loadGPT2(MODEL_DIR);
    const ours = Object.keys(loaded.stateDict());
    loaded.dispose();
    expect([...ours].sort()).toEqual([...hfKeys].sort());
    expect(keys).not.toContain("lm_head.weight");
    model.dispose();
  });
});

describe("GPT-2 checkpoints in Hugging Face format", () => {
  interface HFCheck {
    loss: number;
    logits_first: number[];
    config: Record<string, unknown>;
    missing_keys: string[];
    unexpected_keys: string[];
    mismatched_keys: string[];
  }

  /** Loads each folder with transformers (one Python process for all of them). */
  function hfCheck(dirs: string[], inputs: { ids: number[][]; targets: number[][] }): HFCheck[] {
    const input = path.join(tmpRoot, "hf-input.json");
    fs.writeFileSync(input, JSON.stringify(inputs));
    const out = execFileSync("python3", [HF_CHECK, input, ...dirs], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return JSON.parse(out.trim().split("\n").pop()!) as HFCheck[];
  }

  it("saves models transformers loads with the same loss (with and without biases, bfloat16)", () => {
    const inputs = { ids: expected.ids, targets: expected.targets };
    const cases = [true, false].map((bias) => {
      const model = new GPT2({ vocabSize: 101, nPositions: 24, nEmbd: 48, nLayer: 2, nHead: 3, bias }, { seed: 5 });
      model.eval();
      // Perturb the norms and biases so that the export of each one matters.
      torch.noGrad(() => {
        for (const p of model.parameters()) if (p.ndim === 1) torch.tidy(() => p.add_(torch.randn(p.shape).mul(0.1)));
      });
      const dir = path.join(tmpRoot, `saved-${bias}`);
      saveGPT2(dir, model, { tokenizer: "char", bos_token_id: 3 });
      const loss = torch.tidy(() => model.forward(ids(expected.ids, "cpu"), { targets: ids(expected.targets, "cpu") }).loss!.item());
      return { bias, model, dir, loss };
    });
    // A bfloat16 model is written in bfloat16; transformers reads it (here cast to float32) as we do.
    const half = new GPT2({ vocabSize: 101, nPositions: 24, nEmbd: 48, nLayer: 2, nHead: 3 }, { seed: 6, dtype: "bfloat16" });
    const halfDir = path.join(tmpRoot, "saved-bf16");
    saveGPT2(halfDir, half);
    half.dispose();
    const half32 = loadGPT2(halfDir, { dtype: "float32" });
    const halfLoss = torch.tidy(() => half32.eval().forward(ids(expected.ids, "cpu"), { targets: ids(expected.targets, "cpu") }).loss!.item());
    half32.dispose();
    expect(readHFConfig(halfDir).dtype).toBe("bfloat16");
    const halfFile = loadSafetensors(path.join(halfDir, "model.safetensors")).tensors;
    expect(halfFile["transformer.wte.weight"]!.dtype).toBe("bfloat16");
    torch.dispose(halfFile);

    const py = hfCheck([...cases.map((c) => c.dir), halfDir], inputs);
    expect(py[2]!.missing_keys).toEqual([]);
    expect(Math.abs(py[2]!.loss - halfLoss) / halfLoss).toBeLessThan(1e-5);
    cases.forEach(({ model, dir, loss }, i) => {
      const r = py[i]!;
      expect(r.missing_keys).toEqual([]);
      expect(r.unexpected_keys).toEqual([]);
      expect(r.mismatched_keys).toEqual([]);
      expect(Math.abs(r.loss - loss) / loss).toBeLessThan(1e-5);
      expect(r.config.model_type).toBe("gpt2");
      expect(r.config.n_embd).toBe(48);
      expect(r.config.tokenizer).toBe("char");
      expect(r.config.bos_token_id).toBe(3);
      const cfg = readHFConfig(dir);
      expect(cfg.architectures).toEqual(["GPT2LMHeadModel"]);
      expect(cfg.activation_function).toBe("gelu_new");
      expect(cfg.dtype).toBe("float32");
      // And back: the same model.
      const back = loadGPT2(dir);
      expect(back.config).toEqual(model.config);
      const loss2 = torch.tidy(() => back.eval().forward(ids(expected.ids, "cpu"), { targets: ids(expected.targets, "cpu") }).loss!.item());
      expect(loss2).toBe(loss);
      expect(fs.readdirSync(dir).sort()).toEqual(["config.json", "model.safetensors"]);
      model.dispose();
      back.dispose();
    });
  });

  it("maps configs and refuses what it cannot honour", () => {
    const c = gpt2Config({ vocabSize: 128, nPositions: 64, nEmbd: 32, nLayer: 2, nHead: 4 });
    const hf = toHFConfig(c);
    expect(hf).toMatchObject({ model_type: "gpt2", vocab_size: 128, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, tie_word_embeddings: true });
    expect(fromHFConfig(hf)).toEqual(c);
    expect(fromHFConfig(readHFConfig(MODEL_DIR)).nEmbd).toBe(48);
    expect(() => fromHFConfig({ ...hf, activation_function: "quick_gelu" })).toThrow(/activation_function = "quick_gelu" is not supported/);
    // transformers' other GPT-2 activations are read (the model computes them; pretrained-families.test.ts).
    for (const [name, act] of [["gelu", "gelu"], ["relu", "relu"], ["silu", "silu"], ["gelu_new", "gelu_tanh"]] as const) {
      expect(fromHFConfig({ ...hf, activation_function: name }).activation).toBe(act);
    }
    expect(() => fromHFConfig({ ...hf, model_type: "llama" })).toThrow(/model_type/);
    expect(() => fromHFConfig({ ...hf, n_head: 5 })).toThrow(/divisible/);
    expect(() => gpt2Config({ nLayer: 0 })).toThrow(/nLayer/);
    expect(() => gpt2Config({ nlayer: 2 } as never)).toThrow(/unknown field 'nlayer'/);
    const m = new GPT2(c);
    expect(() => saveGPT2(path.join(tmpRoot, "x"), m, { n_layer: 5 })).toThrow(/n_layer/);
    m.dispose();
  });
});

describe("GPT-2 model", () => {
  it("is initialised as GPT-2 and reproducibly from a seed", () => {
    const cfg = { vocabSize: 500, nPositions: 64, nEmbd: 64, nLayer: 4, nHead: 4 };
    const a = new GPT2(cfg, { seed: 1 });
    const b = new GPT2(cfg, { seed: 1 });
    const sdA = a.stateDict();
    const sdB = b.stateDict();
    for (const k of Object.keys(sdA)) expect(sdA[k]!.toArray()).toEqual(sdB[k]!.toArray());
    const std = (t: Tensor) => torch.tidy(() => t.std().item() as number);
    expect(std(sdA["transformer.wte.weight"]!)).toBeCloseTo(0.02, 3);
    expect(std(sdA["transformer.h.0.attn.c_attn.weight"]!)).toBeCloseTo(0.02, 3);
    expect(std(sdA["transformer.h.0.mlp.c_fc.weight"]!)).toBeCloseTo(0.02, 3);
    const resid = 0.02 / Math.sqrt(2 * 4);
    expect(std(sdA["transformer.h.3.attn.c_proj.weight"]!) / resid).toBeGreaterThan(0.95);
    expect(std(sdA["transformer.h.3.attn.c_proj.weight"]!) / resid).toBeLessThan(1.05);
    expect(std(sdA["transformer.h.3.mlp.c_proj.weight"]!) / resid).toBeGreaterThan(0.95);
    expect(sdA["transformer.h.0.attn.c_attn.bias"]!.abs().sum().item()).toBe(0);
    expect(sdA["transformer.h.0.ln_1.weight"]!.toArray()).toEqual(new Array(64).fill(1));
    expect(sdA["transformer.ln_f.weight"]!.toArray()).toEqual(new Array(64).fill(1));
    expect(sdA["transformer.ln_f.bias"]!.toArray()).toEqual(new Array(64).fill(0));
    expect(sdA["transformer.h.0.attn.c_attn.weight"]!.shape).toEqual([64, 192]); // Conv1D: [in, out]
    // Parameters: tied lm_head is not counted twice.
    expect(a.numParameters()).toBe(500 * 64 + 64 * 64 + 4 * (12 * 64 * 64 + 13 * 64) + 2 * 64);
    a.dispose();
    b.dispose();
  });

  it("supports a padded vocabulary and bias-free layers", () => {
    const m = new GPT2({ vocabSize: 128, nPositions: 16, nEmbd: 16, nLayer: 1, nHead: 2, bias: false }, { seed: 2 });
    expect(m.namedParameters().some(([n]) => n.endsWith(".bias"))).toBe(false);
    const out = torch.tidy(() => {
      const x = torch.randint(0, 100, [2, 5]);
      const { logits, loss } = m.forward(x, { targets: torch.randint(0, 100, [2, 5]) });
      const gen = m.generate(x, { maxNewTokens: 20, temperature: 1, seed: 3, vocabLimit: 100 });
      // A top-k past the vocabulary keeps every token (as nanoGPT's min(k, V)).
      const wide = m.generate(x, { maxNewTokens: 4, seed: 8, topK: 1000 });
      const all = m.generate(x, { maxNewTokens: 4, seed: 8 });
      return [logits.shape, loss!.item(), gen.max().item(), wide.toArray(), all.toArray()] as const;
    });
    expect(out[0]).toEqual([2, 5, 128]);
    expect(Number.isFinite(out[1])).toBe(true);
    expect(out[2]).toBeLessThan(100);
    expect(out[3]).toEqual(out[4]);
    const ids1 = torch.keep(torch.zeros([1, 2], { dtype: "int64" }));
    expect(() => m.generate(ids1, { maxNewTokens: -1 })).toThrow(/maxNewTokens/);
    expect(() => m.generate(ids1, { maxNewTokens: 1, temperature: -1 })).toThrow(/temperature/);
    expect(() => m.generate(ids1, { maxNewTokens: 1, topK: 0 })).toThrow(/topK/);
    expect(() => m.generate(ids1, { maxNewTokens: 1, vocabLimit: 129 })).toThrow(/vocabLimit/);
    ids1.dispose();
    expect(() => torch.tidy(() => m.forward(torch.zeros([1, 17], { dtype: "int64" })))).toThrow(/nPositions/);
    expect(() =>
      torch.tidy(() => m.forward(torch.zeros([2, 4], { dtype: "int64" }), { targets: torch.zeros([2, 3], { dtype: "int64" }) })),
    ).toThrow(/targets must have the shape of ids \[2, 4\]/);
    m.dispose();
  });

  for (const device of devices()) {
    it(`generates the same tokens with and without the KV cache (${device})`, () => {
      const model = loadGPT2(MODEL_DIR, { device });
      const live = torch.memory().liveTensors;
      const result = torch.tidy(() => {
        const prompt = ids(expected.prompt, device);
        const cached = model.generate(prompt, { maxNewTokens: 8, temperature: 0 });
        const uncached = model.generate(prompt, { maxNewTokens: 8, temperature: 0, useCache: false });
        // Past nPositions (24) the context slides; cached and uncached must still agree.
        const long = model.generate(prompt, { maxNewTokens: 30, temperature: 0 });
        const longU = model.generate(prompt, { maxNewTokens: 30, temperature: 0, useCache: false });
        const s1 = model.generate(prompt, { maxNewTokens: 12, temperature: 0.8, topK: 10, seed: 9 });
        const s2 = model.generate(prompt, { maxNewTokens: 12, temperature: 0.8, topK: 10, seed: 9, useCache: false });
        const top1 = model.generate(prompt, { maxNewTokens: 8, temperature: 1.5, topK: 1, seed: 4 });
        return {
          cached: cached.toArray(),
          uncached: uncached.toArray(),
          long: long.toArray(),
          longU: longU.toArray(),
          s1: s1.toArray(),
          s2: s2.toArray(),
          top1: top1.toArray(),
          shape: long.shape,
        };
      });
      // The cache and every intermediate were freed.
      expect(torch.memory().liveTensors).toBe(live);
      const asNum = (a: unknown) => (a as Array<Array<number | bigint>>).map((r) => r.map(Number));
      expect(asNum(result.cached)).toEqual(expected.greedy);
      expect(asNum(result.uncached)).toEqual(expected.greedy);
      expect(result.shape).toEqual([2, 5 + 30]);
      expect(asNum(result.long)).toEqual(asNum(result.longU));
      expect(asNum(result.s1)).toEqual(asNum(result.s2));
      expect(asNum(result.top1)).toEqual(expected.greedy);
      expect(model.training).toBe(true);
      model.dispose();
    });

    it(`trains: loss falls and live tensors stay flat (${device})`, () => {
      const model = new GPT2({ vocabSize: 40, nPositions: 16, nEmbd: 32, nLayer: 2, nHead: 4, dropout: 0.1 }, { seed: 0, device });
      const opt = new AdamW(weightDecayGroups(model, 0.1), { lr: 3e-3, beta1: 0.9, beta2: 0.95 });
      const x = torch.keep(torch.randint(0, 40, [4, 16], { device }));
      const y = torch.keep(torch.tidy(() => torch.cat([x.narrow(1, 1, 15), x.narrow(1, 0, 1)], 1)));
      const losses: number[] = [];
      let live = 0;
      for (let step = 0; step < 30; step++) {
        torch.tidy(() => {
          const { loss } = model.forward(x, { targets: y });
          loss!.backward();
          clipGradNorm_(model.parameters(), 1.0);
          opt.step();
          opt.zeroGrad();
          losses.push(loss!.item() as number);
        });
        if (step === 2) live = torch.memory().liveTensors;
      }
      expect(torch.memory().liveTensors).toBe(live);
      expect(losses[29]!).toBeLessThan(losses[0]! - 1);
      opt.dispose();
      model.dispose();
      x.dispose();
      y.dispose();
    });
  }

  it("runs in float64, bfloat16 and under bfloat16 autocast (dtype-agnostic)", () => {
    const m32 = loadGPT2(MODEL_DIR);
    const m64 = loadGPT2(MODEL_DIR, { dtype: "float64" });
    const m16 = loadGPT2(MODEL_DIR, { dtype: "bfloat16" });
    const [l32, l64, l16, dt] = torch.tidy(() => {
      const x = ids(expected.ids, "cpu");
      const t = ids(expected.targets, "cpu");
      const r16 = m16.eval().forward(x, { targets: t });
      return [
        m32.eval().forward(x, { targets: t }).loss!.item() as number,
        m64.eval().forward(x, { targets: t }).loss!.item() as number,
        r16.loss!.item() as number,
        r16.logits.dtype,
      ];
    });
    expect(Math.abs(l64 - expected.loss)).toBeLessThan(1e-10);
    expect(Math.abs(l32 - expected.loss)).toBeLessThan(1e-4);
    expect(dt).toBe("bfloat16");
    expect(Math.abs(l16 - expected.loss) / expected.loss).toBeLessThan(0.05);
    // A float32 model under bfloat16 autocast (what the trainer does on CUDA): bf16 logits, a
    // float32 loss, and gradients for the float32 parameters.
    const [la, ldt, lossDt, gradDt] = torch.tidy(() => {
      const r = torch.autocast("cpu", "bfloat16", () =>
        m32.forward(ids(expected.ids, "cpu"), { targets: ids(expected.targets, "cpu") }),
      );
      r.loss!.backward();
      return [r.loss!.item(), r.logits.dtype, r.loss!.dtype, m32.transformer.wte.weight.grad!.dtype];
    });
    m32.zeroGrad();
    expect(ldt).toBe("bfloat16");
    expect(lossDt).toBe("float32");
    expect(gradDt).toBe("float32");
    expect(Math.abs(la - expected.loss) / expected.loss).toBeLessThan(0.05);
    for (const m of [m32, m64, m16]) m.dispose();
  });
});
