// The error for a model configuration that cannot be used: a config.json that is not JSON, a field
// that is missing, of the wrong type or out of range, an architecture we do not support. Its own
// class so that callers can tell "this file is wrong" (the user fixes the file; the CLI exits 2, as
// for a bad flag) from failures at run time. Kept free of imports so that the CLI can check for it
// without loading libtorch.

/** Longest rendering of a bad value in a message: a huge array or string must not flood the line. */
const MAX_SHOWN = 60;

/** A value as it appears in a message: JSON, shortened, always on one line. */
export function showValue(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? "undefined" : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN - 3)}...` : s;
}

/**
 * A model configuration that cannot be used. The message is one line:
 * `FILE: FIELD PROBLEM` (e.g. `run/config.json: n_layer must be a positive integer, got -2`),
 * or `FILE: PROBLEM` when the file as a whole is wrong.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** The file that holds the configuration (or the label the caller gave it). */
  readonly file: string;
  /** The field at fault, dotted for nested fields (`rope_scaling.factor`); undefined when the whole file is, or the message names it. */
  readonly field: string | undefined;

  constructor(file: string, field: string | undefined, problem: string) {
    // Line breaks (from a JSON parser's message that quotes the text) would split the CLI's one line.
    super(`${file}: ${field !== undefined ? `${field} ` : ""}${problem}`.replace(/\s*[\r\n]+\s*/g, " "));
    this.file = file;
    this.field = field;
  }
}
