// `innerloop analyze` as a function: load a model directory and a token stream, analyse, write
// OUT/analysis.json and the CSVs.

import * as fs from "node:fs";
import * as path from "node:path";
import { torch } from "../torch/index.js";
import type { Device, DType } from "../torch/index.js";
import { readHFConfig } from "../models/index.js";
import { loadPretrained } from "../models/hf.js";
import { readMobyDick, readTextCorpus, encodeText, DEFAULT_CORPUS } from "../data/index.js";
import { runTokenizer } from "../train/sample.js";
import { recoverRunDir } from "../train/checkpoint.js";
import { analyzeModel } from "./analyze.js";
import type { AnalysisModel } from "./adapter.js";
import { writeAnalysis } from "./files.js";
import type { AnalysisResult } from "./result.js";
import { arrayTokenStream, binTokenStream, type TokenStream } from "./windows.js";

export interface AnalyzeDirOptions {
  modelDir: string;
  /** A `.bin` file of uint16 ids, a text file or folder (tokenized with the model's tokenizer), or 'moby-dick'. */
  data: string;
  seqLen?: number;
  batchSize: number;
  maxWindows?: number;
  device?: Device;
  dtype?: DType;
  outDir: string;
  topK?: number;
  freqBuckets?: number;
  log?: (msg: string) => void;
  /** Drop characters the model's tokenizer lacks (counted in meta.unknownSkipped) instead of refusing the text. */
  skipUnknown?: boolean;
}

/** Opens `data` as a token stream for the model in `modelDir`. */
export function openTokens(
  data: string,
  modelDir: string,
  opts: { skipUnknown?: boolean } = {},
): { stream: TokenStream; kind: string; unknownSkipped: number; close(): void } {
  if (data !== DEFAULT_CORPUS && !fs.existsSync(data)) throw new Error(`--data ${data}: no such file or folder`);
  if (data.endsWith(".bin")) {
    const s = binTokenStream(data);
    return { stream: s, kind: "uint16 .bin", unknownSkipped: 0, close: () => s.close() };
  }
  const text = data === DEFAULT_CORPUS ? readMobyDick() : readTextCorpus(data);
  const tok = runTokenizer(modelDir);
  let encoded;
  try {
    encoded = encodeText(tok, text, opts);
  } catch (e) {
    throw new Error(`--data ${data}: ${(e as Error).message} (pass --skip-unknown to skip such characters)`);
  }
  return { stream: arrayTokenStream(encoded.ids), kind: `text, ${tok.kind} tokenizer`, unknownSkipped: encoded.skipped, close: () => {} };
}

export function checkDevice(device: Device | undefined): Device {
  const d = device ?? "cpu";
  if (d.startsWith("cuda") && !torch.cuda.isAvailable()) throw new Error(`--device ${d}: CUDA is not available on this machine`);
  return d;
}

export function analyzeDir(o: AnalyzeDirOptions): AnalysisResult {
  if (!fs.existsSync(path.join(o.modelDir, "config.json"))) throw new Error(`--model ${o.modelDir}: no config.json (expected an innerloop run directory or a Hugging Face model folder: gpt2, gpt_neox, llama, mistral, qwen2)`);
  const device = checkDevice(o.device);
  recoverRunDir(o.modelDir);
  const hf = readHFConfig(o.modelDir);
  // float32 unless asked: the analysis measures small differences (half-precision checkpoints are cast).
  const model = loadPretrained(o.modelDir, { device, dtype: o.dtype ?? "float32" });
  const src = openTokens(o.data, o.modelDir, { skipUnknown: o.skipUnknown });
  try {
    const seqLen = o.seqLen ?? Math.min(model.config.nPositions, 1024);
    const t0 = performance.now();
    const result = analyzeModel(model as unknown as AnalysisModel, src.stream, {
      seqLen,
      batchSize: o.batchSize,
      maxWindows: o.maxWindows,
      device,
      topK: o.topK,
      freqBuckets: o.freqBuckets,
      onProgress: (done, total) => o.log?.(`analysed ${done}/${total} windows`),
    });
    result.meta = {
      model: path.resolve(o.modelDir),
      modelType: hf.model_type,
      data: o.data === DEFAULT_CORPUS ? o.data : path.resolve(o.data),
      dataKind: src.kind,
      unknownSkipped: src.unknownSkipped,
      device,
      dtype: o.dtype ?? "float32",
      batchSize: o.batchSize,
      seconds: (performance.now() - t0) / 1000,
      innerloop: torch.version.innerloop,
      libtorch: torch.version.libtorch,
    };
    writeAnalysis(o.outDir, result);
    return result;
  } finally {
    src.close();
    model.dispose();
  }
}
