/**
 * A mistake in how the command was called (unknown flag, bad value, missing
 * argument). The CLI prints its message as one line and exits with status 2,
 * the convention for usage errors.
 */
export class UsageError extends Error {
  override name = "UsageError";
  readonly exitCode = 2;
}

/** Exit status for usage errors. */
export const EXIT_USAGE = 2;
/** Exit status for errors at run time. */
export const EXIT_FAILURE = 1;
