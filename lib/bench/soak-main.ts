// Entry point of the soak's own process: `node [flags] soak-main.js OPTIONS_JSON` prints the
// SoakResult as one JSON line (samples go to stderr as they come).
import { torch } from "../torch/index.js";
import { runSoak, type SoakOptions } from "./soak.js";

async function mainSoak(arg: string | undefined): Promise<void> {
  if (!arg) throw new Error("usage: soak-main OPTIONS_JSON");
  const o = JSON.parse(arg) as SoakOptions & { threads?: number };
  torch.setNumThreads(o.threads ?? 1);
  const result = await runSoak({
    ...o,
    onSample: (s) => process.stderr.write(`  step ${s.step}: RSS ${(s.rssKB / 1024).toFixed(1)} MB, ${s.liveTensors} live tensors\n`),
  });
  process.stdout.write(JSON.stringify(result) + "\n");
}

mainSoak(process.argv[2]).catch((e: unknown) => {
  process.stderr.write(`[soak] error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
