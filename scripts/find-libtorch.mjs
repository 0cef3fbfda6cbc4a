// Finds libtorch as the design contract says, in this order:
//   1. the LIBTORCH environment variable (a folder with include/, lib/, share/cmake/Torch);
//   2. a Python installation of torch (`python3 -c "import torch"`);
//   3. otherwise installs the torch wheel into .libtorch/python with pip and uses that.
// The result ({ version, cuda, cmakePrefixPath, libDir, cxx11abi, source }) is
// recorded in build/libtorch.json by the build.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
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

function fromLibtorchDir(dir, source = "LIBTORCH") {
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
  if (process.env.LIBTORCH) return fromLibtorchDir(resolve(process.env.LIBTORCH));
  const sys = probePython();
  if (sys) return { ...sys, source: "python" };
  // The wheel install.mjs installed: used as a libtorch folder, without importing it in Python
  // (its Python dependencies are not installed, and are not needed).
  if (existsSync(join(localTorchDir, "torch", "share", "cmake", "Torch"))) return fromLibtorchDir(join(localTorchDir, "torch"), "local");
  return null;
}

/** Finds libtorch, installing the torch wheel into .libtorch/python when there is none. */
export function findOrInstallLibtorch(log = console.log) {
  const found = findLibtorch();
  if (found) return found;
  log(`innerloop: no libtorch found (LIBTORCH unset, no Python torch); installing the torch wheel into ${localTorchDir}`);
  // With its dependencies: a CUDA wheel's CUDA libraries come as separate packages (nvidia-*).
  // pip's own settings choose the wheel (e.g. PIP_INDEX_URL for PyTorch's CPU-only wheels).
  execFileSync(python(), ["-m", "pip", "install", "--target", localTorchDir, "torch"], { stdio: "inherit" });
  const dir = join(localTorchDir, "torch");
  if (!existsSync(join(dir, "share", "cmake", "Torch"))) {
    throw new Error(`innerloop: pip installed torch, but ${dir} holds no libtorch (share/cmake/Torch); set LIBTORCH to a libtorch folder instead`);
  }
  return fromLibtorchDir(dir, "local");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(findLibtorch(), null, 2));
}
