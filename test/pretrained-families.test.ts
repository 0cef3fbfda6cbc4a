// The families on the block skeleton beyond LLaMA / GPT-NeoX: random tiny Qwen3, Gemma 2, Gemma 3
// (transformers-5 and -4 configs), Phi-3 and OLMo 2 checkpoints written by transformers with
// perturbed weights (scripts/oracle/pretrained_make.py), and Qwen2 with every layer sliding
// (max_window_layers 0). Logits within 1e-5 relative of transformers' float64 logits (float32),
// generation with the KV cache equals generation without it, export reloads in transformers with
// the same logits, and unsupported variants are refused in one line naming file and field.
// Analysis fields: pretrained-analysis.test.ts.

import { describe, it, expect, beforeAll } from "vitest";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";
import type { Device, Tensor } from "../lib/torch/index.js";
import { readSafetensorsHeader } from "../lib/torch/safetensors.js";
import { loadPretrained, savePretrained, architectureOf, Gemma, Llama, Olmo2, Phi3 } from "../lib/models/hf.js";
import type { PretrainedModel } from "../lib/models/hf.js";
import { weightFiles } from "../lib/models/hf-weights.js";
import { GPT2 } from "../lib/models/gpt2.js";
import { inverseFrequencies } from "../lib/models/rope.js";
import { expectLogits } from "./helpers/close.js";
import { FIX, modelDir, readExpected, transformersView } from "./helpers/pretrained.js";

const NAMES = ["qwen2-swa", "qwen3", "gemma2", "gemma3", "gemma3-v4", "phi3", "olmo2", "gpt2-gelu", "gpt2-relu", "gpt2-silu"] as const;
const CLASS = { "qwen2-swa": Llama, qwen3: Llama, gemma2: Gemma, gemma3: Gemma, "gemma3-v4": Gemma, phi3: Phi3, olmo2: Olmo2, "gpt2-gelu": GPT2, "gpt2-relu": GPT2, "gpt2-silu": GPT2 };
const devices: Device[] = ["cpu", ...(torch.cuda.isAvailable() ? (["cuda"] as Device[]) : [])];

const expected = readExpected(NAMES);
const readConfig = (n: string) => JSON.parse(fs.readFileSync(path.join(modelDir(n), "config.json"), "utf8")) as Record<string, unknown>;

function logitsOf(model: PretrainedModel, ids: number[][], device: Device = "cpu"): Tensor {
  return torch.noGrad(() => model.forward(torch.tensor(ids, { dtype: "int64" }).to(device)).logits);
}

describe.each(devices)("logits agree with transformers within 1e-5 relative in float32 (%s)", (device) => {
  for (const name of NAMES) {
    it(name, () => {
      const e = expected[name];
      const model = loadPretrained(modelDir(name), { device, dtype: "float32" });
      try {
        expect(model).toBeInstanceOf(CLASS[name]);
        expect(model.numParameters()).toBe(e.numParameters);
        if (!(model instanceof GPT2)) {
          const fileNames = weightFiles(modelDir(name)).flatMap((f) => readSafetensorsHeader(f).entries.map((x) => x.name)).sort();
          expect(Object.keys(model.stateDict()).sort()).toEqual(fileNames);
        }
        torch.tidy(() => {
          const logits = logitsOf(model, e.ids, device);
          expect(logits.shape).toEqual(e.logitsShape);
          // cuda's float32 GEMMs may use TF32-free but differently ordered reductions: same bound.
          expectLogits(logits, e.logits, 1e-5, name);
        });
      } finally {
        model.dispose();
      }
    });
  }
});

describe("configs of the new families", () => {
  it("reads each family's distinguishing options from transformers-5 and -4 configs", () => {
    const g2 = architectureOf(readConfig("gemma2"));
    expect(g2.kind === "gemma" && [g2.config.attnLogitSoftcapping, g2.config.finalLogitSoftcapping, g2.config.queryPreAttnScalar, g2.config.headDim]).toEqual([2, 5, 12, 16]);
    expect(g2.kind === "gemma" && g2.config.layerTypes).toEqual(["sliding_attention", "full_attention", "sliding_attention"]);
    const g3 = architectureOf(readConfig("gemma3"));
    expect(g3.kind === "gemma" && [g3.config.rope, g3.config.localRope]).toEqual([
      { type: "linear", theta: 1e6, partialRotaryFactor: 1, factor: 2 },
      { type: "default", theta: 1e4, partialRotaryFactor: 1 },
    ]);
    const v4 = readConfig("gemma3-v4");
    expect(v4.rope_parameters).toBeUndefined(); // really a transformers-4 config
    const g4 = architectureOf(v4);
    expect(g4.kind === "gemma" && [g4.config.rope.theta, g4.config.rope.factor, g4.config.localRope!.theta, g4.config.layerTypes]).toEqual([
      5e5,
      4,
      1e3,
      ["sliding_attention", "full_attention", "sliding_attention"],
    ]);
    const q2 = architectureOf(readConfig("qwen2-swa"));
    expect(q2.kind === "llama" && q2.config.slidingWindow).toEqual([4, 4]); // max_window_layers 0: every layer slides
    const q3 = architectureOf(readConfig("qwen3"));
    expect(q3.kind === "llama" && [q3.config.qkNorm, q3.config.headDim, q3.config.slidingWindow]).toEqual([true, 12, [null, 4]]);
    const p3 = architectureOf(readConfig("phi3"));
    expect(p3.kind === "phi3" && [p3.config.rope.partialRotaryFactor, p3.config.slidingWindow]).toEqual([0.5, 6]);
  });

  const qwen2 = JSON.parse(fs.readFileSync(path.join(modelDir("qwen2"), "config.json"), "utf8")) as Record<string, unknown>;
  const phi3 = readConfig("phi3");
  const gemma3 = readConfig("gemma3");
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["mixture of experts (model_type)", { ...qwen2, model_type: "qwen3_moe" }, /^config\.json: model_type "qwen3_moe" is not supported \(supported: .*\)$/],
    ["mixture of experts (field)", { ...readConfig("qwen3"), num_experts: 8 }, /^config\.json: num_experts = 8: mixture-of-experts models are not supported$/],
    ["phi3 longrope", { ...phi3, rope_parameters: { rope_type: "longrope", rope_theta: 1e4, short_factor: [1, 1], long_factor: [2, 2] } }, /^config\.json: rope_parameters\.rope_type = "longrope" is not supported/],
    ["phi3 su (4.x)", { ...phi3, rope_parameters: undefined, rope_scaling: { type: "su", short_factor: [1], long_factor: [2] } }, /^config\.json: rope_scaling\.type = "su" is not supported/],
    ["gemma3 yarn on full attention", { ...gemma3, rope_parameters: { full_attention: { rope_type: "yarn", factor: 2 }, sliding_attention: { rope_type: "default" } } }, /^config\.json: rope_parameters\.full_attention\.rope_type = "yarn" is not supported/],
    ["gemma3 bidirectional", { ...gemma3, use_bidirectional_attention: true }, /^config\.json: use_bidirectional_attention = true is not supported/],
    ["qwen2 sliding layer_types without use_sliding_window", { ...qwen2, use_sliding_window: false, layer_types: ["full_attention", "sliding_attention"] }, /^config\.json: layer_types\[1\] = "sliding_attention" needs use_sliding_window: true/],
    ["qwen2 negative max_window_layers", { ...qwen2, use_sliding_window: true, sliding_window: 4, layer_types: undefined, max_window_layers: -1 }, /^config\.json: max_window_layers must be a non-negative integer, got -1$/],
    ["gemma2 layer_types length", { ...readConfig("gemma2"), layer_types: ["full_attention"] }, /^config\.json: layer_types must list 3 layers/],
  ];
  for (const [what, cfg, re] of cases) {
    it(`refuses ${what} in one line naming the field`, () => {
      expect(() => architectureOf(cfg)).toThrow(re);
    });
  }

  it("innerloop analyze refuses an unsupported variant with exit code 2 and one line", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-family-bad-"));
    try {
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...phi3, rope_parameters: { rope_type: "longrope", rope_theta: 1e4 } }));
      const cli = path.join(__dirname, "..", "bin", "innerloop.js");
      let status = 0;
      let stderr = "";
      try {
        execFileSync(process.execPath, [cli, "analyze", "--model", dir, "--data", path.join(FIX, "tokens.bin"), "--seq-len", "8", "--batch-size", "2", "--out", path.join(dir, "out")], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
      } catch (e) {
        status = (e as { status: number }).status;
        stderr = String((e as { stderr: string }).stderr);
      }
      expect(status).toBe(2);
      const lines = stderr.trim().split("\n");
      expect(lines.length, stderr).toBe(1);
      expect(lines[0]).toMatch(/config\.json: rope_parameters\.rope_type = "longrope" is not supported/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(devices)("generation (%s)", (device) => {
  for (const name of ["qwen2-swa", "qwen3", "gemma2", "gemma3", "phi3", "olmo2", "gpt2-relu"] as const) {
    it(`${name}: greedy with the KV cache equals greedy without it and the full forward's argmax`, () => {
      const model = loadPretrained(modelDir(name), { device, dtype: "float32" });
      try {
        torch.tidy(() => {
          const prompt = torch.tensor([expected[name].ids[0]!.slice(0, 3)], { dtype: "int64" }).to(device);
          // 10 new tokens: past every fixture's sliding window, so the windowed cache masks are exercised.
          const a = model.generate(prompt, { maxNewTokens: 10, temperature: 0 });
          const b = model.generate(prompt, { maxNewTokens: 10, temperature: 0, useCache: false });
          expect(a.cpu().toArray()).toEqual(b.cpu().toArray());
          const full = torch.noGrad(() => model.forward(a).logits.argmax(-1));
          expect(full.cpu().toArray()[0].slice(2, 12)).toEqual(a.cpu().toArray()[0].slice(3, 13));
        });
      } finally {
        model.dispose();
      }
    });
  }
});

describe("export to Hugging Face format", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-families-"));
  const exported = ["qwen2-swa", "qwen3", "gemma2", "gemma3", "gemma3-v4", "phi3", "olmo2", "gpt2-silu"] as const;
  const ours: Record<string, number[]> = {};
  beforeAll(() => {
    for (const name of exported) {
      const model = loadPretrained(modelDir(name), { dtype: "float32" });
      try {
        // Gemma 2 in shards, so that the new families load through model.safetensors.index.json too.
        savePretrained(path.join(out, name), model, name === "gemma2" ? { maxShardBytes: 40_000 } : {});
        ours[name] = torch.tidy(() => Array.from(logitsOf(model, expected.gemma2.ids).toTypedArray() as Float32Array));
      } finally {
        model.dispose();
      }
    }
  });

  it("round-trips through savePretrained and loadPretrained exactly", () => {
    expect(weightFiles(path.join(out, "gemma2")).length).toBeGreaterThan(1);
    for (const name of exported) {
      const again = loadPretrained(path.join(out, name));
      try {
        expect(again.constructor).toBe(CLASS[name]);
        torch.tidy(() => expect(Array.from(logitsOf(again, expected.gemma2.ids).toTypedArray() as Float32Array)).toEqual(ours[name]));
      } finally {
        again.dispose();
      }
    }
  });

  it("transformers loads every exported folder with no missing or unexpected weights and the same logits", () => {
    const res = transformersView(expected.gemma2.ids, exported.map((n) => path.join(out, n)), out);
    for (const name of exported) {
      const r = res[path.join(out, name)]!;
      expect(r.missing, name).toEqual([]);
      expect(r.unexpected, name).toEqual([]);
      expect(r.modelType).toBe(expected[name].modelType);
      torch.tidy(() => expectLogits(torch.tensor(ours[name]!), r.logits, 1e-5, `${name} via transformers`));
    }
  }, 120_000);
});

describe("checks before allocating, and RoPE frequencies", () => {
  it("a config.json far larger than its weights is refused from the safetensors header, before allocation", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-oversized-"));
    try {
      for (const [src, patch] of [["gpt2", { n_embd: 8192, n_layer: 48, n_head: 64 }], ["gemma2", { hidden_size: 8192, num_hidden_layers: 48, intermediate_size: 32768, layer_types: undefined }]] as const) {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(dir);
        fs.copyFileSync(path.join(modelDir(src), "model.safetensors"), path.join(dir, "model.safetensors"));
        fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...readConfig(src), ...patch }));
        // 48 layers of 8192-wide matrices would take over 12 GB (float32): the refusal comes first.
        const t0 = Date.now();
        expect(() => loadPretrained(dir)).toThrow(/config\.json: does not match the weights: model\.safetensors holds \S+ as \[[\d, ]+\], the config gives \[[\d, ]+\]$/);
        expect(Date.now() - t0).toBeLessThan(2000);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("inverse frequencies equal transformers' float32 computation bit for bit (default, linear, llama3 at real sizes)", () => {
    const script = [
      "import json",
      "from transformers import LlamaConfig",
      "from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding",
      "out = {}",
      "for name, rp in [('default', {'rope_type': 'default', 'rope_theta': 500000.0}),",
      "                 ('linear', {'rope_type': 'linear', 'rope_theta': 10000.0, 'factor': 4.0}),",
      "                 ('llama3', {'rope_type': 'llama3', 'rope_theta': 500000.0, 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192})]:",
      "    c = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_parameters=rp)",
      "    out[name] = LlamaRotaryEmbedding(c).inv_freq.tolist()",
      "print(json.dumps(out))",
    ].join("\n");
    const ref = JSON.parse(execFileSync("python3", ["-c", script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })) as Record<string, number[]>;
    const ropes = {
      default: { type: "default" as const, theta: 500000, partialRotaryFactor: 1 },
      linear: { type: "linear" as const, theta: 10000, partialRotaryFactor: 1, factor: 4 },
      llama3: { type: "llama3" as const, theta: 500000, partialRotaryFactor: 1, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    };
    for (const [name, rope] of Object.entries(ropes)) {
      const got = Array.from(inverseFrequencies(rope, 128));
      expect(got.length).toBe(64);
      expect(got, name).toEqual(ref[name]!.map((v) => Math.fround(v)));
    }
  }, 60_000);
});
