/**
 * `innerloop analyze`: hidden-state norms, gradients and the inner-optimization measures of a
 * model on a token stream (definitions in docs/analysis.md). Also registers the training-time
 * analysis plugin that `innerloop train --analyze-every N` asks for.
 */
import { registerCommand, flagBoolean, flagNumber, flagString } from "./commands.js";
import { checkDataPath } from "./data-flag.js";
import { UsageError } from "./errors.js";
import { registerTrainerPlugin, type TrainerPluginFactory } from "../train/plugins.js";

const DEVICE_RE = /^(cpu|cuda|cuda:\d+)$/;

// The plugin's code (and libtorch) loads only when a run asks for it.
const lazyAnalysisPlugin = (async (opts: Parameters<TrainerPluginFactory>[0]) => {
  const { createAnalysisPlugin } = await import("../analysis/plugin.js");
  return createAnalysisPlugin(opts);
}) as unknown as TrainerPluginFactory;
registerTrainerPlugin("analysis", lazyAnalysisPlugin);

registerCommand({
  name: "analyze",
  summary: "measure hidden-state norms, gradients and per-layer updates of a model on held-out text",
  usage: "innerloop analyze --model DIR --data PATH --seq-len T --batch-size B [--max-windows N] [--device D] [--dtype T] --out OUT",
  details:
    "DIR is an innerloop run directory or a Hugging Face checkpoint folder of a supported family (docs/pretrained.md).\nPATH is a .bin file of uint16 token ids,\n" +
    "a text file or folder (tokenized with the model's tokenizer; a character it lacks is refused unless --skip-unknown), or 'moby-dick'. Windows are consecutive\n" +
    "chunks of T+1 tokens from the start of PATH. Writes OUT/analysis.json, OUT/positions.csv, OUT/layers.csv.",
  flags: [
    { name: "model", type: "string", valueName: "DIR", help: "run directory or Hugging Face checkpoint folder (GPT-2, LLaMA family, NeoX, Gemma, Phi-3, OLMo 2, ...)" },
    { name: "data", type: "string", valueName: "PATH", help: ".bin token file, text file or folder, or moby-dick" },
    { name: "seq-len", type: "int", min: 1, valueName: "T", help: "tokens per window (inputs)", defaultText: "the model's context length" },
    { name: "batch-size", type: "int", min: 1, valueName: "B", help: "windows per forward/backward pass", defaultText: "8" },
    { name: "max-windows", type: "int", min: 1, valueName: "N", help: "analyse at most N windows", defaultText: "all" },
    { name: "top-k", type: "int", min: 1, max: 1000, valueName: "K", help: "largest activations kept per layer", defaultText: "8" },
    { name: "freq-buckets", type: "int", min: 1, max: 64, valueName: "K", help: "token-frequency buckets", defaultText: "4" },
    {
      name: "device", type: "string", valueName: "cpu|cuda|cuda:N", help: "where to run the model",
      check: (v) => (DEVICE_RE.test(v) ? undefined : "cpu, cuda or cuda:N"), allowed: "cpu, cuda or cuda:N", defaultText: "cpu",
    },
    { name: "dtype", type: "enum", choices: ["float32", "float64", "bfloat16", "float16"], help: "dtype of the model's weights", defaultText: "float32" },
    { name: "skip-unknown", type: "boolean", help: "skip characters the model's tokenizer lacks (counted in analysis.json meta.unknownSkipped) instead of refusing the text" },
    { name: "out", type: "string", valueName: "OUT", help: "output folder" },
  ],
  async run(args, ctx) {
    const model = flagString(args, "model");
    const data = flagString(args, "data");
    const out = flagString(args, "out");
    if (model === undefined) throw new UsageError("--model DIR is required");
    if (data === undefined) throw new UsageError("--data PATH is required");
    if (out === undefined) throw new UsageError("--out OUT is required");
    checkDataPath(data);
    const { analyzeDir } = await import("../analysis/run.js");
    const r = analyzeDir({
      modelDir: model,
      data,
      seqLen: flagNumber(args, "seq-len"),
      batchSize: flagNumber(args, "batch-size") ?? 8,
      maxWindows: flagNumber(args, "max-windows"),
      topK: flagNumber(args, "top-k"),
      freqBuckets: flagNumber(args, "freq-buckets"),
      device: flagString(args, "device") as "cpu" | undefined,
      dtype: flagString(args, "dtype") as "float32" | undefined,
      outDir: out,
      skipUnknown: flagBoolean(args, "skip-unknown") ?? false,
      log: ctx.verbose ? (m) => ctx.stderr.write(m + "\n") : undefined,
    });
    const skipped = Number(r.meta?.unknownSkipped ?? 0);
    if (skipped > 0) ctx.stderr.write(`skipped ${skipped} characters the model's tokenizer lacks (--skip-unknown)\n`);
    ctx.stdout.write(`analysed ${r.windows} windows of ${r.seqLen} tokens (${r.layers - 1} blocks): loss ${r.loss.toFixed(4)}; wrote ${out}/analysis.json\n`);
    return 0;
  },
});
