/**
 * A small, strict command-line flag parser.
 *
 * Every flag is declared with its type and the values it allows; anything
 * else is refused with a one-line `UsageError` that names the flag and says
 * what is allowed. The same validators check values coming from JSON config
 * files (`validateFlagValue`), so a bad field in `--config FILE` reads the
 * same as a bad flag.
 */
import { UsageError } from "./errors.js";

export type FlagType = "int" | "number" | "string" | "boolean" | "enum";

export interface FlagSpec {
  /** Name without dashes, kebab-case: `n-layer` is given as `--n-layer`. */
  name: string;
  type: FlagType;
  /** One line for `--help`. */
  help: string;
  /** Placeholder shown in help, e.g. `N`, `DIR`. */
  valueName?: string;
  /** Allowed values for `enum` flags. */
  choices?: readonly string[];
  /** Inclusive lower bound for numbers (exclusive when `minExclusive`). */
  min?: number;
  minExclusive?: boolean;
  /** Inclusive upper bound for numbers (exclusive when `maxExclusive`). */
  max?: number;
  maxExclusive?: boolean;
  /** Extra check for strings: returns the description of what is allowed when the value is bad. */
  check?: (value: string) => string | undefined;
  /** What is allowed, for error messages; derived from the type and bounds when absent. */
  allowed?: string;
  /** Shown in help only; defaults are applied by the command, which knows its presets. */
  defaultText?: string;
}

export type FlagValue = number | string | boolean;

export interface ParsedArgs {
  /** Values by kebab-case flag name, only for flags that were given. */
  values: Record<string, FlagValue>;
  /** Positional arguments (only when the command accepts them). */
  positionals: string[];
  help: boolean;
  verbose: boolean;
}

/** A phrase saying which values a flag allows, used in every error about it. */
export function allowedText(spec: FlagSpec): string {
  if (spec.allowed) return spec.allowed;
  switch (spec.type) {
    case "enum":
      return `one of ${(spec.choices ?? []).join(", ")}`;
    case "boolean":
      return "true or false";
    case "string":
      return "a non-empty string";
    case "int":
    case "number": {
      const kind = spec.type === "int" ? "an integer" : "a number";
      const parts: string[] = [];
      if (spec.min !== undefined) parts.push(`${spec.minExclusive ? ">" : ">="} ${spec.min}`);
      if (spec.max !== undefined) parts.push(`${spec.maxExclusive ? "<" : "<="} ${spec.max}`);
      return parts.length ? `${kind} ${parts.join(" and ")}` : kind;
    }
  }
}

function bad(label: string, spec: FlagSpec, raw: unknown): UsageError {
  const shown = typeof raw === "string" ? JSON.stringify(raw) : String(JSON.stringify(raw) ?? raw);
  return new UsageError(`${label} must be ${allowedText(spec)} (got ${shown})`);
}

/**
 * Checks one value against its spec. `raw` is a string from the command line
 * or any JSON value from a config file; `label` names it in the error
 * (`--n-layer`, or `field "n-layer" of cfg.json`).
 */
export function validateFlagValue(spec: FlagSpec, raw: unknown, label = `--${spec.name}`): FlagValue {
  switch (spec.type) {
    case "boolean": {
      if (typeof raw === "boolean") return raw;
      if (raw === "true" || raw === "1") return true;
      if (raw === "false" || raw === "0") return false;
      throw bad(label, spec, raw);
    }
    case "int":
    case "number": {
      let n: number;
      if (typeof raw === "number") n = raw;
      else if (typeof raw === "string" && raw.trim() !== "" && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw.trim())) n = Number(raw);
      else throw bad(label, spec, raw);
      if (!Number.isFinite(n)) throw bad(label, spec, raw);
      if (spec.type === "int" && !Number.isSafeInteger(n)) throw bad(label, spec, raw);
      if (spec.min !== undefined && (spec.minExclusive ? n <= spec.min : n < spec.min)) throw bad(label, spec, raw);
      if (spec.max !== undefined && (spec.maxExclusive ? n >= spec.max : n > spec.max)) throw bad(label, spec, raw);
      return n;
    }
    case "enum": {
      if (typeof raw !== "string" || !(spec.choices ?? []).includes(raw)) throw bad(label, spec, raw);
      return raw;
    }
    case "string": {
      if (typeof raw !== "string" || raw === "") throw bad(label, spec, raw);
      if (spec.check) {
        const problem = spec.check(raw);
        if (problem !== undefined) throw new UsageError(`${label} must be ${problem} (got ${JSON.stringify(raw)})`);
      }
      return raw;
    }
  }
}

/** Flags every command understands. */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  { name: "help", type: "boolean", help: "show this help" },
  { name: "verbose", type: "boolean", help: "print stack traces with errors" },
];

export interface ParseOptions {
  /** How many positional arguments the command accepts (default 0). */
  maxPositionals?: number;
}

/**
 * Parses `argv` (the arguments after the command name). Accepts `--flag value`,
 * `--flag=value`, bare `--flag` for booleans, `-h` for help and `--` to end
 * flags. Unknown flags, repeated flags, missing values and bad values are
 * `UsageError`s.
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[], opts: ParseOptions = {}): ParsedArgs {
  const byName = new Map<string, FlagSpec>();
  for (const s of [...GLOBAL_FLAGS, ...specs]) byName.set(s.name, s);
  const values: Record<string, FlagValue> = {};
  const positionals: string[] = [];
  let help = false;
  let verbose = false;
  let flagsEnded = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (flagsEnded || !arg.startsWith("-") || arg === "-" || /^-\d/.test(arg)) {
      positionals.push(arg);
      continue;
    }
    if (arg === "--") {
      flagsEnded = true;
      continue;
    }
    if (arg === "-h") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--")) throw new UsageError(`unknown flag ${arg}`);
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    const spec = byName.get(name);
    if (!spec) throw new UsageError(`unknown flag --${name}${suggest(name, [...byName.keys()])}`);
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (raw === undefined) {
      if (spec.type === "boolean") raw = "true";
      else {
        const next = argv[i + 1];
        // A following flag is not a value; negative numbers are.
        if (next === undefined || (next.startsWith("--") && next.length > 2)) {
          throw new UsageError(`--${name} needs a value: ${allowedText(spec)}`);
        }
        raw = next;
        i++;
      }
    }
    if (name === "help") {
      help = validateFlagValue(spec, raw) as boolean;
      continue;
    }
    if (name === "verbose") {
      verbose = validateFlagValue(spec, raw) as boolean;
      continue;
    }
    if (name in values) throw new UsageError(`--${name} was given more than once`);
    values[name] = validateFlagValue(spec, raw);
  }
  const maxPos = opts.maxPositionals ?? 0;
  if (!help && positionals.length > maxPos) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[maxPos])}${maxPos === 0 ? " (this command takes only flags)" : ""}`);
  }
  return { values, positionals, help, verbose };
}

/** ` (did you mean --x?)` when a known flag is one or two edits away. */
function suggest(name: string, known: string[]): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best ? ` (did you mean --${best}?)` : "";
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** Formats the flag list for `--help`. */
export function formatFlagHelp(specs: readonly FlagSpec[]): string {
  const rows = [...specs, ...GLOBAL_FLAGS].map((s) => {
    const value = s.type === "boolean" ? "" : ` ${s.valueName ?? (s.type === "enum" ? (s.choices ?? []).join("|") : s.type === "string" ? "VALUE" : "N")}`;
    const def = s.defaultText !== undefined ? ` (default: ${s.defaultText})` : "";
    return [`  --${s.name}${value}`, `${s.help}${def}`] as const;
  });
  const width = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows.map(([l, r]) => (l.length + 2 > width ? `${l}\n${" ".repeat(width)}${r}` : `${l.padEnd(width)}${r}`)).join("\n");
}
