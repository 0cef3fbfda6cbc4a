#!/usr/bin/env node
// The `innerloop` command. The CLI is written in TypeScript and compiled to dist/.
import { main } from "../dist/cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    // main() reports its own errors; this is only reached by a bug in it.
    process.stderr.write(`innerloop: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
