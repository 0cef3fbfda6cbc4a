/**
 * Entry point of the `innerloop` command: global flags, dispatch to the
 * registered commands, and the error policy (usage errors and unusable
 * configuration files: one line, exit 2; failures: one line, exit 1; stack
 * traces only with --verbose).
 */
import { getCommand, listCommands, type CommandContext, type CommandDef } from "./commands.js";
import { EXIT_FAILURE, EXIT_USAGE, UsageError } from "./errors.js";
import { formatFlagHelp, parseFlags } from "./flags.js";
import { ConfigError } from "../models/errors.js";
import { packageVersion, versionText } from "./version.js";

// Commands: one import line each; every file registers itself.
import "./train.js";
import "./sample.js";
import "./analyze.js";
import "./report.js";
import "./reproduce.js";
import "./bench.js";
import "./sweep.js";

export interface MainIO {
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

function topHelp(): string {
  const cmds = listCommands();
  const width = Math.max(...cmds.map((c) => c.name.length), 8) + 2;
  return [
    `innerloop ${packageVersion()}: train causal language models on libtorch and study the inner optimization in their residual streams`,
    "",
    "usage: innerloop COMMAND [flags]",
    "       innerloop COMMAND --help",
    "       innerloop --version",
    "",
    "commands:",
    ...cmds.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    "",
    "global flags:",
    "  --help, -h     show help",
    "  --verbose      print stack traces with errors",
    "  --version      print versions of innerloop and libtorch and whether CUDA works",
  ].join("\n");
}

export function commandHelp(cmd: CommandDef): string {
  const parts = [`usage: ${cmd.usage}`, "", cmd.summary, "", "flags:", formatFlagHelp(cmd.flags)];
  if (cmd.details) parts.push("", cmd.details);
  return parts.join("\n");
}

/** Runs the CLI with `argv` (without node and script) and returns the exit status. */
export async function main(argv: readonly string[], io: MainIO = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const args = [...argv];
  let verbose = false;
  // Global flags before the command name.
  while (args.length && args[0]!.startsWith("-")) {
    const a = args.shift()!;
    if (a === "--verbose") verbose = true;
    else if (a === "--help" || a === "-h") {
      stdout.write(topHelp() + "\n");
      return 0;
    } else if (a === "--version" || a === "-V") {
      const { text, ok } = await versionText();
      stdout.write(text + "\n");
      return ok ? 0 : EXIT_FAILURE;
    } else {
      stderr.write(`innerloop: unknown flag ${a} (see innerloop --help)\n`);
      return EXIT_USAGE;
    }
  }
  const name = args.shift();
  if (name === undefined) {
    stderr.write(topHelp() + "\n");
    return EXIT_USAGE;
  }
  if (name === "help") {
    const target = args[0] !== undefined ? getCommand(args[0]) : undefined;
    stdout.write((target ? commandHelp(target) : topHelp()) + "\n");
    return 0;
  }
  const cmd = getCommand(name);
  if (!cmd) {
    stderr.write(`innerloop: unknown command ${JSON.stringify(name)}; commands: ${listCommands().map((c) => c.name).join(", ")}\n`);
    return EXIT_USAGE;
  }
  const prefix = `innerloop ${cmd.name}`;
  // Honour --verbose even when parsing fails, so usage errors can show stacks too.
  if (args.includes("--verbose")) verbose = true;
  try {
    const parsed = parseFlags(args, cmd.flags, { maxPositionals: cmd.maxPositionals ?? 0 });
    if (parsed.help) {
      stdout.write(commandHelp(cmd) + "\n");
      return 0;
    }
    const ctx: CommandContext = { stdout, stderr, verbose: verbose || parsed.verbose };
    const code = await cmd.run(parsed, ctx);
    return code ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      stderr.write(`${prefix}: ${e.message} (see ${prefix} --help)\n`);
      if (verbose && e.stack) stderr.write(e.stack + "\n");
      return EXIT_USAGE;
    }
    if (e instanceof ConfigError) {
      // A bad model or run configuration is bad input, like a bad flag: the user fixes the file.
      stderr.write(`${prefix}: ${oneLine(e)}\n`);
      if (verbose && e.stack) stderr.write(e.stack + "\n");
      return EXIT_USAGE;
    }
    stderr.write(`${prefix}: error: ${oneLine(e)}\n`);
    if (verbose && e instanceof Error && e.stack) stderr.write(e.stack + "\n");
    return EXIT_FAILURE;
  }
}

/** The first line of an error's message, which is what a user needs without --verbose. */
function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const first = msg.split("\n").find((l) => l.trim() !== "") ?? msg;
  return first.trim();
}
