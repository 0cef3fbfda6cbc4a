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

/** nvcc: $CUDA_HOME's, the default toolkit's, or the first on PATH (which may be a wrapper script). */
function findNvcc() {
  for (const home of [process.env.CUDA_HOME, "/usr/local/cuda"]) {
    if (home && existsSync(join(home, "bin", "nvcc"))) return join(home, "bin", "nvcc");
  }
  return which("nvcc");
}

/** The folders of the nvidia-* wheels installed beside a pip torch (CUDA 13 wheels put them all in nvidia/cu13). */
function nvidiaWheelDirs(torch) {
  const nvidia = join(torch.libDir, "..", "..", "nvidia");
  return existsSync(nvidia) ? readdirSync(nvidia).map((p) => join(nvidia, p)) : [];
}

/**
 * CMake definitions a CUDA libtorch needs when the machine has nvcc (the toolkit's compiler and
 * runtime) but not every CUDA library's headers: nvrtc from the nvidia-* wheels beside torch.
 */
function cudaDefinitions(torch) {
  const defs = [];
  const nvcc = findNvcc();
  // CUDAToolkit_ROOT for CMake's FindCUDAToolkit, CUDA_TOOLKIT_ROOT_DIR for the older FindCUDA that
  // libtorch's CMake files still use (which otherwise looks beside the first nvcc on PATH).
  if (nvcc) defs.push(`CMAKE_CUDA_COMPILER=${nvcc}`, `CUDAToolkit_ROOT=${dirname(dirname(nvcc))}`, `CUDA_TOOLKIT_ROOT_DIR=${dirname(dirname(nvcc))}`);
  for (const lib of nvidiaWheelDirs(torch).map((p) => join(p, "lib")).filter(existsSync)) {
    const nvrtc = readdirSync(lib).find((f) => /^libnvrtc\.so/.test(f));
    if (nvrtc) {
      defs.push(`CUDA_nvrtc_LIBRARY=${join(lib, nvrtc)}`);
      break;
    }
  }
  return defs;
}

/**
 * The environment to build in. For a CUDA libtorch: the nvidia wheels' headers (cuBLAS, cuSPARSE,
 * ... which ATen's CUDA headers include) on the compiler's CPATH, since cmake-js owns
 * CMAKE_CXX_FLAGS; and an architecture list, which libtorch's CMake files want and, with no GPU to
 * ask, warn about (the addon has no CUDA kernels of its own, so any list will do).
 */
export function buildEnv(torch, env = process.env) {
  if (!torch.cuda) return env;
  const includes = nvidiaWheelDirs(torch).map((p) => join(p, "include")).filter(existsSync);
  return {
    ...env,
    CPATH: [...includes, env.CPATH].filter(Boolean).join(":"),
    TORCH_CUDA_ARCH_LIST: env.TORCH_CUDA_ARCH_LIST ?? "8.0;9.0;10.0;12.0",
  };
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
