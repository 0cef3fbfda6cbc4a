// The cmake-js command line that builds the addon against a given libtorch, shared by
// build-native.mjs (npm install, npm run build:native), prebuild.mjs and release.mjs.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

function which(cmd) {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * CMake definitions a CUDA libtorch from a pip wheel needs when the machine has nvcc but not the
 * whole CUDA toolkit: the headers and nvrtc of the nvidia-* wheels installed beside torch
 * (site-packages/nvidia/<package>/{include,lib}; CUDA 13 wheels put them all in nvidia/cu13).
 */
function cudaDefinitions(torch) {
  const nvcc = process.env.CUDA_HOME && existsSync(join(process.env.CUDA_HOME, "bin", "nvcc"))
    ? join(process.env.CUDA_HOME, "bin", "nvcc")
    : which("nvcc") ?? (existsSync("/usr/local/cuda/bin/nvcc") ? "/usr/local/cuda/bin/nvcc" : null);
  const defs = [];
  if (nvcc) defs.push(`CMAKE_CUDA_COMPILER=${nvcc}`, `CUDAToolkit_ROOT=${dirname(dirname(nvcc))}`);
  const nvidia = join(torch.libDir, "..", "..", "nvidia");
  if (existsSync(nvidia)) {
    const packages = readdirSync(nvidia).map((p) => join(nvidia, p));
    const includes = packages.map((p) => join(p, "include")).filter(existsSync);
    if (includes.length) defs.push(`CMAKE_CXX_FLAGS=${includes.map((i) => `-isystem ${i}`).join(" ")}`);
    for (const lib of packages.map((p) => join(p, "lib")).filter(existsSync)) {
      const nvrtc = readdirSync(lib).find((f) => /^libnvrtc\.so/.test(f));
      if (nvrtc) {
        defs.push(`CUDA_nvrtc_LIBRARY=${join(lib, nvrtc)}`);
        break;
      }
    }
  }
  return defs;
}

/**
 * Arguments for `node cmake-js ...`: build the addon into `<outDir>/Release` against `torch`
 * (as find-libtorch.mjs describes it), with `jobs` parallel compiles.
 */
export function cmakeJsArgs(root, torch, outDir, jobs = process.env.INNERLOOP_BUILD_JOBS || String(Math.max(1, availableParallelism()))) {
  const addonApiDir = dirname(require.resolve("node-addon-api/package.json"));
  const cmakeJs = join(dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
  const defs = [`CMAKE_PREFIX_PATH=${torch.cmakePrefixPath}`, `NODE_ADDON_API_DIR=${addonApiDir}`];
  if (torch.cuda) defs.push(...cudaDefinitions(torch));
  return [cmakeJs, "build", "-d", root, "-O", outDir, "-B", "Release", "-p", String(jobs), ...defs.map((d) => `--CD${d}`)];
}
