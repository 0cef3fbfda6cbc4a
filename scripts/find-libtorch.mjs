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

function fromLibtorchDir(dir) {
  const cmakeDir = join(dir, "share", "cmake", "Torch");
  if (!existsSync(cmakeDir)) {
    throw new Error(`LIBTORCH=${dir} is not a libtorch folder: ${cmakeDir} does not exist`);
  }
  let version = "unknown";
  for (const f of ["build-version", join("include", "torch", "csrc", "api", "include", "torch", "version.h")]) {
    const p = join(dir, f);
    if (!existsSync(p)) continue;
    const text = readFileSync(p, "utf8");
    const m = text.match(/TORCH_VERSION\s+"([^"]+)"/) || text.match(/^(\d+\.\d+\.\d+)/);
    if (m) { version = m[1].split("+")[0]; break; }
  }
  const libDir = join(dir, "lib");
  const libs = existsSync(libDir) ? readdirSync(libDir) : [];
  const cuda = libs.some((f) => f.startsWith("libtorch_cuda")) ? "unknown" : null;
  return { version, cuda, cmakePrefixPath: join(dir, "share", "cmake"), libDir, cxx11abi: true, source: "LIBTORCH" };
}

/** Returns libtorch's location without installing anything, or null. */
export function findLibtorch() {
  if (process.env.LIBTORCH) return fromLibtorchDir(resolve(process.env.LIBTORCH));
  const sys = probePython();
  if (sys) return { ...sys, source: "python" };
  if (existsSync(join(localTorchDir, "torch"))) {
    const local = probePython(localTorchDir);
    if (local) return { ...local, source: "local" };
  }
  return null;
}

/** Finds libtorch, installing the torch wheel into .libtorch/python when there is none. */
export function findOrInstallLibtorch(log = console.log) {
  const found = findLibtorch();
  if (found) return found;
  log(`innerloop: no libtorch found (LIBTORCH unset, no Python torch); installing the torch wheel into ${localTorchDir}`);
  execFileSync(python(), ["-m", "pip", "install", "--no-deps", "--target", localTorchDir, "torch"], { stdio: "inherit" });
  const local = probePython(localTorchDir);
  if (!local) {
    throw new Error("innerloop: installed torch but cannot import it; set LIBTORCH to a libtorch folder instead");
  }
  return { ...local, source: "local" };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(findLibtorch(), null, 2));
}
