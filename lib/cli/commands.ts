/**
 * The command registry. Each command lives in its own file under
 * `lib/cli/` and registers itself when imported:
 *
 * ```ts
 * import { registerCommand } from "./commands.js";
 * registerCommand({
 *   name: "analyze",
 *   summary: "measure hidden-state norms and gradients of a model",
 *   usage: "innerloop analyze --model DIR --data PATH [flags]",
 *   flags: [{ name: "model", type: "string", valueName: "DIR", help: "run or HF directory" }],
 *   async run(args) {
 *     // Import heavy layers here, not at the top of the file: `--help` and
 *     // usage errors then work without loading libtorch.
 *     const { analyze } = await import("../analysis/index.js");
 *     ...
 *     return 0;
 *   },
 * });
 * ```
 *
 * and one import line in `main.ts` makes it available.
 */
import type { FlagSpec, FlagValue, ParsedArgs } from "./flags.js";

export interface CommandContext {
  /** Where normal output goes (stdout unless a test redirects it). */
  stdout: NodeJS.WritableStream;
  /** Where progress and messages go. */
  stderr: NodeJS.WritableStream;
  verbose: boolean;
}

export interface CommandDef {
  name: string;
  /** One line for the command list in `innerloop --help`. */
  summary: string;
  /** Usage line(s) for `innerloop NAME --help`. */
  usage: string;
  /** Longer text shown after the flags in `innerloop NAME --help`. */
  details?: string;
  flags: readonly FlagSpec[];
  /** Positional arguments accepted (default 0: flags only). */
  maxPositionals?: number;
  /**
   * Runs the command after its flags parsed and validated. Throw a
   * `UsageError` for bad combinations of flags (exit 2); the model layer's
   * `ConfigError` for an unusable config.json also exits 2; any other Error
   * is a failure (exit 1). Return the exit status otherwise.
   */
  run(args: ParsedArgs, ctx: CommandContext): Promise<number | void>;
}

const registry = new Map<string, CommandDef>();

export function registerCommand(def: CommandDef): void {
  if (registry.has(def.name)) throw new Error(`command ${def.name} is registered twice`);
  const seen = new Set<string>();
  for (const f of def.flags) {
    if (seen.has(f.name)) throw new Error(`command ${def.name} declares --${f.name} twice`);
    seen.add(f.name);
  }
  registry.set(def.name, def);
}

export function getCommand(name: string): CommandDef | undefined {
  return registry.get(name);
}

export function listCommands(): CommandDef[] {
  return [...registry.values()];
}

/** Typed access to parsed flag values. */
export function flagNumber(args: ParsedArgs, name: string): number | undefined {
  const v: FlagValue | undefined = args.values[name];
  return typeof v === "number" ? v : undefined;
}

export function flagString(args: ParsedArgs, name: string): string | undefined {
  const v: FlagValue | undefined = args.values[name];
  return typeof v === "string" ? v : undefined;
}

export function flagBoolean(args: ParsedArgs, name: string): boolean | undefined {
  const v: FlagValue | undefined = args.values[name];
  return typeof v === "boolean" ? v : undefined;
}
