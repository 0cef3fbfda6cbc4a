// The innerloop command line run as a child process from the TypeScript sources (through tsx), so
// that tests exercise the current code whether or not dist/ has been rebuilt.
import { spawn } from "node:child_process";
import * as path from "node:path";
import { pathToFileURL } from "node:url";

export const ROOT = path.resolve(import.meta.dirname, "..", "..");
const MAIN = pathToFileURL(path.join(ROOT, "lib/cli/main.ts")).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `innerloop ARGS`; `onStart` gets the child (to send signals). */
export function cli(args: string[], opts: { onStart?: (child: ReturnType<typeof spawn>) => void; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", ENTRY, "--", ...args], {
      cwd: ROOT,
      // One intra-op thread: test files run in parallel on few cores, and oversubscribed OpenMP
      // pools make every step wait (10x slower).
      env: { ...process.env, FORCE_COLOR: "0", OMP_NUM_THREADS: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`innerloop ${args.join(" ")} timed out\n${stderr}`));
    }, opts.timeoutMs ?? 90_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    opts.onStart?.(child);
  });
}
