// Builds the addon with cmake-js against the libtorch that find-libtorch.mjs
// finds (installing one if needed) and records what it used in build/libtorch.json.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { findOrInstallLibtorch, root } from "./find-libtorch.mjs";

const require = createRequire(import.meta.url);
const torch = findOrInstallLibtorch();
console.log(`innerloop: building against libtorch ${torch.version} (${torch.cuda ? `CUDA ${torch.cuda}` : "CPU"}) from ${torch.libDir}`);

const addonApiDir = dirname(require.resolve("node-addon-api/package.json"));
const cmakeJs = join(dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
const args = [
  cmakeJs, "build", "-d", root, "-O", join(root, "build"), "-B", "Release",
  "-p", String(Math.max(1, availableParallelism())),
  `--CDCMAKE_PREFIX_PATH=${torch.cmakePrefixPath}`,
  `--CDNODE_ADDON_API_DIR=${addonApiDir}`,
];
try {
  execFileSync(process.execPath, args, { stdio: "inherit", cwd: root });
} catch {
  console.error("innerloop: building the native addon failed (see the compiler output above).");
  console.error("  It needs cmake >= 3.18, a C++17 compiler (C++20 for libtorch >= 2.14) and libtorch >= 2.4; see README.md, Troubleshooting.");
  process.exit(1);
}

mkdirSync(join(root, "build"), { recursive: true });
writeFileSync(join(root, "build", "libtorch.json"), JSON.stringify({ ...torch, builtAt: new Date().toISOString() }, null, 2) + "\n");
