// Compiles the TypeScript sources in lib/ to dist/ (skipped when TypeScript is
// not installed, as in a packed tarball that already ships dist/).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { root } from "./find-libtorch.mjs";

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = join(require.resolve("typescript/package.json"), "..", "bin", "tsc");
} catch {
  if (existsSync(join(root, "dist", "index.js"))) process.exit(0);
  console.error("innerloop: TypeScript is not installed and dist/ is missing; run `npm install` in the repository");
  process.exit(1);
}
execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.json")], { stdio: "inherit", cwd: root });
