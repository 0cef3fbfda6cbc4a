// Finds libtorch as the design contract says, in this order:
//   1. the LIBTORCH environment variable (a folder with include/, lib/, share/cmake/Torch);
//   2. a Python installation of torch (`python3 -c "import torch"`);
//   3. otherwise installs the torch wheel with pip (torchToFetch says which), into that Python's
//      environment when pip may write there (one torch for the addon and the tests' Python),
//      else into .libtorch/python, and uses that.
// The result ({ version, cuda, cmakePrefixPath, libDir, cxx11abi, source }) is
// recorded in build/libtorch.json by the build.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const localTorchDir = join(root, ".libtorch", "python");

const PY_PROBE = `
import json, os, torch, torch.utils
print(json.dumps({
  "version": torch.__version__.split("+")[0],
  "cuda": torch.version.cuda,
  "cmakePrefixPath": torch.utils.cmake_prefix_path,
  "libDir": os.path.join(os.path.dirname(torch.__file__), "lib"),
  "cxx11abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
}))
`;

function python() {
  return process.env.PYTHON || "python3";
}

function probePython(extraPath) {
  const env = { ...process.env };
  if (extraPath) env.PYTHONPATH = extraPath + (env.PYTHONPATH ? `:${env.PYTHONPATH}` : "");
  try {
    const out = execFileSync(python(), ["-c", PY_PROBE], { env, stdio: ["ignore", "pipe", "ignore"] });
    return JSON.parse(out.toString().trim().split("\n").pop());
  } catch {
    return null;
  }
}

export function libtorchFromFolder(dir, source = "LIBTORCH") {
  const cmakeDir = join(dir, "share", "cmake", "Torch");
  if (!existsSync(cmakeDir)) {
    throw new Error(`LIBTORCH=${dir} is not a libtorch folder: ${cmakeDir} does not exist`);
  }
  // build-version ("2.4.0+cu121") is in libtorch downloads; version.h moved to
  // include/torch/headeronly/ in 2.10 and splits the macro over two lines.
  // A Python torch folder (as pip installs it) has version.py ("2.11.0+cu130").
  let version = "unknown";
  let suffix = "";
  for (const f of ["build-version", "version.py", join("include", "torch", "headeronly", "version.h"), join("include", "torch", "csrc", "api", "include", "torch", "version.h")]) {
    const p = join(dir, f);
    if (!existsSync(p)) continue;
    const text = readFileSync(p, "utf8");
    const m = text.match(/TORCH_VERSION\s*\\?\s*"([^"]+)"/) || text.match(/__version__\s*=\s*'([^']+)'/) || text.match(/^(\d+\.\d+\.\d+\S*)/);
    if (m) { [version, suffix = ""] = m[1].trim().split("+"); break; }
  }
  const libDir = join(dir, "lib");
  const libs = existsSync(libDir) ? readdirSync(libDir) : [];
  const cu = /^cu(\d+)(\d)$/.exec(suffix);
  const cuda = libs.some((f) => f.startsWith("libtorch_cuda")) ? (cu ? `${cu[1]}.${cu[2]}` : "unknown") : null;
  // Before 2.7, libtorch came in a pre-C++11-ABI variant too; its TorchConfig.cmake says so.
  const config = join(cmakeDir, "TorchConfig.cmake");
  const cxx11abi = !(existsSync(config) && readFileSync(config, "utf8").includes("_GLIBCXX_USE_CXX11_ABI=0"));
  return { version, cuda, cmakePrefixPath: join(dir, "share", "cmake"), libDir, cxx11abi, source };
}

/** Returns libtorch's location without installing anything, or null. */
export function findLibtorch() {
  if (process.env.LIBTORCH) return libtorchFromFolder(resolve(process.env.LIBTORCH));
  const sys = probePython();
  if (sys) return { ...sys, source: "python" };
  // The wheel install.mjs installed: used as a libtorch folder, without importing it in Python
  // (its Python dependencies are not installed, and are not needed).
  if (existsSync(join(localTorchDir, "torch", "share", "cmake", "Torch"))) return libtorchFromFolder(join(localTorchDir, "torch"), "local");
  return null;
}

// Approximate download sizes, said before a download starts so that nobody wonders what is happening.
const DOWNLOAD = { cpu: "about 190 MB", cuda: "about 900 MB, plus about 3 GB of NVIDIA CUDA libraries" };

/** True when an NVIDIA driver is loaded (a GPU may be used), without starting anything heavy. */
function hasNvidiaDriver() {
  return existsSync("/proc/driver/nvidia/version");
}

/**
 * Which torch to fetch: INNERLOOP_TORCH (`cpu`, `cu130`, ..., optionally `@<version>`, e.g.
 * `cpu@2.13.0`), else CUDA when an NVIDIA driver is loaded and CPU otherwise; the version is the
 * one given, else the newest with a prebuilt addon of that flavour (so that nothing compiles), else
 * the newest pip finds. Returns { flavour, version, spec, args: pip arguments }.
 */
export function torchToFetch(prebuilds = []) {
  const asked = (process.env.INNERLOOP_TORCH ?? "").trim();
  const m = /^(cpu|cu\d{2,3}|cuda)(?:@(\d+\.\d+\.\d+))?$/.exec(asked);
  if (asked && !m) {
    throw new Error(`innerloop: INNERLOOP_TORCH=${asked} is not a torch flavour: use cpu, cuda (PyPI's default CUDA wheel) or cu<version> such as cu130, optionally with @<torch version> (cpu@2.13.0)`);
  }
  const flavour = m ? m[1] : hasNvidiaDriver() ? "cuda" : "cpu";
  const prebuilt = prebuilds.filter((p) => p.flavour === flavour || (flavour === "cuda" && p.flavour.startsWith("cu")));
  const version = m?.[2] ?? prebuilt[0]?.version ?? null;
  const spec = version ? `torch==${version}` : "torch";
  // PyPI's Linux torch wheels are CUDA builds; PyTorch's own index has one per flavour.
  const index = flavour === "cuda" ? [] : ["--index-url", `https://download.pytorch.org/whl/${flavour}`];
  return { flavour, version, spec, args: [spec, ...index] };
}

/**
 * Where pip should put torch: the Python environment itself when pip may write there (a virtual
 * environment, pyenv, conda, a user-owned Python), so that the tests' Python and the addon use one
 * torch; otherwise (a system Python, an externally managed one) .libtorch/python.
 */
function pythonIsWritable() {
  const probe = "import os, sys, sysconfig; p = sysconfig.get_paths(); print(os.access(p['purelib'], os.W_OK) and not os.path.exists(os.path.join(p['stdlib'], 'EXTERNALLY-MANAGED')))";
  try {
    return execFileSync(python(), ["-c", probe], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() === "True";
  } catch {
    return false;
  }
}

/**
 * Finds libtorch, installing the torch wheel when there is none. `prebuilds` (parsed prebuild
 * names) steer the choice of version towards one with a prebuilt addon.
 */
export function findOrInstallLibtorch(log = console.log, prebuilds = []) {
  const found = findLibtorch();
  if (found) return found;
  const want = torchToFetch(prebuilds);
  const intoPython = pythonIsWritable();
  const target = intoPython ? [] : ["--target", localTorchDir];
  const what = `torch${want.version ? ` ${want.version}` : ""} (${want.flavour === "cpu" ? "CPU" : want.flavour === "cuda" ? "CUDA" : `CUDA ${want.flavour}`}, ${DOWNLOAD[want.flavour === "cpu" ? "cpu" : "cuda"]})`;
  log(`innerloop: no libtorch found (LIBTORCH unset, no torch in ${python()}); installing ${what} with pip into ${intoPython ? `${python()}'s environment, where the tests' Python finds it too` : localTorchDir}. Choose another with INNERLOOP_TORCH=cpu|cu130|cuda[@version].`);
  const args = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", ...target, ...want.args];
  const logFile = join(tmpdir(), `innerloop-pip-${process.pid}.log`);
  const res = spawnSync(python(), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  if (res.status !== 0) {
    writeFileSync(logFile, `${res.stdout ?? ""}${res.stderr ?? ""}${res.error ? String(res.error) : ""}`);
    const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
    throw new Error(`innerloop: pip could not install torch (pip's output: ${logFile}); install it by hand with \`${[python(), ...args.filter((a) => a !== "--quiet")].map(quote).join(" ")}\` (or set LIBTORCH to a libtorch folder), then \`npm rebuild innerloop\``);
  }
  const again = findLibtorch();
  if (!again) {
    throw new Error(`innerloop: pip installed torch, but no libtorch is found (${intoPython ? `${python()} cannot import torch` : `${localTorchDir}/torch has no share/cmake/Torch`}); set LIBTORCH to a libtorch folder instead`);
  }
  return again;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(findLibtorch(), null, 2));
}
