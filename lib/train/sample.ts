/**
 * Text generation from a run directory or a Hugging Face model folder (GPT-2,
 * GPT-NeoX, LLaMA family): the model, its tokenizer, and its `generate` (KV
 * cache, temperature, top-k, seed).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { torch, type Device } from "../torch/index.js";
import { readHFConfig } from "../models/index.js";
import { ConfigError } from "../models/errors.js";
import { architectureOf, loadPretrained } from "../models/hf.js";
import { encodeText, loadHfTokenizer, tokenizerFromJSON, type Tokenizer } from "../data/index.js";
import { Gpt2Tokenizer } from "../data/gpt2.js";
import { recoverRunDir } from "./checkpoint.js";

export interface SampleTextOptions {
  modelDir: string;
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  seed: number;
  device: Device;
  /** Drop prompt characters the tokenizer lacks instead of refusing the prompt. */
  skipUnknown?: boolean;
}

/**
 * The tokenizer of a model folder: the one saved with an innerloop run (config.json
 * `innerloop.tokenizer`), else the folder's tokenizer.json, else GPT-2 BPE for a GPT-2 vocabulary.
 */
export function runTokenizer(modelDir: string, hfConfig: Record<string, unknown> = readHFConfig(modelDir)): Tokenizer {
  const ours = (hfConfig.innerloop as { tokenizer?: unknown } | undefined)?.tokenizer;
  if (ours !== undefined) {
    try {
      return tokenizerFromJSON(ours);
    } catch (e) {
      // The saved tokenizer is part of config.json: a bad one is that file's fault, not the run's.
      const problem = (e as Error).message.replace(/^[\w.]+: /, "");
      throw new ConfigError(path.join(modelDir, "config.json"), "innerloop.tokenizer", `is not a usable tokenizer: ${problem}`);
    }
  }
  const hf = loadHfTokenizer(modelDir);
  if (hf !== null) return hf;
  if (hfConfig.model_type === "gpt2" && typeof hfConfig.vocab_size === "number" && hfConfig.vocab_size >= 50257) return new Gpt2Tokenizer();
  throw new Error(`${path.join(modelDir, "config.json")} names no tokenizer (innerloop.tokenizer), there is no tokenizer.json beside it, and it is not a GPT-2 vocabulary`);
}

/** The prompt followed by `maxNewTokens` generated tokens, decoded. */
export function sampleText(o: SampleTextOptions): string {
  if (!fs.existsSync(o.modelDir)) throw new Error(`model directory ${o.modelDir} does not exist`);
  recoverRunDir(o.modelDir);
  if (o.device.startsWith("cuda") && !torch.cuda.isAvailable()) throw new Error(`device ${o.device}: CUDA is not available on this machine`);
  const hf = readHFConfig(o.modelDir);
  // The model's fields first: a bad config.json is reported as such, before the tokenizer is looked for.
  architectureOf(hf, path.join(o.modelDir, "config.json"));
  const tokenizer = runTokenizer(o.modelDir, hf);
  let promptIds: Int32Array;
  try {
    promptIds = encodeText(tokenizer, o.prompt, { skipUnknown: o.skipUnknown }).ids;
  } catch (e) {
    throw new Error(`--prompt: ${(e as Error).message} (pass --skip-unknown to skip such characters)`);
  }
  if (promptIds.length === 0) throw new Error("the prompt encodes to no tokens; give at least one character");
  const model = loadPretrained(o.modelDir, { device: o.device });
  try {
    const ids = torch.tidy(() => {
      const input = torch.tensor(BigInt64Array.from(promptIds, (v) => BigInt(v)), { dtype: "int64" }).view([1, promptIds.length]).to(o.device);
      const out = model.generate(input, {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topK: o.topK,
        seed: o.seed,
        vocabLimit: Math.min(tokenizer.vocabSize, model.config.vocabSize),
      });
      return out.view([-1]).cpu().toTypedArray() as BigInt64Array;
    });
    return tokenizer.decode(ids);
  } finally {
    model.dispose();
  }
}
