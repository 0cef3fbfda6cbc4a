/**
 * `innerloop report`: plots of a run's analysis (final analysis and training timeline) and
 * DIR/report.html beside them.
 */
import { registerCommand, flagString } from "./commands.js";
import { UsageError } from "./errors.js";

registerCommand({
  name: "report",
  summary: "render the analysis of a run (or an analyze output folder) as plots and report.html",
  usage: "innerloop report --run DIR",
  details:
    "Reads DIR/analysis.json or DIR/analysis/analysis.json and DIR/analysis/timeline.json (whichever exist),\n" +
    "writes the figures as SVG into DIR/report/ and DIR/report.html.",
  flags: [{ name: "run", type: "string", valueName: "DIR", help: "run directory or analyze output folder" }],
  async run(args, ctx) {
    const dir = flagString(args, "run");
    if (dir === undefined) throw new UsageError("--run DIR is required");
    const { writeReport } = await import("../analysis/report/html.js");
    const r = await writeReport(dir, { log: ctx.verbose ? (m) => ctx.stderr.write(m + "\n") : undefined });
    ctx.stdout.write(`wrote ${r.figures.length} figures and ${dir}/report.html\n`);
    return 0;
  },
});
