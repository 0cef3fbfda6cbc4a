/**
 * `innerloop bench`: the same GPT-2 training step in innerloop and in the PyTorch eager reference
 * (scripts/bench/torch_step.py), median step times and their ratio (BENCHMARKS.md).
 */
import { registerCommand, flagBoolean, flagNumber, flagString } from "./commands.js";
import { UsageError } from "./errors.js";

const CONFIG_NAMES = ["micro", "tiny", "mid", "gpt2-124m"];

registerCommand({
  name: "bench",
  summary: "time the GPT-2 training step against PyTorch eager on this machine",
  usage: "innerloop bench [--config micro,tiny,mid] [--device cpu|cuda] [--threads default,1] [--analysis-vs-torch small,gpt2-124m] [--reps N] [--steps N] [--json OUT]\n       innerloop bench --soak N [--soak-analyze-every K] [--analyze-windows K] [--json OUT]",
  details:
    "Configurations: micro (2 layers x 64, T 8, batch 1), tiny (2 x 64, T 64, batch 8), mid (4 x 128, T 128, batch 16),\n" +
    "gpt2-124m (CUDA only: 12 x 768, T 1024, bf16 autocast, batch 16 or 8). Both sides run the same step (forward, loss,\n" +
    "backward, clipping to 1.0, fused AdamW, zero-grad) on the same batches and initial weights, in separate processes,\n" +
    "with the same thread count. Needs python3 with torch for the reference. Timing is never part of the tests.\n" +
    "On the CPU it then runs innerloop analyze against a PyTorch hooks script (transformers GPT-2) on the same random model and\n" +
    "tokens, small (6 x 256, vocabulary 8192, 160 windows of T 256, batch 8) and gpt2-124m (T 1024, batch 2, 4 windows),\n" +
    "comparing the design fields before the times.\n" +
    "--soak N runs only the soak: N steps of the tiny preset through the trainer with the analysis plugin on,\n" +
    "reporting resident memory and live tensors after a warm-up and at the end (the issue's goal: < 5% growth, flat tensors).",
  flags: [
    {
      name: "config", type: "string", valueName: "LIST", help: "comma-separated configurations",
      check: (v) => (v.split(",").every((n) => CONFIG_NAMES.includes(n.trim())) ? undefined : `a comma-separated list of ${CONFIG_NAMES.join(", ")}`),
      defaultText: "micro,tiny,mid on cpu; tiny,mid,gpt2-124m on cuda",
    },
    { name: "device", type: "enum", choices: ["cpu", "cuda"], help: "where both sides run", defaultText: "cpu" },
    { name: "reps", type: "int", min: 1, max: 100000, valueName: "N", help: "timed steps per side and round", defaultText: "20" },
    { name: "warmup", type: "int", min: 0, max: 10000, valueName: "N", help: "untimed steps before them", defaultText: "10" },
    { name: "rounds", type: "int", min: 1, max: 100, valueName: "N", help: "alternating runs of each side, step times pooled", defaultText: "3 on cpu, 1 on cuda" },
    {
      name: "threads", type: "string", valueName: "LIST", help: "intra-op thread settings on both sides, each timed in turn ('default': neither side sets a count)",
      check: (v) => (v.split(",").every((t) => /^\s*(default|\d+)\s*$/.test(t) && (t.trim() === "default" || (Number(t) >= 1 && Number(t) <= 1024))) ? undefined : "a comma-separated list of 'default' and integers from 1 to 1024"),
      defaultText: "default,1 on cpu, the cores on cuda",
    },
    {
      name: "analysis-vs-torch", type: "string", valueName: "LIST", help: "innerloop analyze against the PyTorch hooks script at these sizes (none = skip)",
      check: (v) => (v === "none" || v.split(",").every((n) => ["small", "gpt2-124m"].includes(n.trim())) ? undefined : "none, or a comma-separated list of small, gpt2-124m"),
      defaultText: "small,gpt2-124m on cpu",
    },
    { name: "aten-calls", type: "int", min: 0, max: 10000000, valueName: "N", help: "calls per round of the torch.aten per-call comparison with Python's torch.ops.aten (0 = skip)", defaultText: "20000 on cpu" },
    { name: "analysis-windows-124m", type: "int", min: 1, max: 4096, valueName: "N", help: "windows of the gpt2-124m analysis comparison", defaultText: "4" },
    { name: "steps", type: "int", min: 0, max: 1000000, valueName: "N", help: "steps of the memory run (tiny config; 0 = skip)", defaultText: "2000" },
    { name: "analyze-every", type: "int", min: 0, max: 1, valueName: "1|0", help: "measure the analysis overhead with analysis after every step (0 = skip)", defaultText: "1" },
    {
      name: "analyze-windows", type: "string", valueName: "K[,K]", help: "windows each analysis covers (a list: one overhead measurement each; the soak takes one)",
      check: (v) => (v.split(",").every((k) => /^\s*\d+\s*$/.test(k) && Number(k) >= 1 && Number(k) <= 4096) ? undefined : "a comma-separated list of integers from 1 to 4096"),
      defaultText: "1,16 (16 is the trainer's default; the soak: 16)",
    },
    { name: "analyze-steps", type: "int", min: 1, max: 100000, valueName: "N", help: "pairs of steps (plain, then with analysis) per overhead measurement", defaultText: "20" },
    { name: "profile", type: "boolean", help: "also time forward/backward/clip/AdamW/zero-grad apart and count native calls" },
    { name: "cuda-graph", type: "boolean", help: "with --device cuda: also time innerloop's step captured into a CUDA graph" },
    { name: "soak", type: "int", min: 1, max: 10000000, valueName: "N", help: "run only the soak: N training steps with analysis on, memory at start and end" },
    { name: "soak-analyze-every", type: "int", min: 1, max: 1000000, valueName: "K", help: "analysis snapshot every K steps during the soak", defaultText: "10" },
    { name: "soak-warmup", type: "int", min: 1, max: 1000000, valueName: "N", help: "steps before the soak's first measurement", defaultText: "N/10, at most 500" },
    { name: "json", type: "string", valueName: "OUT", help: "also write the full results (every step time) as JSON" },
  ],
  async run(args, ctx) {
    const soakSteps = flagNumber(args, "soak");
    if (soakSteps !== undefined) return runSoakCommand(args, soakSteps, ctx);
    const device = (flagString(args, "device") ?? "cpu") as "cpu" | "cuda";
    const configs = flagString(args, "config")?.split(",").map((s) => s.trim()).filter(Boolean);
    const { runBench, formatReport, resolveConfigs } = await import("../bench/index.js");
    try {
      resolveConfigs(configs, device);
    } catch (e) {
      throw new UsageError(`--config: ${(e as Error).message}`);
    }
    if (device === "cuda") {
      const { torch } = await import("../torch/index.js");
      if (!torch.cuda.isAvailable()) throw new Error("--device cuda: CUDA is not available on this machine");
    }
    const cudaGraph = flagBoolean(args, "cuda-graph") ?? false;
    if (cudaGraph && device !== "cuda") throw new UsageError("--cuda-graph needs --device cuda");
    const analyze = (flagNumber(args, "analyze-every") ?? 1) === 1;
    const report = await runBench({
      configs,
      device,
      reps: flagNumber(args, "reps"),
      warmup: flagNumber(args, "warmup"),
      rounds: flagNumber(args, "rounds"),
      threads: threadSettings(args),
      analysisConfigs: analysisSizes(args),
      analysisWindows124m: flagNumber(args, "analysis-windows-124m"),
      atenCalls: flagNumber(args, "aten-calls"),
      steps: flagNumber(args, "steps") ?? 2000,
      analyzeWindows: analyze ? windowCounts(args) ?? [1, 16] : [],
      analyzeSteps: flagNumber(args, "analyze-steps"),
      profile: flagBoolean(args, "profile") ?? false,
      cudaGraph,
      log: (line) => ctx.stderr.write(line + "\n"),
      echo: ctx.verbose ? ctx.stderr : undefined,
    });
    ctx.stdout.write(formatReport(report) + "\n");
    const out = flagString(args, "json");
    if (out !== undefined) {
      const { writeFileAtomic } = await import("../util/atomic.js");
      writeFileAtomic(out, JSON.stringify(report, null, 2) + "\n");
      ctx.stderr.write(`wrote ${out}\n`);
    }
    return 0;
  },
});

async function runSoakCommand(args: Parameters<typeof flagNumber>[0], steps: number, ctx: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): Promise<number> {
  if ((flagString(args, "device") ?? "cpu") !== "cpu") throw new UsageError("--soak runs on the CPU only (--device cpu)");
  const { runSoakProcess, formatSoak } = await import("../bench/soak.js");
  const analyzeEvery = flagNumber(args, "soak-analyze-every") ?? 10;
  ctx.stderr.write(`soak: ${steps} steps of the tiny preset, analysis every ${analyzeEvery} steps, in its own process\n`);
  const result = await runSoakProcess(
    {
      steps,
      warmupSteps: flagNumber(args, "soak-warmup") ?? Math.min(500, Math.max(20, Math.round(steps / 10))),
      analyzeEvery,
      analyzeWindows: soakWindows(args),
      sampleEvery: Math.max(10, Math.round(steps / 10)),
      threads: soakThreads(args),
    },
    ctx.stderr,
  );
  ctx.stdout.write(formatSoak(result) + "\n");
  const out = flagString(args, "json");
  if (out !== undefined) {
    const { writeFileAtomic } = await import("../util/atomic.js");
    writeFileAtomic(out, JSON.stringify({ date: new Date().toISOString(), soak: result }, null, 2) + "\n");
    ctx.stderr.write(`wrote ${out}\n`);
  }
  return 0;
}

/** --threads as a list of settings, 0 for "default" (undefined when absent). */
function threadSettings(args: Parameters<typeof flagString>[0]): number[] | undefined {
  return flagString(args, "threads")?.split(",").map((t) => (t.trim() === "default" ? 0 : Number(t.trim())));
}

/** The soak's one thread count (default 1). */
function soakThreads(args: Parameters<typeof flagString>[0]): number {
  const ts = threadSettings(args) ?? [1];
  if (ts.length !== 1 || ts[0] === 0) throw new UsageError("--threads: the soak takes one thread count");
  return ts[0]!;
}

/** --analysis-vs-torch as a list of sizes ([] for none; undefined when absent). */
function analysisSizes(args: Parameters<typeof flagString>[0]): string[] | undefined {
  const v = flagString(args, "analysis-vs-torch");
  return v === undefined ? undefined : v === "none" ? [] : v.split(",").map((n) => n.trim());
}

/** --analyze-windows as a list of window counts (undefined when absent). */
function windowCounts(args: Parameters<typeof flagString>[0]): number[] | undefined {
  return flagString(args, "analyze-windows")?.split(",").map((k) => Number(k.trim()));
}

/** The soak's single window count (default 16, the trainer's). */
function soakWindows(args: Parameters<typeof flagString>[0]): number {
  const ks = windowCounts(args) ?? [16];
  if (ks.length !== 1) throw new UsageError("--analyze-windows: the soak takes one window count");
  return ks[0]!;
}
