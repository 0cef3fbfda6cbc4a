/**
 * `innerloop sweep --config sweep.json`: trains a grid or list of settings, each in its own run
 * directory under OUT/runs/, N at a time, and ends with a comparison report (lib/experiments).
 */
import { registerCommand, flagBoolean, flagNumber, flagString } from "./commands.js";
import { UsageError } from "./errors.js";
import { validateFlagValue } from "./flags.js";
import { TRAIN_CONFIG_FLAGS, selfEntry } from "./train.js";

const SPECS = new Map(TRAIN_CONFIG_FLAGS.map((s) => [s.name, s]));
const kebab = (name: string) => (name.includes("-") ? name : name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));

registerCommand({
  name: "sweep",
  summary: "train a grid or list of settings, N runs at a time, resumable, ending with a comparison report",
  usage: "innerloop sweep --config sweep.json --out DIR [--parallel N] [--retry-failed] [--no-report]",
  details:
    'sweep.json: { "base": {settings}, "grid": {"lr": [0.001, 0.003], "n-layer": [2, 4]} } (every combination) or\n' +
    '{ "base": {...}, "runs": [{"name": "small", "n-embd": 32}, ...] }, plus optional "parallel" and "tensorboard".\n' +
    "Settings are train flags (as in train --config). Each run trains in DIR/runs/NAME (log: DIR/runs/NAME.log);\n" +
    "DIR/sweep.json records each run's status. Run the same command again to continue an interrupted sweep:\n" +
    "finished runs are kept, interrupted ones resume from their checkpoint, failed ones stay failed (--retry-failed\n" +
    "starts them again). Ctrl-C stops the running runs at a checkpoint.\n" +
    "Exit status: 0 when every run is done, 1 when a run failed, 130 when stopped.",
  flags: [
    { name: "config", type: "string", valueName: "FILE", help: "the sweep's JSON spec" },
    { name: "out", type: "string", valueName: "DIR", help: "folder of the sweep (runs, state, report)" },
    { name: "parallel", type: "int", min: 1, max: 1024, valueName: "N", help: "runs at a time, bounded by CPU cores or CUDA devices", defaultText: "spec's parallel, else 1" },
    { name: "retry-failed", type: "boolean", help: "start runs recorded as failed again" },
    { name: "no-report", type: "boolean", help: "do not write the comparison report at the end" },
  ],
  async run(args, ctx) {
    const file = flagString(args, "config");
    if (file === undefined) throw new UsageError("--config FILE is required");
    const out = flagString(args, "out");
    if (out === undefined) throw new UsageError("--out DIR is required");
    const { readSweepSpec, expandSweep } = await import("../experiments/spec.js");
    const { runSweep } = await import("../experiments/sweep.js");
    let runs;
    let spec;
    try {
      spec = readSweepSpec(file);
      runs = expandSweep(spec);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    // Bad settings are found before any run starts, named by run and field.
    for (const r of runs) {
      for (const [k, v] of Object.entries(r.settings)) {
        const s = SPECS.get(kebab(k));
        if (!s) throw new UsageError(`run ${r.name}: unknown setting "${k}" in ${file}; allowed: ${[...SPECS.keys()].join(", ")}`);
        validateFlagValue(s, v, `run ${r.name}: setting "${k}" of ${file}`);
      }
    }
    if (spec.parallel !== undefined && (!Number.isInteger(spec.parallel) || spec.parallel < 1)) throw new UsageError(`"parallel" of ${file} must be an integer >= 1 (got ${JSON.stringify(spec.parallel)})`);
    const abort = new AbortController();
    const stop = (sig: string) => {
      ctx.stderr.write(`\n${sig}: stopping the running runs at a checkpoint (run the same command again to continue)\n`);
      abort.abort();
    };
    const onInt = () => stop("SIGINT");
    const onTerm = () => stop("SIGTERM");
    process.once("SIGINT", onInt);
    process.once("SIGTERM", onTerm);
    try {
      const res = await runSweep(spec, {
        out,
        parallel: flagNumber(args, "parallel"),
        retryFailed: flagBoolean(args, "retry-failed"),
        noReport: flagBoolean(args, "no-report"),
        signal: abort.signal,
        // Each run is this same CLI's train command.
        command: [process.execPath, ...selfEntry()],
        log: (m) => ctx.stderr.write(m + "\n"),
      });
      const count = (s: string) => res.state.runs.filter((r) => r.status === s).length;
      const summary = `${count("done")} done, ${count("failed")} failed, ${count("interrupted") + count("pending")} to continue`;
      ctx.stdout.write(`sweep ${out}: ${summary}${res.report ? `; comparison in ${res.report}` : ""}\n`);
      for (const r of res.state.runs.filter((x) => x.status === "failed")) ctx.stdout.write(`  failed: ${r.name} (exit ${r.exitCode}): ${r.error ?? ""}\n`);
      return res.stopped ? 130 : count("failed") > 0 ? 1 : 0;
    } finally {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    }
  },
});
