#!/usr/bin/env bash
# Builds the addon against a CUDA build of libtorch (with NCCL process groups) and runs the test
# suite with it, on any machine: no GPU is needed to compile, link and load a CUDA build (CUDA
# then reads as unavailable, and an NCCL process group refuses with a clear error). This is how
# the CUDA/NCCL code paths are kept compiling where no GPU is at hand.
#
# Needs: a Python whose torch is a CUDA build (PYTHON, e.g. a virtual environment with
# `pip install torch` from PyPI, whose Linux wheels are CUDA builds), nvcc (CUDA_HOME or on PATH),
# cmake, ninja, a C++ compiler, and this checkout with `npm ci` done. The CUDA headers and the
# libraries the wheel itself brings (pip's nvidia-* packages) are used where the toolkit lacks them.
#
# Usage: PYTHON=/path/to/venv/bin/python scripts/check-cuda-build.sh [vitest arguments...]
# It builds in $WORK (default /tmp/innerloop-cuda-check) and leaves this checkout's build alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:?set PYTHON to a python whose torch is a CUDA build}
WORK=${WORK:-/tmp/innerloop-cuda-check}

read -r TORCH_VERSION TORCH_CUDA TORCH_PREFIX NV_ROOT < <("$PYTHON" - <<'EOF'
import os, torch  # the CUDA toolkit packages live in nvidia/cuNN
nv = ""
try:
    import nvidia
    for p in nvidia.__path__:
        for sub in sorted(os.listdir(p)):
            if sub[:2] == "cu" and sub[2:].isdigit() and os.path.isdir(os.path.join(p, sub, "include")):
                nv = os.path.join(p, sub)
except ImportError:
    pass
print(torch.__version__, torch.version.cuda or "none", torch.utils.cmake_prefix_path, nv or "-")
EOF
)
if [[ $TORCH_CUDA == none ]]; then
  echo "check-cuda-build: $PYTHON has torch $TORCH_VERSION without CUDA" >&2
  exit 1
fi
NVCC=$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")
[[ -x $NVCC ]] || { echo "check-cuda-build: nvcc not found (set CUDA_HOME or PATH)" >&2; exit 1; }
echo "check-cuda-build: torch $TORCH_VERSION (CUDA $TORCH_CUDA), nvcc $("$NVCC" --version | tail -1)"

# The four Node-API headers, from Node's own include folder.
NODE_INC=$(dirname "$(dirname "$(command -v node)")")/include/node
[[ -f $NODE_INC/node_api.h ]] || NODE_INC=/usr/include/node
mkdir -p "$WORK/napi"
cp "$NODE_INC"/{js_native_api,js_native_api_types,node_api,node_api_types}.h "$WORK/napi/"

EXTRA=()
if [[ $NV_ROOT != - ]]; then
  # Headers and libraries of pip's CUDA packages where the toolkit has only the compiler and runtime.
  EXTRA+=("-DCMAKE_CXX_FLAGS=-isystem $NV_ROOT/include")
  NVRTC=$(ls "$NV_ROOT"/lib/libnvrtc.so* 2>/dev/null | head -1 || true)
  [[ -n $NVRTC ]] && EXTRA+=("-DCUDA_nvrtc_LIBRARY=$NVRTC")
fi
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
rm -rf "$WORK/build"
if ! cmake -S "$ROOT" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_JS_INC="$WORK/napi" -DNODE_ADDON_API_DIR="$ROOT/node_modules/node-addon-api" \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DCMAKE_CUDA_COMPILER="$NVCC" \
  -DCUDAToolkit_ROOT="$(dirname "$(dirname "$NVCC")")" "${EXTRA[@]}" > "$WORK/cmake.log" 2>&1; then
  cat "$WORK/cmake.log" >&2
  exit 1
fi
grep "innerloop:" "$WORK/cmake.log"
if ! grep -q "with NCCL process groups" "$WORK/cmake.log"; then
  echo "check-cuda-build: cmake found no nccl.h (see $WORK/cmake.log)" >&2
  exit 1
fi
ninja -C "$WORK/build"

# A copy of the checkout (without its build) with the CUDA addon where node-gyp-build looks for it.
rm -rf "$WORK/tree"
git -C "$ROOT" worktree add -f --detach "$WORK/tree" HEAD >/dev/null
trap 'git -C "$ROOT" worktree remove --force "$WORK/tree" >/dev/null 2>&1 || true' EXIT
cp -r "$ROOT/lib" "$ROOT/test" "$WORK/tree/" # the working tree's sources, committed or not
ln -s "$ROOT/node_modules" "$WORK/tree/node_modules"
mkdir -p "$WORK/tree/build/Release"
cp "$WORK/build/innerloop.node" "$WORK/tree/build/Release/"
cd "$WORK/tree"
PYTHON=$PYTHON node --input-type=module -e '
  const { findLibtorch } = await import("./scripts/find-libtorch.mjs");
  const { writeFileSync } = await import("node:fs");
  writeFileSync("build/libtorch.json", JSON.stringify({ ...findLibtorch(), builtAt: new Date().toISOString() }, null, 2) + "\n");'
node --import tsx --input-type=module -e '
  const { torch } = await import("./lib/torch/index.ts");
  const d = await import("./lib/torch/distributed.ts");
  console.log(`addon: libtorch ${torch.version.libtorch}, CUDA ${torch.version.cuda}, NCCL process groups ${d.hasNccl()}, CUDA available ${torch.cuda.isAvailable()}`);
  if (!d.hasNccl()) { console.error("check-cuda-build: the CUDA build has no NCCL process groups"); process.exit(1); }'
npx tsc -p tsconfig.json
# The tests' Python references use the python3 on PATH (torch, transformers), not $PYTHON.
npx vitest run "$@"
