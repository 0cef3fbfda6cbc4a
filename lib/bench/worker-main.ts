// Entry point of the innerloop side's process: `node worker-main.js SPEC.json`.
import { runFromArgv } from "./worker.js";

runFromArgv(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`[innerloop] error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
