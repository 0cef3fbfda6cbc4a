/**
 * `innerloop sample`: continue a prompt with a trained model and print the text.
 */
import { registerCommand, flagBoolean, flagNumber, flagString } from "./commands.js";
import { UsageError } from "./errors.js";

const DEVICE_RE = /^(cpu|cuda|cuda:\d+)$/;

registerCommand({
  name: "sample",
  summary: "generate text from a run directory (or a Hugging Face GPT-2 folder)",
  usage: "innerloop sample --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--seed S]",
  details:
    "Prints the prompt followed by its continuation. The tokenizer is the one saved with the run; a Hugging Face\n" +
    "GPT-2 folder without one uses GPT-2's BPE. Temperature 0 is greedy decoding.",
  flags: [
    { name: "model", type: "string", valueName: "DIR", help: "run directory of innerloop train, or a Hugging Face GPT-2 folder" },
    { name: "prompt", type: "string", valueName: "TEXT", help: "text to continue" },
    { name: "max-new-tokens", type: "int", min: 0, max: 1_000_000, help: "tokens to generate", defaultText: "200" },
    { name: "temperature", type: "number", min: 0, valueName: "T", help: "softmax temperature (0 = greedy)", defaultText: "0.8" },
    { name: "top-k", type: "int", min: 1, valueName: "K", help: "sample only from the K most likely tokens", defaultText: "all" },
    { name: "skip-unknown", type: "boolean", help: "skip prompt characters the tokenizer lacks instead of refusing the prompt" },
    { name: "seed", type: "int", min: 0, max: Number.MAX_SAFE_INTEGER, help: "sampling seed", defaultText: "1337" },
    {
      name: "device",
      type: "string",
      valueName: "cpu|cuda|cuda:N",
      help: "where to run the model",
      check: (v) => (DEVICE_RE.test(v) ? undefined : "cpu, cuda or cuda:N"),
      allowed: "cpu, cuda or cuda:N",
      defaultText: "cpu",
    },
  ],
  async run(args, ctx) {
    const model = flagString(args, "model");
    const prompt = flagString(args, "prompt");
    if (model === undefined) throw new UsageError("--model DIR is required");
    if (prompt === undefined) throw new UsageError("--prompt TEXT is required");
    const { sampleText } = await import("../train/sample.js");
    const text = sampleText({
      modelDir: model,
      prompt,
      maxNewTokens: flagNumber(args, "max-new-tokens") ?? 200,
      temperature: flagNumber(args, "temperature") ?? 0.8,
      topK: flagNumber(args, "top-k"),
      seed: flagNumber(args, "seed") ?? 1337,
      device: (flagString(args, "device") ?? "cpu") as "cpu",
      skipUnknown: flagBoolean(args, "skip-unknown") ?? false,
    });
    ctx.stdout.write(text.endsWith("\n") ? text : text + "\n");
    return 0;
  },
});
