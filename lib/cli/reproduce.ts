/**
 * `innerloop reproduce`: the experiment end to end on the bundled moby-dick corpus (training with
 * analysis snapshots, final analysis, report).
 */
import { registerCommand, flagBoolean, flagNumber, flagString } from "./commands.js";
import { UsageError } from "./errors.js";

const DEVICE_RE = /^(cpu|cuda|cuda:\d+)$/;

registerCommand({
  name: "reproduce",
  summary: "train a small model on moby-dick with analysis snapshots, analyse it and write the report",
  usage: "innerloop reproduce [--quick] [--device D] --out DIR",
  details:
    "Default: 4 layers x 128, T 128, 1500 steps, a snapshot every 50 steps. --quick: 4 layers x 64, T 64,\n" +
    "1000 steps, a snapshot every 40 steps (about 35 s on 2 CPU cores). Open DIR/report.html.",
  flags: [
    { name: "quick", type: "boolean", help: "a small, fast version of the experiment" },
    { name: "steps", type: "int", min: 1, valueName: "N", help: "override the number of training steps" },
    { name: "analyze-every", type: "int", min: 1, valueName: "N", help: "override the snapshot interval (steps)" },
    {
      name: "device", type: "string", valueName: "cpu|cuda|cuda:N", help: "where to train",
      check: (v) => (DEVICE_RE.test(v) ? undefined : "cpu, cuda or cuda:N"), allowed: "cpu, cuda or cuda:N", defaultText: "cpu",
    },
    { name: "out", type: "string", valueName: "DIR", help: "run directory to create" },
  ],
  async run(args, ctx) {
    const out = flagString(args, "out");
    if (out === undefined) throw new UsageError("--out DIR is required");
    const { reproduce } = await import("../analysis/reproduce.js");
    await reproduce({
      outDir: out,
      quick: flagBoolean(args, "quick") ?? false,
      steps: flagNumber(args, "steps"),
      analyzeEvery: flagNumber(args, "analyze-every"),
      device: flagString(args, "device") as "cpu" | undefined,
      stdout: ctx.stdout,
      stderr: ctx.stderr,
    });
    return 0;
  },
});
