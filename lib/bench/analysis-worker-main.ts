// The innerloop side of the analysis comparison (lib/bench/analysis-compare.ts), in a process of
// its own: `node analysis-worker-main.js SPEC.json` runs `innerloop analyze`'s own function
// (analyzeDir, what the command calls) with the library's default threads, and prints one JSON
// line: the time analyzeDir measured, the process's peak RSS, and the folder it wrote.
import { readFileSync } from "node:fs";
import { analyzeDir } from "../analysis/run.js";
import { torch } from "../torch/index.js";
import type { AnalysisSpec } from "./analysis-compare.js";

function cpuSecondsSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

const spec = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as AnalysisSpec;
try {
  if (spec.threads > 0) torch.setNumThreads(spec.threads);
  // CPU time of the call (loading the model included: a small part of it, reading a file).
  const cpu0 = process.cpuUsage();
  const r = analyzeDir({
    modelDir: spec.modelDir,
    data: spec.tokensFile,
    seqLen: spec.seqLen,
    batchSize: spec.batchSize,
    maxWindows: spec.maxWindows,
    outDir: spec.outDir,
  });
  const line = {
    side: "innerloop",
    torch: torch.version.libtorch,
    threads: torch.getNumThreads(),
    seconds: Number(r.meta?.seconds),
    cpuSeconds: cpuSecondsSince(cpu0),
    maxRssKB: process.resourceUsage().maxRSS,
    outDir: spec.outDir,
  };
  process.stdout.write(JSON.stringify(line) + "\n");
} catch (e) {
  process.stderr.write(`[innerloop] error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
}
