// Loads the compiled addon (a matching prebuild or the local build, via
// node-gyp-build) and checks that the libtorch it loaded is the one it was
// built against.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { constants } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
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
  /** Set when the addon is a prebuild (its path in the package), chosen at install for this libtorch. */
  prebuild?: string;
  builtAt?: string;
}

/** Where the loaded addon came from, for `innerloop --version` and bug reports. */
export interface AddonOrigin {
  /** The file loaded. */
  file: string;
  /** The prebuild's file name (e.g. `innerloop.torch2.13.0.cpu.glibc.node`) when install chose one; null for a source build. */
  prebuild: string | null;
  /** When install copied the prebuild or the build finished (ISO 8601), if recorded. */
  builtAt: string | null;
  /** The libtorch folder it runs on, as recorded at install. */
  libDir: string | null;
}

let origin: AddonOrigin | null = null;

function readBuildRecord(): BuildRecord | null {
  const p = join(packageRoot, "build", "libtorch.json");
  try {
    return JSON.parse(readFileSync(p, "utf8")) as BuildRecord;
  } catch {
    return null;
  }
}

/** glibc's RTLD_NODELETE; os.constants.dlopen does not export it. */
const RTLD_NODELETE = 0x1000;
/** libtorch's libraries in dependency order; the CUDA ones exist only in CUDA builds. */
const TORCH_LIBS = ["libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so"];

/**
 * A prebuild's rpath names the libtorch folder of the machine that built it. Loading the libtorch
 * recorded at install time first, by full path, makes the dynamic linker reuse those libraries (it
 * matches the addon's needs by soname) wherever libtorch lives on this machine. process.dlopen loads
 * them and then reports that they are not addons; RTLD_NODELETE keeps them loaded.
 */
function preloadLibtorch(record: BuildRecord): void {
  if (process.platform !== "linux") return;
  if (!existsSync(record.libDir)) {
    throw new Error(
      `innerloop: the prebuilt addon was installed for libtorch ${record.version} in ${record.libDir}, which no longer exists. ` +
        "Run `npm rebuild innerloop` so that it finds the libtorch on this machine.",
    );
  }
  for (const lib of TORCH_LIBS) {
    const path = join(record.libDir, lib);
    if (!existsSync(path)) continue;
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, path, constants.dlopen.RTLD_NOW | RTLD_NODELETE);
    } catch (err) {
      if (!String((err as Error).message).includes("did not self-register")) {
        throw new Error(`innerloop: cannot load ${path} (${(err as Error).message.split("\n")[0]}); see README.md, Troubleshooting.`);
      }
    }
  }
}

/** The libtorch version a libtorch folder holds now (Python torch's version.py or libtorch's build-version). */
function installedTorchVersion(libDir: string): string | null {
  for (const [file, re] of [
    ["../version.py", /__version__\s*=\s*'([^'+]+)/],
    ["../build-version", /^([0-9][^+\s]*)/],
  ] as const) {
    try {
      const m = re.exec(readFileSync(join(libDir, file), "utf8"));
      if (m) return m[1]!;
    } catch {
      // not this kind of folder
    }
  }
  return null;
}

function loadAddon(): any {
  // libtorch's OpenMP threads spin while they wait for work. When other processes compete for
  // the cores (a shared machine, tests run in parallel) that spinning starves the thread doing
  // the work: a tiny model's step was measured at 1.1 s instead of 16 ms. Passive waiting costs
  // little (18 ms there) and must be chosen before libgomp starts, i.e. before the addon loads.
  process.env.OMP_WAIT_POLICY ??= "PASSIVE";
  const record = readBuildRecord();
  const cannotLoad = (err: unknown): Error => {
    const reason = err instanceof Error ? err.message.split("\n")[0] : String(err);
    const built = record ? `It was built against libtorch ${record.version} in ${record.libDir}. ` : "";
    return new Error(
      `innerloop: cannot load the native addon (${reason}). ${built}` +
        "Rebuild it for the libtorch on this machine with `npm rebuild innerloop` (or `npm run build:native` in the repository); " +
        "see README.md, Troubleshooting.",
    );
  };
  const nodeGypBuild = require("node-gyp-build") as { resolve(dir: string): string };
  let file: string;
  try {
    file = nodeGypBuild.resolve(packageRoot);
  } catch (err) {
    throw cannotLoad(err);
  }
  // node-gyp-build falls back to prebuilds/ when build/Release is empty, choosing by platform and
  // Node-API only: it cannot tell prebuilds for different libtorch versions apart. The install step
  // copies the prebuild that matches this machine's libtorch to build/Release, so a file picked
  // from prebuilds/ here was never matched: refuse it.
  if (relative(packageRoot, file).startsWith(`prebuilds${sep}`)) {
    throw new Error(
      "innerloop: no addon was installed for this machine: build/Release/innerloop.node is missing (install scripts did not run, " +
        "or the install failed). Run `npm rebuild innerloop`: it uses the prebuilt addon for the libtorch here if there is one, " +
        "otherwise builds from source; see README.md, Troubleshooting.",
    );
  }
  if (record?.prebuild) {
    preloadLibtorch(record);
    const now = installedTorchVersion(record.libDir);
    if (now && now !== record.version) {
      throw new Error(
        `innerloop: the prebuilt addon was installed for libtorch ${record.version}, but ${record.libDir} now holds libtorch ${now}. ` +
          "Run `npm rebuild innerloop` to install the addon for it.",
      );
    }
  }
  let addon: any;
  try {
    addon = require(file);
  } catch (err) {
    throw cannotLoad(err);
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
  origin = {
    file,
    prebuild: record?.prebuild ? record.prebuild.split(/[\\/]/).pop()! : null,
    builtAt: record?.builtAt ?? null,
    libDir: record?.libDir ?? null,
  };
  return addon;
}

/** The raw addon. Its functions take tensors positionally; use the typed API instead. */
export const native: any = loadAddon();
export const ops: any = native.ops;
/** Where the loaded addon came from (a prebuild or a source build). */
export const addonOrigin: AddonOrigin = origin!;
