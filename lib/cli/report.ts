/**
 * `innerloop report`: plots of a run's analysis (final analysis and training timeline) and
 * DIR/report.html beside them; `--compare` overlays several runs and analyses in one report;
 * `--watch` serves a run's report live on 127.0.0.1 while it trains.
 */
import { registerCommand, flagBoolean, flagNumber, flagString } from "./commands.js";
import { UsageError } from "./errors.js";

registerCommand({
  name: "report",
  summary: "render the analysis of a run (or an analyze output folder) as plots and report.html; compare runs; watch a run live",
  usage:
    "innerloop report --run DIR [--analysis FILE] [--per-layer-heatmaps]\n" +
    "       innerloop report --compare A B [C ...] [--labels a,b,c] --out DIR\n" +
    "       innerloop report --watch RUN [--port N] [--host ADDR]",
  details:
    "--run: reads the final analysis (--analysis FILE, else DIR/analysis.json, DIR/analysis/analysis.json or the newest\n" +
    "DIR/*/analysis.json) and DIR/analysis/timeline.json (whichever exist), writes the figures as SVG into DIR/report/\n" +
    "and DIR/report.html.\n" +
    "--compare: training runs and analyze outputs (folders or analysis.json files) side by side against relative depth\n" +
    "l/L, training runs' timelines on one step axis; writes OUT/report.html and OUT/report/*.svg.\n" +
    "--watch: serves RUN's report at http://127.0.0.1:PORT/ and updates open pages as metrics and snapshots land\n" +
    "(figures rendered into RUN/live/); Ctrl-C stops.",
  maxPositionals: 256,
  flags: [
    { name: "run", type: "string", valueName: "DIR", help: "run directory or analyze output folder" },
    { name: "analysis", type: "string", valueName: "FILE", help: "analysis.json to show as the final state", defaultText: "found in DIR" },
    { name: "per-layer-heatmaps", type: "boolean", help: "normalise each heatmap row by its layer's mean over positions" },
    { name: "compare", type: "string", valueName: "A B ...", help: "compare these runs and analyze outputs (two or more, space-separated)" },
    { name: "labels", type: "string", valueName: "a,b,...", help: "names of the compared inputs, comma-separated", defaultText: "folder names" },
    { name: "out", type: "string", valueName: "DIR", help: "folder of the comparison report" },
    { name: "watch", type: "string", valueName: "RUN", help: "serve RUN's report live while it trains" },
    { name: "port", type: "int", min: 0, max: 65535, valueName: "N", help: "port of the live report (0: any free port)", defaultText: "8765" },
    { name: "host", type: "string", valueName: "ADDR", help: "interface of the live report", defaultText: "127.0.0.1 (this machine only)" },
    { name: "interval", type: "number", min: 0.05, max: 3600, valueName: "SECONDS", help: "how often the live report checks the run's files", defaultText: "1" },
  ],
  async run(args, ctx) {
    const run = flagString(args, "run");
    const compare = flagString(args, "compare");
    const watch = flagString(args, "watch");
    const modes = [run !== undefined && "--run", compare !== undefined && "--compare", watch !== undefined && "--watch"].filter(Boolean);
    if (modes.length !== 1) throw new UsageError(modes.length === 0 ? "one of --run DIR, --compare A B ... or --watch RUN is required" : `${modes.join(" and ")} cannot be combined`);
    if (compare === undefined && args.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positionals[0])} (only --compare takes several values)`);
    for (const f of ["labels", "out"]) if (compare === undefined && args.values[f] !== undefined) throw new UsageError(`--${f} belongs to --compare`);
    for (const f of ["port", "host", "interval"]) if (watch === undefined && args.values[f] !== undefined) throw new UsageError(`--${f} belongs to --watch`);
    if (run === undefined && args.values.analysis !== undefined) throw new UsageError("--analysis belongs to --run");
    if (compare !== undefined && args.values["per-layer-heatmaps"] !== undefined) throw new UsageError("--per-layer-heatmaps belongs to --run and --watch");
    const log = ctx.verbose ? (m: string) => ctx.stderr.write(m + "\n") : undefined;
    const perLayerHeatmaps = flagBoolean(args, "per-layer-heatmaps");

    if (compare !== undefined) {
      const inputs = [compare, ...args.positionals];
      if (inputs.length < 2) throw new UsageError(`--compare needs at least two inputs (got ${inputs.length})`);
      const out = flagString(args, "out");
      if (out === undefined) throw new UsageError("--compare needs --out DIR");
      const labels = flagString(args, "labels")?.split(",").map((s) => s.trim());
      if (labels && labels.length !== inputs.length) throw new UsageError(`--labels gives ${labels.length} labels for ${inputs.length} inputs`);
      if (labels?.some((l) => l === "")) throw new UsageError("--labels must not contain empty labels");
      const { writeCompareReport } = await import("../analysis/report/compare.js");
      const r = await writeCompareReport(inputs, out, { labels, log });
      ctx.stdout.write(`compared ${inputs.length} inputs: wrote ${r.figures.length} figures and ${out}/report.html\n`);
      return 0;
    }

    if (watch !== undefined) {
      const { serveLive } = await import("../analysis/report/live.js");
      const interval = flagNumber(args, "interval");
      const server = await serveLive(watch, { port: flagNumber(args, "port"), host: flagString(args, "host"), intervalMs: interval === undefined ? undefined : interval * 1000, perLayerHeatmaps, log });
      ctx.stdout.write(`serving the live report of ${watch} at ${server.url} (Ctrl-C stops)\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      await server.close();
      return 0;
    }

    const { writeReport } = await import("../analysis/report/html.js");
    const r = await writeReport(run!, { analysis: flagString(args, "analysis"), perLayerHeatmaps, log });
    ctx.stdout.write(`wrote ${r.figures.length} figures and ${run}/report.html\n`);
    return 0;
  },
});
