/**
 * `innerloop report`: plots of a run's analysis (final analysis and training timeline) and
 * DIR/report.html beside them.
 */
import { registerCommand, flagString } from "./commands.js";
import { UsageError } from "./errors.js";

registerCommand({
  name: "report",
  summary: "render the analysis of a run (or an analyze output folder) as plots and report.html",
  usage: "innerloop report --run DIR [--analysis FILE]",
  details:
    "Reads the final analysis (--analysis FILE, else DIR/analysis.json, DIR/analysis/analysis.json or the newest\n" +
    "DIR/*/analysis.json) and DIR/analysis/timeline.json (whichever exist),\n" +
    "writes the figures as SVG into DIR/report/ and DIR/report.html.",
  flags: [
    { name: "run", type: "string", valueName: "DIR", help: "run directory or analyze output folder" },
    { name: "analysis", type: "string", valueName: "FILE", help: "analysis.json to show as the final state", defaultText: "found in DIR" },
  ],
  async run(args, ctx) {
    const dir = flagString(args, "run");
    if (dir === undefined) throw new UsageError("--run DIR is required");
    const { writeReport } = await import("../analysis/report/html.js");
    const r = await writeReport(dir, { analysis: flagString(args, "analysis"), log: ctx.verbose ? (m) => ctx.stderr.write(m + "\n") : undefined });
    ctx.stdout.write(`wrote ${r.figures.length} figures and ${dir}/report.html\n`);
    return 0;
  },
});
