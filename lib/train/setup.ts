/**
 * What a Trainer starts from: the configuration, the model, the data, the optimizer and the
 * sampler of a new run, or of a run resumed from its last checkpoint.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { torch } from "../torch/index.js";
import { AdamW, weightDecayGroups } from "../optim/index.js";
import { loadPretrained, readHFConfig } from "../models/index.js";
import { ConfigError } from "../models/errors.js";
import { HfTokenizer, tokenizerFromJSON, type Tokenizer, type TokenizerJSON } from "../data/index.js";
import { configProblems, resolveConfig, type TrainConfig } from "./config.js";
import { loadRunData, type BatchSampler, type RunData } from "./data.js";
import { describeData, openTrainData } from "./open-data.js";
import { createModel, modelVocabSize, type TrainModel } from "./model.js";
import { readCheckpoint } from "./state.js";
import { hasCheckpoint } from "./checkpoint.js";
import type { TrainerOptions } from "./trainer.js";

export interface RunParts {
  config: TrainConfig;
  model: TrainModel;
  data: RunData;
  optimizer: AdamW;
  sampler: BatchSampler;
  step: number;
  /** A Hugging Face tokenizer's folder, copied into every checkpoint. */
  tokenizerDir?: string;
}

/** Data given to the Trainer are recorded as `<...>` in config.data: a resume needs them again. */
const isGivenData = (d: string) => d.startsWith("<");

/** How a tokenizer is named in the configuration. */
function tokenizerName(t: Tokenizer): string {
  return t instanceof HfTokenizer ? path.join(t.dir, "tokenizer.json") : t.kind;
}

/**
 * The tokenizer of a pretrained folder, as the configuration names it: its tokenizer.json, or
 * GPT-2's BPE for a GPT-2 vocabulary; null when it has neither.
 */
export function initTokenizer(dir: string): string | null {
  if (fs.existsSync(path.join(dir, "tokenizer.json"))) return path.join(dir, "tokenizer.json");
  const hf = readHFConfig(dir);
  return hf.model_type === "gpt2" && typeof hf.vocab_size === "number" && hf.vocab_size >= 50257 ? "gpt2" : null;
}

function checkDevice(c: TrainConfig): void {
  if (c.device.startsWith("cuda")) {
    if (!torch.cuda.isAvailable()) throw new Error(`device ${c.device}: CUDA is not available on this machine (use --device cpu)`);
    const idx = c.device === "cuda" ? 0 : Number(c.device.slice(5));
    const n = torch.cuda.deviceCount();
    if (idx >= n) throw new RangeError(`device ${c.device}: this machine has ${n} CUDA device${n === 1 ? "" : "s"} (cuda:0${n > 1 ? `..cuda:${n - 1}` : ""})`);
  }
  if (c.dtype === "bfloat16" && !c.device.startsWith("cuda")) throw new RangeError(`dtype bfloat16 needs a CUDA device (device is ${c.device})`);
}

function makeOptimizer(model: TrainModel, c: TrainConfig): AdamW {
  return new AdamW(weightDecayGroups(model.parameters(), c.weightDecay), {
    lr: c.lr,
    betas: [0.9, 0.95],
    eps: 1e-8,
    // A captured step reads its step counts and learning rate from the device.
    capturable: c.cudaGraph === true,
  });
}

/** A model given by the caller goes to the run's device; its context must hold a window. */
function prepareModel(model: TrainModel, c: TrainConfig): TrainModel {
  if (typeof (model as { forward?: unknown }).forward !== "function" || typeof model.parameters !== "function") {
    throw new TypeError("Trainer: model must be a Module with forward(ids, { targets }) -> { logits, loss }");
  }
  const first = model.parameters()[0];
  if (first === undefined) throw new TypeError("Trainer: model has no parameters to train");
  if (first.device !== c.device) model.to({ device: c.device });
  const nPositions = (model as { config?: { nPositions?: unknown } }).config?.nPositions;
  if (typeof nPositions === "number" && c.seqLen > nPositions) {
    throw new RangeError(`seqLen (${c.seqLen}) exceeds the model's context length (${nPositions})`);
  }
  return model;
}

/** Evaluation and analysis snapshots need held-out tokens of at least one window. */
function checkHeldOut(c: TrainConfig, data: RunData): void {
  const need = c.seqLen + 1;
  const val = data.val?.length ?? 0;
  if (c.evalEvery > 0 && val < need) throw new RangeError(`evaluation (evalEvery ${c.evalEvery}) needs at least ${need} held-out tokens, the run has ${val} (give valData, or set evalEvery 0)`);
  if (c.analyzeEvery > 0 && val < need) throw new RangeError(`analysis snapshots (analyzeEvery ${c.analyzeEvery}) need at least ${need} held-out tokens, the run has ${val}`);
  if (data.train !== null && data.train.length < need) throw new RangeError(`data: the training split has ${data.train.length} tokens, fewer than one window of seqLen + 1 = ${need}`);
}

/**
 * The model's vocabulary and the configured one must agree, and text encoded with the tokenizer
 * must fit it (token files are checked id by id as they are read: a tokenizer larger than the
 * model is fine when the ids in the file stay below the model's vocabulary).
 */
function checkVocab(c: TrainConfig, model: TrainModel | undefined, tokenizer: Tokenizer | null): number | undefined {
  const mv = model === undefined ? undefined : modelVocabSize(model);
  if (mv !== undefined && c.vocabSize !== undefined && c.vocabSize !== mv) {
    throw new RangeError(`vocabSize (${c.vocabSize}) differs from the model's vocabulary (${mv})`);
  }
  const vocab = c.vocabSize ?? mv;
  const text = !c.data.endsWith(".bin") && !isGivenData(c.data) && !fs.existsSync(path.join(c.data, "train.bin"));
  if (text && tokenizer !== null && vocab !== undefined && tokenizer.vocabSize > vocab) {
    throw new RangeError(`the ${tokenizer.kind} tokenizer's vocabulary (${tokenizer.vocabSize}) does not fit the model's (${vocab})`);
  }
  return vocab;
}

export function newRunParts(opts: TrainerOptions): RunParts {
  if (opts.config === undefined && opts.model === undefined && opts.data === undefined) {
    throw new TypeError("Trainer: config is required for a new run (or model and data)");
  }
  if (hasCheckpoint(opts.runDir)) throw new Error(`${opts.runDir} already holds a run; resume it or choose another run directory`);
  const config = resolveConfig(opts.config ?? {});
  const given = opts.data !== undefined;
  if (given) config.data = describeData(opts.data!);
  if (opts.tokenizer !== undefined) config.tokenizer = tokenizerName(opts.tokenizer);
  else if (given) config.tokenizer = null;
  if (opts.model !== undefined && config.init !== undefined) throw new TypeError("Trainer: give model or config.init, not both");
  const problems = configProblems(config, { dataGiven: given });
  if (problems.length > 0) throw new RangeError(`training config: ${problems[0]}`);
  checkDevice(config);
  torch.manualSeed(config.seed);
  let model: TrainModel | undefined = opts.model;
  if (config.init !== undefined) model = loadPretrained(config.init, { device: config.device, dtype: "float32" }) as TrainModel;
  if (model !== undefined) prepareModel(model, config);
  try {
    const tokenizer = opts.tokenizer ?? null;
    const vocab = checkVocab(config, model, tokenizer);
    // A given or pretrained model fixes the vocabulary: recorded, so that a resume reads the data alike.
    if (model !== undefined && vocab !== undefined) config.vocabSize = vocab;
    const data = given
      ? openTrainData(opts.data!, { batchSize: config.batchSize, seqLen: config.seqLen, vocabSize: vocab, tokenizer, valData: opts.valData, binDType: config.binDtype })
      : loadRunData({ ...config, vocabSize: vocab });
    if (!given) checkVocab(config, model, data.tokenizer);
    if (model === undefined && data.modelVocabSize === 0) throw new RangeError("Trainer: the model's vocabulary is unknown: give config.vocabSize or a tokenizer");
    checkHeldOut(config, data);
    model ??= createModel(config, data.modelVocabSize);
    return { config, model, data, optimizer: makeOptimizer(model, config), sampler: data.trainSampler(config.seed), step: 0, tokenizerDir: hfDir(data.tokenizer) };
  } catch (e) {
    if (config.init !== undefined) model?.dispose();
    throw e;
  }
}

function hfDir(t: Tokenizer | null): string | undefined {
  return t instanceof HfTokenizer ? t.dir : undefined;
}

export function resumeParts(opts: TrainerOptions): RunParts {
  if (!hasCheckpoint(opts.runDir)) throw new Error(`${opts.runDir} holds no complete checkpoint to resume from`);
  const saved = readCheckpoint(opts.runDir);
  const config: TrainConfig = { ...saved.state.config };
  for (const [k, v] of Object.entries(opts.overrides ?? {})) if (v !== undefined) (config as unknown as Record<string, unknown>)[k] = v;
  const given = opts.data !== undefined;
  const problems = configProblems(config, { dataGiven: isGivenData(config.data) });
  // The saved settings are the file's, not the caller's: a bad one is a ConfigError naming the file.
  if (problems.length > 0) throw new ConfigError(`${opts.runDir}/trainer_state.json`, undefined, `config.${problems[0]}`);
  if (config.steps < saved.state.step) {
    throw new RangeError(`steps (${config.steps}) is below the step the run reached (${saved.state.step})`);
  }
  if (isGivenData(config.data) && !given) throw new TypeError(`${opts.runDir} was trained on data given to the Trainer (${config.data}): pass the same data to resume`);
  checkDevice(config);
  // A Hugging Face tokenizer was copied into the run directory with every checkpoint.
  const savedTok: TokenizerJSON | null = saved.state.tokenizer?.kind === "hf" ? { kind: "hf", dir: path.resolve(opts.runDir) } : saved.state.tokenizer;
  const tokenizer = opts.tokenizer ?? (given && savedTok !== null ? tokenizerFromJSON(savedTok) : null);
  const data = given
    ? openTrainData(opts.data!, { batchSize: config.batchSize, seqLen: config.seqLen, vocabSize: config.vocabSize, tokenizer, valData: opts.valData, binDType: config.binDtype })
    : loadRunData(config, savedTok);
  try {
    if (data.trainTokens !== saved.state.data.trainTokens || data.valTokens !== saved.state.data.valTokens) {
      throw new Error(
        `the data at ${config.data} is not the data this run was trained on ` +
          `(${data.trainTokens}/${data.valTokens} train/val tokens now, ${saved.state.data.trainTokens}/${saved.state.data.valTokens} then)`,
      );
    }
    const model = saved.loadModel(config.device, opts.model === undefined ? undefined : prepareModel(opts.model, config));
    const optimizer = makeOptimizer(model, config);
    saved.loadOptimizer(optimizer, config.device);
    const sampler = data.trainSampler(config.seed);
    sampler.setState(saved.state.sampler);
    saved.restoreRng(config.device);
    return { config, model, data, optimizer, sampler, step: saved.state.step, tokenizerDir: hfDir(data.tokenizer) };
  } catch (e) {
    data.close();
    throw e;
  }
}
