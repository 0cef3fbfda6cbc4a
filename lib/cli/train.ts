/**
 * `innerloop train`: parses and validates the flags (and `--config FILE`),
 * merges them over the defaults and a preset, and hands the result to the
 * trainer in lib/train.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { registerCommand, flagBoolean, flagNumber, flagString } from "./commands.js";
import { UsageError } from "./errors.js";
import { checkDataPath } from "./data-flag.js";
import { validateFlagValue, type FlagSpec, type ParsedArgs } from "./flags.js";
import { DEFAULT_TRAIN_CONFIG, PRESETS, configProblems, resolveConfig, type TrainConfig } from "../train/config.js";
import { initTokenizer } from "../train/setup.js";

const DEVICE_RE = /^(cpu|cuda|cuda:\d+)$/;
const d = DEFAULT_TRAIN_CONFIG;

/** --tokenizer: char, gpt2, or an existing tokenizer.json (or a folder that holds one). */
function tokenizerProblem(v: string): string | undefined {
  if (v === "char" || v === "gpt2") return undefined;
  const file = v.endsWith(".json") ? v : path.join(v, "tokenizer.json");
  return fs.existsSync(file) ? undefined : "char, gpt2 or the path of an existing tokenizer.json";
}

/** --init: a folder with config.json. */
function initProblem(v: string): string | undefined {
  return fs.existsSync(path.join(v, "config.json")) ? undefined : "a folder with config.json (a Hugging Face checkpoint)";
}

/** Flags that map one-to-one onto `TrainConfig` fields (kebab-case flag -> camelCase field). */
export const TRAIN_CONFIG_FLAGS: readonly FlagSpec[] = [
  { name: "data", type: "string", valueName: "PATH", help: "corpus: moby-dick (bundled), a text file, a folder of text files, a .bin file of uint16 GPT-2 token ids, or a folder with train.bin/val.bin", defaultText: d.data },
  {
    name: "tokenizer", type: "string", valueName: "char|gpt2|PATH",
    help: "character-level (vocabulary from the corpus), GPT-2 BPE, or a Hugging Face tokenizer.json (or its folder)",
    check: tokenizerProblem, allowed: "char, gpt2 or the path of a tokenizer.json", defaultText: `${d.tokenizer}; none for .bin data; --init's own`,
  },
  { name: "vocab-size", type: "int", min: 1, max: 2 ** 31 - 1, valueName: "N", help: "the model's vocabulary, exactly (every token id must be below it); with .bin data no tokenizer is needed", defaultText: "the tokenizer's" },
  { name: "bin-dtype", type: "enum", choices: ["uint16", "uint32"], help: "element type of .bin token files (uint16 holds ids up to 65,535)", defaultText: "uint16" },
  { name: "init", type: "string", valueName: "DIR", help: "fine-tune a pretrained Hugging Face checkpoint (GPT-2, LLaMA family, GPT-NeoX) instead of a new GPT-2", check: initProblem, allowed: "a folder with config.json" },
  { name: "n-layer", type: "int", min: 1, max: 1024, help: "transformer blocks", defaultText: String(d.nLayer) },
  { name: "n-head", type: "int", min: 1, max: 1024, help: "attention heads (must divide n-embd)", defaultText: String(d.nHead) },
  { name: "n-embd", type: "int", min: 1, max: 65536, help: "width of the residual stream", defaultText: String(d.nEmbd) },
  { name: "seq-len", type: "int", min: 1, max: 1 << 20, valueName: "T", help: "context length in tokens", defaultText: String(d.seqLen) },
  { name: "dropout", type: "number", min: 0, max: 1, maxExclusive: true, valueName: "P", help: "dropout probability", allowed: "a number in [0, 1)", defaultText: String(d.dropout) },
  { name: "batch-size", type: "int", min: 1, help: "sequences per micro-batch", defaultText: String(d.batchSize) },
  { name: "grad-accum", type: "int", min: 1, help: "micro-batches per optimizer step", defaultText: String(d.gradAccum) },
  { name: "steps", type: "int", min: 1, help: "optimizer steps in total (with --resume: the new total)", defaultText: String(d.steps) },
  { name: "lr", type: "number", min: 0, minExclusive: true, valueName: "LR", help: "peak learning rate (linear warmup, then cosine decay)", defaultText: String(d.lr) },
  { name: "min-lr", type: "number", min: 0, valueName: "LR", help: "learning rate at the end of the cosine decay", defaultText: String(d.minLr) },
  { name: "warmup", type: "int", min: 0, help: "linear warmup steps", defaultText: String(d.warmup) },
  { name: "weight-decay", type: "number", min: 0, valueName: "W", help: "AdamW weight decay of matrices and embeddings", defaultText: String(d.weightDecay) },
  { name: "grad-clip", type: "number", min: 0, valueName: "X", help: "clip the global gradient norm (0 = off)", defaultText: String(d.gradClip) },
  { name: "eval-every", type: "int", min: 0, help: "validation loss every N steps and at the end (0 = never)", defaultText: String(d.evalEvery) },
  { name: "eval-batches", type: "int", min: 1, help: "batches per validation pass", defaultText: String(d.evalBatches) },
  { name: "checkpoint-every", type: "int", min: 0, help: "checkpoint every N steps (0 = only at the end)", defaultText: String(d.checkpointEvery) },
  { name: "seed", type: "int", min: 0, max: Number.MAX_SAFE_INTEGER, help: "seed of weights, batches and dropout", defaultText: String(d.seed) },
  {
    name: "device",
    type: "string",
    valueName: "cpu|cuda|cuda:N",
    help: "where to train",
    check: (v) => (DEVICE_RE.test(v) ? undefined : "cpu, cuda or cuda:N"),
    allowed: "cpu, cuda or cuda:N",
    defaultText: d.device,
  },
  { name: "dtype", type: "enum", choices: ["float32", "bfloat16"], help: "bfloat16: bf16 autocast and TF32 on CUDA (weights stay float32)", defaultText: d.dtype },
  { name: "analyze-every", type: "int", min: 0, help: "analyse held-out windows every N steps into RUN/analysis/ (0 = never)", defaultText: String(d.analyzeEvery) },
  { name: "analyze-windows", type: "int", min: 1, valueName: "K", help: "held-out windows per analysis", defaultText: String(d.analyzeWindows) },
  { name: "cuda-graph", type: "boolean", help: "capture the whole step into a CUDA graph after 3 eager steps and replay it (CUDA, one process)" },
];

const OTHER_FLAGS: readonly FlagSpec[] = [
  { name: "out", type: "string", valueName: "DIR", help: "run directory (a Hugging Face GPT-2 checkpoint plus metrics and trainer state)", defaultText: "runs/<date-time>" },
  { name: "resume", type: "string", valueName: "DIR", help: "continue the run in DIR exactly where its last checkpoint left off" },
  { name: "config", type: "string", valueName: "FILE", help: "JSON object of settings (flag names as keys); flags override it" },
  { name: "preset", type: "enum", choices: Object.keys(PRESETS), help: "a model size and its settings; other settings override it" },
  { name: "tensorboard", type: "boolean", help: "also write loss, lr, gradient norm and the analysis's per-layer measures as TensorBoard event files into the run directory" },
];

/** Data-parallel launch (torchrun's conventions); not part of the saved configuration. */
const LAUNCH_FLAGS: readonly FlagSpec[] = [
  { name: "nproc", type: "int", min: 1, max: 1024, help: "worker processes on this machine, each taking batch-size / (nproc x nnodes) rows", defaultText: "1" },
  { name: "nnodes", type: "int", min: 1, max: 65536, help: "machines taking part (start innerloop on each, with its --node-rank)", defaultText: "1" },
  { name: "node-rank", type: "int", min: 0, help: "this machine's index among the nnodes", defaultText: "0" },
  { name: "master-addr", type: "string", valueName: "HOST", help: "address of node 0 (rendezvous)", defaultText: "127.0.0.1" },
  { name: "master-port", type: "int", min: 1, max: 65535, valueName: "PORT", help: "port of the rendezvous on node 0", defaultText: "29500" },
];

/** Flags that may accompany --resume: they do not change the computation of the steps. */
const RESUME_FLAGS = new Set(["resume", "steps", "device", "checkpoint-every", "eval-every", "cuda-graph", "tensorboard", ...LAUNCH_FLAGS.map((f) => f.name)]);

export function camel(kebab: string): string {
  return kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function kebab(camelName: string): string {
  return camelName.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const CONFIG_SPECS = new Map(TRAIN_CONFIG_FLAGS.map((s) => [s.name, s]));

/**
 * Reads `--config FILE`: a JSON object whose keys are flag names (`n-layer`)
 * or their camelCase (`nLayer`), plus `preset` and `out`. Unknown keys and bad
 * values are usage errors naming the field.
 */
export function readConfigFile(file: string): { config: Partial<TrainConfig>; preset?: string; out?: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`--config: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config: ${file} is not valid JSON (${(e as Error).message})`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw new UsageError(`--config: ${file} must hold a JSON object`);
  const config: Record<string, unknown> = {};
  let preset: string | undefined;
  let out: string | undefined;
  for (const [key, value] of Object.entries(obj as Record<string, unknown>)) {
    const name = key.includes("-") ? key : kebab(key);
    const label = `field "${key}" of ${file}`;
    if (name === "preset") {
      preset = validateFlagValue(OTHER_FLAGS.find((f) => f.name === "preset")!, value, label) as string;
      continue;
    }
    if (name === "out") {
      out = validateFlagValue(OTHER_FLAGS.find((f) => f.name === "out")!, value, label) as string;
      continue;
    }
    const spec = CONFIG_SPECS.get(name);
    if (!spec) {
      throw new UsageError(`--config: unknown ${label}; allowed: ${[...CONFIG_SPECS.keys(), "preset", "out"].join(", ")}`);
    }
    config[camel(name)] = validateFlagValue(spec, value, label);
  }
  return { config: config as Partial<TrainConfig>, preset, out };
}

/** Builds the run's configuration from flags, config file, preset and defaults (in that order of precedence). */
export function trainConfigFromArgs(args: ParsedArgs): { config: TrainConfig; out?: string } {
  const fromFile = flagString(args, "config") !== undefined ? readConfigFile(flagString(args, "config")!) : { config: {} };
  const fromFlags: Record<string, unknown> = {};
  for (const spec of TRAIN_CONFIG_FLAGS) {
    const v = args.values[spec.name];
    if (v !== undefined) fromFlags[camel(spec.name)] = v;
  }
  const preset = flagString(args, "preset") ?? fromFile.preset;
  const given = { ...fromFile.config, ...(fromFlags as Partial<TrainConfig>) };
  const config = resolveConfig(given, preset);
  if (given.tokenizer === undefined && (preset === undefined || PRESETS[preset]?.tokenizer === undefined)) {
    // No tokenizer named: --init's own; none for token ids (.bin), which then need --vocab-size.
    if (config.init !== undefined) config.tokenizer = initTokenizer(config.init);
    else if (config.data.endsWith(".bin") || isTokenFolder(config.data)) config.tokenizer = null;
  }
  const problems = configProblems(config);
  if (problems.length > 0) throw new UsageError(problems[0]!);
  return { config, out: flagString(args, "out") ?? fromFile.out };
}

/** A nanoGPT folder of token files (train.bin, val.bin). */
function isTokenFolder(p: string): boolean {
  return fs.existsSync(path.join(p, "train.bin"));
}

function defaultRunDir(): string {
  const t = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return path.join("runs", `${t.getFullYear()}${p(t.getMonth() + 1)}${p(t.getDate())}-${p(t.getHours())}${p(t.getMinutes())}${p(t.getSeconds())}`);
}

/** The command line a worker process runs: this process's node options and entry, then `train` with the same flags. */
function workerArgv(args: ParsedArgs, verbose: boolean): string[] {
  const flags = Object.entries(args.values).map(([k, v]) => `--${k}=${String(v)}`);
  if (verbose) flags.push("--verbose");
  return [...selfEntry(), "train", ...flags];
}

/** Node arguments that start this same CLI again: `node bin/innerloop.js` runs the script again; `node -e CODE --` runs CODE again. */
export function selfEntry(): string[] {
  const evalEntry = process.execArgv.includes("-e") || process.execArgv.includes("--eval");
  return evalEntry ? [...process.execArgv, "--"] : [...process.execArgv, process.argv[1]!];
}

registerCommand({
  name: "train",
  summary: "train a GPT-2 style language model; the run directory is a Hugging Face checkpoint",
  usage: "innerloop train [--preset NAME] [--config FILE] [flags] [--out DIR]\n       innerloop train --resume DIR [--steps N]",
  details: [
    "Precedence: flags > --config file > --preset > defaults (a char model on moby-dick for a CPU).",
    "Validation data: the last 10% of the token stream (or val.bin beside train.bin).",
    ".bin data are token ids: give --vocab-size N (the model then has exactly N rows; an id >= N stops the run with an",
    "error naming it), or a tokenizer (--tokenizer gpt2 or PATH/tokenizer.json) whose vocabulary the model takes.",
    "--init DIR fine-tunes a pretrained checkpoint; the run directory then holds that family's checkpoint.",
    `Presets: ${Object.entries(PRESETS)
      .map(([k, p]) => `${k} (${p.nLayer} x ${p.nEmbd}, T ${p.seqLen}${p.tokenizer === "gpt2" ? ", gpt2 tokenizer" : ""})`)
      .join(", ")}.`,
    "Writes DIR/config.json + DIR/model.safetensors (loadable with transformers), the optimizer and trainer state",
    "(for an exact --resume) and DIR/metrics.jsonl. Ctrl-C finishes the step, checkpoints and exits 0; twice exits at once.",
    "--nproc N trains data-parallel (Gloo on CPU, NCCL on CUDA): each process takes batch-size / N rows of every batch;",
    "workers started by torchrun or Slurm (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set) join the same way.",
  ].join("\n"),
  flags: [...TRAIN_CONFIG_FLAGS, ...OTHER_FLAGS, ...LAUNCH_FLAGS],
  async run(args, ctx) {
    const nproc = flagNumber(args, "nproc") ?? 1;
    const nnodes = flagNumber(args, "nnodes") ?? 1;
    const nodeRank = flagNumber(args, "node-rank") ?? 0;
    if (nodeRank >= nnodes) throw new UsageError(`--node-rank (${nodeRank}) must be below --nnodes (${nnodes})`);
    if (nproc * nnodes > 1 && process.env.WORLD_SIZE === undefined) {
      // The launcher: validate here (one clear error instead of one per worker), then start the
      // workers, each running this same command line as one rank.
      const resumeFrom = flagString(args, "resume");
      const config =
        resumeFrom === undefined ? trainConfigFromArgs(args).config : (await import("../train/state.js")).readTrainerState(resumeFrom).config;
      const batchSize = config.batchSize;
      if (flagBoolean(args, "cuda-graph") ?? config.cudaGraph === true) {
        throw new UsageError("--cuda-graph trains in one process: it cannot be combined with --nproc or --nnodes above 1");
      }
      if (batchSize % (nproc * nnodes) !== 0) {
        throw new UsageError(`--batch-size (${batchSize}) must be divisible by the number of processes (${nproc * nnodes})`);
      }
      const { launchWorkers } = await import("../train/ddp.js");
      return launchWorkers({
        nproc,
        nnodes,
        nodeRank,
        masterAddr: flagString(args, "master-addr") ?? "127.0.0.1",
        masterPort: flagNumber(args, "master-port") ?? 29500,
        argv: workerArgv(args, ctx.verbose),
        stderr: ctx.stderr,
      });
    }
    const resumeDir = flagString(args, "resume");
    let run: import("../train/run.js").RunOptions;
    if (resumeDir !== undefined) {
      const extra = Object.keys(args.values).filter((k) => !RESUME_FLAGS.has(k));
      if (extra.length > 0) {
        throw new UsageError(
          `--resume continues a run with its saved settings; --${extra[0]} cannot be changed (allowed with --resume: ${[...RESUME_FLAGS].filter((f) => f !== "resume").map((f) => `--${f}`).join(", ")})`,
        );
      }
      if (!fs.existsSync(resumeDir)) throw new UsageError(`--resume: ${resumeDir} does not exist`);
      run = {
        runDir: resumeDir,
        resume: true,
        overrides: {
          steps: flagNumber(args, "steps"),
          device: flagString(args, "device") as TrainConfig["device"] | undefined,
          checkpointEvery: flagNumber(args, "checkpoint-every"),
          evalEvery: flagNumber(args, "eval-every"),
          cudaGraph: flagBoolean(args, "cuda-graph"),
        },
      };
    } else {
      const { config, out } = trainConfigFromArgs(args);
      checkDataPath(config.data);
      const runDir = out ?? defaultRunDir();
      if (fs.existsSync(path.join(runDir, "trainer_state.json"))) {
        throw new UsageError(`--out: ${runDir} already holds a run; continue it with --resume ${runDir} or choose another --out`);
      }
      run = { runDir, resume: false, config };
    }
    const { runTraining } = await import("../train/run.js");
    const result = await runTraining({ ...run, tensorboard: flagBoolean(args, "tensorboard"), stderr: ctx.stderr, stdout: ctx.stdout });
    result.trainer.close();
    return result.exitCode;
  },
});
