// Pre-trained Hugging Face checkpoints: random tiny gpt2, gpt_neox, llama, mistral and qwen2 models
// written by transformers (scripts/oracle/pretrained_make.py), with transformers' float64 logits.
// Loading, the logits (within 1e-4 relative), dtypes, names, hook points, generation, and config
// errors that name the field. Export: pretrained-export.test.ts; analysis: pretrained-analysis.test.ts.

import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";
import type { Device, Tensor } from "../lib/torch/index.js";
import { readSafetensorsHeader } from "../lib/torch/safetensors.js";
import { loadPretrained, architectureOf, Llama } from "../lib/models/hf.js";
import type { PretrainedModel } from "../lib/models/hf.js";
import { weightFiles } from "../lib/models/hf-weights.js";
import { llamaConfigFromHF } from "../lib/models/llama.js";
import { inverseFrequencies } from "../lib/models/rope.js";
import { GPT2 } from "../lib/models/gpt2.js";
import { expectLogits } from "./helpers/close.js";
import { modelDir, readExpected } from "./helpers/pretrained.js";

const NAMES = ["gpt2", "neox-par", "neox-seq", "llama", "llama-v4", "mistral", "qwen2"] as const;
const devices: Device[] = ["cpu", ...(torch.cuda.isAvailable() ? (["cuda"] as Device[]) : [])];

const expected = readExpected(NAMES);


function idsTensor(ids: number[][], device: Device = "cpu"): Tensor {
  return torch.tensor(ids, { dtype: "int64" }).to(device);
}

function logitsOf(model: PretrainedModel, ids: number[][], device: Device = "cpu"): Tensor {
  return torch.noGrad(() => model.forward(idsTensor(ids, device)).logits);
}

describe.each(devices)("logits agree with transformers within 1e-4 relative (%s)", (device) => {
  for (const name of NAMES) {
    it(`${name}`, () => {
      const e = expected[name];
      const model = loadPretrained(modelDir(name), { device, dtype: "float32" });
      try {
        expect(model.training).toBe(false);
        expect(model.numParameters()).toBe(e.numParameters);
        torch.tidy(() => {
          const logits = logitsOf(model, e.ids, device);
          expect(logits.shape).toEqual(e.logitsShape);
          expect(logits.device.startsWith(device)).toBe(true);
          expectLogits(logits, e.logits, 1e-4, name);
        });
      } finally {
        model.dispose();
      }
    });
  }
});

describe("architectures and weights", () => {
  it("dispatches on model_type and reads transformers-4 and -5 configs alike", () => {
    const kinds = NAMES.map((n) => architectureOf(JSON.parse(fs.readFileSync(path.join(modelDir(n), "config.json"), "utf8"))).kind);
    expect(kinds).toEqual(["gpt2", "gpt_neox", "gpt_neox", "llama", "llama", "llama", "llama"]);
    const v4 = JSON.parse(fs.readFileSync(path.join(modelDir("neox-seq"), "config.json"), "utf8"));
    expect(v4.rope_parameters).toBeUndefined(); // the fixture really is transformers-4 style
    expect(v4.rotary_pct).toBe(0.5);
    const a = architectureOf(v4);
    expect(a.kind === "gpt_neox" && a.config.rope).toEqual({ type: "default", theta: 1000, partialRotaryFactor: 0.5 });
    const l4 = architectureOf(JSON.parse(fs.readFileSync(path.join(modelDir("llama-v4"), "config.json"), "utf8")));
    expect(l4.kind === "llama" && l4.config.rope).toEqual({ type: "linear", theta: 5000, partialRotaryFactor: 1, factor: 2 });
    const l5 = architectureOf(JSON.parse(fs.readFileSync(path.join(modelDir("llama"), "config.json"), "utf8")));
    expect(l5.kind === "llama" && l5.config.rope.type).toBe("llama3");
    expect(l5.kind === "llama" && [l5.config.nHead, l5.config.nKVHead, l5.config.tieWordEmbeddings]).toEqual([4, 2, false]);
  });

  it("llama3 inverse frequencies match the transformers formula at the three wavelength regimes", () => {
    const rope = { type: "llama3" as const, theta: 500000, partialRotaryFactor: 1, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 };
    const inv = inverseFrequencies(rope, 12);
    const base = inverseFrequencies({ type: "default", theta: 500000, partialRotaryFactor: 1 }, 12);
    // wavelength 2*pi/f: < 2 kept, > 8 divided by the factor, between blended.
    for (let i = 0; i < inv.length; i++) {
      const wl = (2 * Math.PI) / base[i]!;
      if (wl < 2) expect(inv[i]).toBeCloseTo(base[i]!, 6);
      else if (wl > 8) expect(inv[i]! / (base[i]! / 8)).toBeCloseTo(1, 6);
      else {
        const s = (8 / wl - 1) / 3;
        expect(inv[i]! / ((1 - s) * (base[i]! / 8) + s * base[i]!)).toBeCloseTo(1, 6);
      }
    }
  });

  it("reads sharded checkpoints through model.safetensors.index.json", () => {
    expect(fs.existsSync(path.join(modelDir("llama"), "model.safetensors.index.json"))).toBe(true);
    expect(weightFiles(modelDir("llama")).length).toBeGreaterThan(1);
  });

  it("parameter names are the checkpoint's (state dicts round-trip)", () => {
    for (const name of ["neox-par", "llama", "llama-v4", "qwen2"] as const) {
      const model = loadPretrained(modelDir(name), { dtype: "float32" });
      try {
        const fileNames = weightFiles(modelDir(name)).flatMap((f) => readSafetensorsHeader(f).entries.map((e) => e.name)).sort();
        expect(Object.keys(model.stateDict()).sort(), name).toEqual(fileNames);
      } finally {
        model.dispose();
      }
    }
  });

  it("loads weights in their stored dtype by default, or cast to the dtype asked for", () => {
    const cases: Array<[string, string]> = [["neox-seq", "bfloat16"], ["llama-v4", "float16"], ["llama", "float32"]];
    for (const [name, stored] of cases) {
      expect(expected[name as "llama"].storedDtype).toBe(stored);
      const native = loadPretrained(modelDir(name));
      try {
        for (const p of native.parameters()) expect(p.dtype).toBe(stored);
        // Half-precision activations: agreement at half precision.
        torch.tidy(() => expectLogits(logitsOf(native, expected[name as "llama"].ids), expected[name as "llama"].logits, stored === "float32" ? 1e-4 : 3e-2, `${name} ${stored}`));
      } finally {
        native.dispose();
      }
    }
    const cast = loadPretrained(modelDir("neox-par"), { dtype: "bfloat16" });
    try {
      for (const p of cast.parameters()) expect(p.dtype).toBe("bfloat16");
    } finally {
      cast.dispose();
    }
  });

  it("exposes GPT-2's hook-point names and interface", () => {
    const model = loadPretrained(modelDir("llama"), { dtype: "float32" }) as Llama;
    const gpt2 = loadPretrained(modelDir("gpt2")) as GPT2;
    try {
      expect(model).toBeInstanceOf(Llama);
      expect(gpt2).toBeInstanceOf(GPT2);
      expect([...model.hookPoints().keys()].sort()).toEqual([...gpt2.hookPoints().keys()].sort());
      expect(model.config.nLayer).toBe(3);
      expect(model.config.nEmbd).toBe(48);
      expect(model.config.nPositions).toBe(64);
      // hook_q / hook_k are [B, H, T, D] (keys repeated over the query heads of their group); h^0 is the embedding.
      const seen = new Map<string, number[]>();
      const points = model.hookPoints();
      for (const n of ["blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.hook_resid_pre"]) {
        points.get(n)!.setHook((x) => (seen.set(n, x.shape), x));
      }
      torch.tidy(() => {
        const ids = idsTensor(expected.llama.ids);
        let h0: number[] = [];
        points.get("blocks.0.hook_resid_pre")!.setHook((x) => {
          h0 = Array.from(x.sub(model.embed(ids)).abs().max().toTypedArray() as Float32Array);
          return x;
        });
        const { loss } = model.forward(ids, { targets: ids });
        expect(loss!.dtype).toBe("float32");
        expect(h0).toEqual([0]);
      });
      for (const hp of points.values()) hp.setHook(null);
      expect(seen.get("blocks.0.attn.hook_q")).toEqual([2, 4, 11, 12]);
      expect(seen.get("blocks.0.attn.hook_k")).toEqual([2, 4, 11, 12]);
    } finally {
      model.dispose();
      gpt2.dispose();
    }
  });

  it("a model built from a config trains from scratch (loss near log V at init, gradients flow)", () => {
    const cfg = llamaConfigFromHF(JSON.parse(fs.readFileSync(path.join(modelDir("llama"), "config.json"), "utf8")));
    torch.manualSeed(0);
    const model = new Llama(cfg);
    try {
      torch.tidy(() => {
        const ids = torch.randint(0, cfg.vocabSize, [2, 9]);
        const { loss } = model.forward(ids, { targets: ids });
        expect(Math.abs(loss!.item() - Math.log(cfg.vocabSize))).toBeLessThan(0.5);
        loss!.backward();
      });
      for (const p of model.parameters()) expect(p.grad, "every parameter gets a gradient").not.toBeNull();
      model.zeroGrad();
    } finally {
      model.dispose();
    }
  });
});

describe.each(devices)("generation (%s)", (device) => {
  for (const name of ["llama", "neox-par", "mistral"] as const) {
    it(`${name}: greedy with the KV cache equals greedy without it and argmax of the full forward`, () => {
      const model = loadPretrained(modelDir(name), { device, dtype: "float32" });
      try {
        torch.tidy(() => {
          const prompt = idsTensor([expected[name].ids[0]!.slice(0, 3)], device);
          // 10 new tokens: longer than mistral's sliding window of 5, so the windowed mask is exercised.
          const a = model.generate(prompt, { maxNewTokens: 10, temperature: 0 });
          const b = model.generate(prompt, { maxNewTokens: 10, temperature: 0, useCache: false });
          expect(a.shape).toEqual([1, 13]);
          expect(a.cpu().toArray()).toEqual(b.cpu().toArray());
          const full = torch.noGrad(() => model.forward(a).logits.argmax(-1));
          expect(full.cpu().toArray()[0].slice(2, 12)).toEqual(a.cpu().toArray()[0].slice(3, 13));
          const s1 = model.generate(prompt, { maxNewTokens: 3, temperature: 1, topK: 10, seed: 7 });
          const s2 = model.generate(prompt, { maxNewTokens: 3, temperature: 1, topK: 10, seed: 7 });
          expect(s1.cpu().toArray()).toEqual(s2.cpu().toArray());
        });
      } finally {
        model.dispose();
      }
    });
  }
});

describe("clear errors", () => {
  const base = JSON.parse(fs.readFileSync(path.join(modelDir("llama"), "config.json"), "utf8")) as Record<string, unknown>;
  const neox = JSON.parse(fs.readFileSync(path.join(modelDir("neox-par"), "config.json"), "utf8")) as Record<string, unknown>;
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["unknown model_type", { ...base, model_type: "bert" }, /^config\.json: model_type "bert" is not supported \(supported: gpt2, gpt_neox, llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3, olmo2\)$/],
    ["rope type (5.x)", { ...base, rope_parameters: { rope_type: "yarn", rope_theta: 1e4, factor: 2 } }, /rope_parameters\.rope_type = "yarn" is not supported/],
    ["rope type (4.x)", { ...base, rope_scaling: { type: "dynamic", factor: 2 } }, /rope_scaling\.type = "dynamic" is not supported/],
    ["llama3 without factors", { ...base, rope_parameters: { rope_type: "llama3", rope_theta: 1e4, factor: 8 } }, /rope_parameters\.low_freq_factor must be a positive number/],
    ["partial rotary on llama", { ...base, partial_rotary_factor: 0.5 }, /partial_rotary_factor = 0\.5 is not supported/],
    ["activation", { ...base, hidden_act: "quick_gelu" }, /hidden_act = "quick_gelu" is not supported/],
    ["kv heads", { ...base, num_key_value_heads: 3 }, /num_key_value_heads \(3\) must divide num_attention_heads \(4\)/],
    ["hidden size", { ...base, hidden_size: -4 }, /hidden_size must be a positive integer/],
    ["tie flag type", { ...base, tie_word_embeddings: "yes" }, /tie_word_embeddings must be true or false/],
    ["neox rotary_pct", { ...neox, rope_parameters: null, rotary_pct: 1.5 }, /rotary_pct must be in \(0, 1\]/],
    ["neox parallel flag", { ...neox, use_parallel_residual: 1 }, /use_parallel_residual must be true or false/],
  ];
  for (const [what, cfg, re] of cases) {
    it(`config.json: ${what}`, () => {
      expect(() => architectureOf(cfg)).toThrow(re);
    });
  }

  it("weights that do not fit config.json, and folders without weights", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-pretrained-bad-"));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...base, hidden_size: 64 }));
    expect(() => loadPretrained(dir)).toThrow(/neither model\.safetensors nor model\.safetensors\.index\.json/);
    for (const f of fs.readdirSync(modelDir("llama"))) if (f.endsWith(".safetensors") || f.endsWith(".json") && f !== "config.json") fs.copyFileSync(path.join(modelDir("llama"), f), path.join(dir, f));
    // Refused from the safetensors header, before the model is allocated.
    expect(() => loadPretrained(dir)).toThrow(/config\.json: does not match the weights: model-00001-of-\d+\.safetensors holds model\.embed_tokens\.weight as \[97, 48\], the config gives \[97, 64\]$/);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...base, tie_word_embeddings: true }));
    expect(() => loadPretrained(dir)).not.toThrow(); // the file's lm_head.weight is ignored when tied
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...base, num_hidden_layers: 2 }));
    expect(() => loadPretrained(dir)).toThrow(/does not match the weights: the weights have tensors the config does not: model\.layers\.2\./);
    expect(() => loadPretrained(path.join(dir, "nope"))).toThrow(/has no config\.json/);
    expect(() => loadPretrained(modelDir("llama"), { dtype: "int64" as never })).toThrow(/dtype must be one of/);
  });
});
