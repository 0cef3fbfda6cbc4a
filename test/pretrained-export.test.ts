// Export of LLaMA-family and GPT-NeoX models to Hugging Face format (config.json + safetensors,
// sharded when asked): our loader reads them back exactly, and transformers
// (scripts/oracle/pretrained_check.py) loads them with no missing or unexpected weights and the
// same logits.

import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";
import type { Tensor } from "../lib/torch/index.js";
import { loadPretrained, savePretrained, Llama, GPTNeoX } from "../lib/models/hf.js";
import type { PretrainedModel } from "../lib/models/hf.js";
import { expectLogits } from "./helpers/close.js";
import { transformersView } from "./helpers/pretrained.js";

const FIX = path.join(__dirname, "fixtures", "pretrained");
const modelDir = (n: string) => path.join(FIX, n, "model");
const expected = Object.fromEntries(
  ["llama", "llama-v4", "neox-seq", "neox-par", "mistral", "qwen2"].map((n) => [n, JSON.parse(fs.readFileSync(path.join(FIX, n, "expected.json"), "utf8")) as { ids: number[][]; modelType: string }]),
);

function logitsOf(model: PretrainedModel, ids: number[][]): Tensor {
  return torch.noGrad(() => model.forward(torch.tensor(ids, { dtype: "int64" })).logits);
}


describe("export to Hugging Face format", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-pretrained-"));
  const exported = ["llama", "llama-v4", "neox-seq", "qwen2"] as const;
  const ours: Record<string, number[]> = {};
  beforeAll(() => {
    for (const name of exported) {
      const model = loadPretrained(modelDir(name), { dtype: "float32" });
      try {
        // A small shard limit for one of them, so the sharded layout is written too.
        savePretrained(path.join(out, name), model, { maxShardBytes: name === "llama" ? 50_000 : undefined, extraConfig: { innerloop: { note: "test" } } });
        ours[name] = torch.tidy(() => Array.from(logitsOf(model, expected[name]!.ids).toTypedArray() as Float32Array));
      } finally {
        model.dispose();
      }
    }
  });

  it("round-trips through savePretrained and loadPretrained exactly", () => {
    expect(fs.existsSync(path.join(out, "llama", "model.safetensors.index.json"))).toBe(true);
    for (const name of exported) {
      const again = loadPretrained(path.join(out, name));
      try {
        expect(again.constructor).toBe(name.startsWith("neox") ? GPTNeoX : Llama);
        torch.tidy(() => expect(Array.from(logitsOf(again, expected[name]!.ids).toTypedArray() as Float32Array)).toEqual(ours[name]));
      } finally {
        again.dispose();
      }
    }
  });

  it("transformers loads every exported folder with no missing or unexpected weights and the same logits", () => {
    const res = transformersView(expected.llama!.ids, exported.map((n) => path.join(out, n)), out);
    for (const name of exported) {
      const r = res[path.join(out, name)]!;
      expect(r.missing, name).toEqual([]);
      expect(r.unexpected, name).toEqual([]);
      expect(r.modelType).toBe(expected[name]!.modelType);
      // Same ids for all: compare with our logits of the exported model on those ids.
      const model = loadPretrained(path.join(out, name));
      try {
        torch.tidy(() => expectLogits(logitsOf(model, expected.llama!.ids), r.logits, 1e-4, `${name} via transformers`));
      } finally {
        model.dispose();
      }
    }
  });

  it("refuses extra config fields that contradict the model", () => {
    const model = loadPretrained(modelDir("qwen2"));
    try {
      expect(() => savePretrained(path.join(out, "bad"), model, { extraConfig: { hidden_size: 7 } })).toThrow(/extraConfig\.hidden_size/);
    } finally {
      model.dispose();
    }
  });
});

