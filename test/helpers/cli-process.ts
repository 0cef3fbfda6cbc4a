// The innerloop CLI from the TypeScript sources (through tsx) in a process of its own: for tests
// that kill it, serve from it, or run several trainings side by side.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import * as path from "node:path";
import { pathToFileURL } from "node:url";

const MAIN = pathToFileURL(path.resolve(import.meta.dirname, "..", "..", "lib/cli/main.ts")).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;

/** The command line that starts the CLI: append its arguments. */
export const CLI_COMMAND = [process.execPath, "--import", "tsx", "--input-type=module", "-e", ENTRY, "--"];

export function spawnCli(args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn(CLI_COMMAND[0]!, [...CLI_COMMAND.slice(1), ...args], { stdio: ["ignore", "pipe", "pipe"], ...opts });
}

/** Runs the CLI to its end; resolves with its exit code and output. */
export function runCli(args: string[], opts: SpawnOptions = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, opts);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
