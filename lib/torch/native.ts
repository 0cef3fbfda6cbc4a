// Loads the compiled addon (a matching prebuild or the local build, via
// node-gyp-build) and checks that the libtorch it loaded is the one it was
// built against.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { OutOfMemoryError, TorchError } from "./errors.js";

/** The package root: two levels above this file in lib/torch and in dist/torch alike. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

const require = createRequire(import.meta.url);

interface BuildRecord {
  version: string;
  cuda: string | null;
  libDir: string;
  source: string;
}

function readBuildRecord(): BuildRecord | null {
  const p = join(packageRoot, "build", "libtorch.json");
  try {
    return JSON.parse(readFileSync(p, "utf8")) as BuildRecord;
  } catch {
    return null;
  }
}

function loadAddon(): any {
  const record = readBuildRecord();
  let addon: any;
  try {
    const nodeGypBuild = require("node-gyp-build") as (dir: string) => any;
    addon = nodeGypBuild(packageRoot);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split("\n")[0] : String(err);
    const built = record ? `It was built against libtorch ${record.version} in ${record.libDir}. ` : "";
    throw new Error(
      `innerloop: cannot load the native addon (${reason}). ${built}` +
        "Rebuild it for the libtorch on this machine with `npm rebuild innerloop` (or `npm run build:native` in the repository); " +
        "see README.md, Troubleshooting.",
    );
  }
  const info = addon.buildInfo();
  if (record && info.loadedLibrary && existsSync(record.libDir)) {
    const loadedDir = realpathSync(dirname(info.loadedLibrary));
    if (loadedDir !== realpathSync(record.libDir) && !process.env.INNERLOOP_ALLOW_LIBTORCH_MISMATCH) {
      throw new Error(
        `innerloop: the addon was built against libtorch ${record.version} in ${record.libDir} but loaded ${info.loadedLibrary}. ` +
          "Unset LD_LIBRARY_PATH or rebuild with `npm rebuild innerloop` (set INNERLOOP_ALLOW_LIBTORCH_MISMATCH=1 to go on anyway).",
      );
    }
  }
  addon.initErrors({ TorchError, OutOfMemoryError });
  return addon;
}

/** The raw addon. Its functions take tensors positionally; use the typed API instead. */
export const native: any = loadAddon();
export const ops: any = native.ops;
