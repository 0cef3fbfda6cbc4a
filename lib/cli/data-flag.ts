/**
 * `--data PATH` checked the same way in every command: a path that does not exist is a usage
 * error (one line, exit 2) before any model or corpus is loaded.
 */
import * as fs from "node:fs";
import { UsageError } from "./errors.js";

/** The bundled corpus, accepted by name. */
const BUNDLED = "moby-dick";

export function checkDataPath(data: string): string {
  if (data !== BUNDLED && !fs.existsSync(data)) {
    throw new UsageError(`--data: ${data} does not exist (give 'moby-dick', a text file, a folder of text files or a .bin token file)`);
  }
  return data;
}
