#!/usr/bin/env bash
# The GPU run, in one script: builds the addon against the machine's PyTorch (CUDA), runs the CUDA
# benchmark (gpt2-124m), the CUDA tests, the small CUDA configurations and, if time is left, the CPU
# benchmark on that (quiet) machine. Everything it prints and writes goes to $OUT.
#
# Needs: the working tree plus .device/ made by scripts/bench/prepare-device.sh (node, Node-API
# headers, dist/ and the run-time node_modules); python3 with torch (CUDA), cmake, ninja, a C++17
# compiler. No network. The whole script stays under about 8 minutes: every step has a time limit,
# and later steps are skipped when the budget is spent.
#
# Usage: OUT=/some/folder scripts/bench/gpu.sh      (BUDGET_S=470 by default)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
: "${OUT:?set OUT to the folder for logs and results}"
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-470}
T0=$(date +%s)
exec > >(tee -a "$OUT/gpu.log") 2>&1

elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET_S - $(elapsed) )); }
# step NAME LIMIT_S CMD...: runs CMD with its output in $OUT/NAME.log, for at most LIMIT_S seconds
# (less if the budget is nearly spent); records the exit status in $OUT/steps.tsv.
step() {
  local name=$1 limit=$2
  shift 2
  local l
  l=$(left)
  (( l < limit )) && limit=$l
  if (( limit < 15 )); then
    echo "== $name: skipped (budget spent at $(elapsed) s)"
    printf '%s\tskipped\t%s\n' "$name" "$(elapsed)" >> "$OUT/steps.tsv"
    return 99
  fi
  echo "== $name (limit ${limit} s, at $(elapsed) s)"
  local t=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   $name: exit $rc after $(( $(date +%s) - t )) s"
  tail -n 25 "$OUT/$name.log" | sed 's/^/   | /'
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t ))" >> "$OUT/steps.tsv"
  return $rc
}
: > "$OUT/steps.tsv"

# --- 1. The machine.
step env 30 bash -c '
  date -u; uname -a; nproc; grep -m1 "model name" /proc/cpuinfo
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || nvidia-smi || true
  python3 -c "import torch,sys; print(\"python\", sys.version.split()[0]); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"\")"
  cmake --version | head -1; ninja --version; c++ --version | head -1; command -v nvcc && nvcc --version | tail -2 || echo "no nvcc on PATH"
'

# --- 2. Node and the run-time files.
if [[ ! -f .device/node.xz || ! -f .device/runtime.tar.xz ]]; then
  echo "gpu.sh: .device/node.xz or .device/runtime.tar.xz is missing (run scripts/bench/prepare-device.sh and carry .device)"
  exit 1
fi
step unpack 90 bash -c '
  set -e
  mkdir -p .device/bin
  xz -dc .device/node.xz > .device/bin/node && chmod +x .device/bin/node
  tar -xJf .device/runtime.tar.xz dist node_modules
  .device/bin/node --version
  ls dist | head -20
' || exit 1
export PATH=$ROOT/.device/bin:$PATH

# --- 3. The addon, with plain cmake + ninja, where node-gyp-build looks for it (build/Release).
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
CMAKE_EXTRA=()
for nvcc in "$(command -v nvcc || true)" /usr/local/cuda/bin/nvcc; do
  if [[ -n $nvcc && -x $nvcc ]]; then
    CMAKE_EXTRA+=("-DCMAKE_CUDA_COMPILER=$nvcc" "-DCUDAToolkit_ROOT=$(dirname "$(dirname "$nvcc")")")
    break
  fi
done
# Torch's cmake files probe the GPU architecture unless told; the addon has no CUDA sources anyway.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
step build 240 bash -c '
  set -e
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_JS_INC="$0/.device/include" -DNODE_ADDON_API_DIR="$0/.device/node-addon-api" \
    -DCMAKE_PREFIX_PATH="$1" -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$0/build/Release" "${@:2}"
  ninja -C build -j"$(nproc)"
  # Older cmake files may ignore CMAKE_LIBRARY_OUTPUT_DIRECTORY: put the addon where node-gyp-build looks.
  if [[ ! -f build/Release/innerloop.node ]]; then mkdir -p build/Release; cp build/innerloop.node build/Release/; fi
  ls -la build/Release
' "$ROOT" "$TORCH_PREFIX" "${CMAKE_EXTRA[@]}" || { echo "gpu.sh: the addon did not build; see $OUT/build.log"; exit 1; }

# build/libtorch.json as scripts/build-native.mjs writes it: what the addon was built against.
node --input-type=module -e '
  const { findLibtorch } = await import("./scripts/find-libtorch.mjs");
  const { writeFileSync } = await import("node:fs");
  const t = findLibtorch();
  writeFileSync("build/libtorch.json", JSON.stringify({ ...t, builtAt: new Date().toISOString() }, null, 2) + "\n");
  console.log(JSON.stringify(t));
' 2>&1 | tee "$OUT/libtorch.json.log" || true
step version 60 node bin/innerloop.js --version

# --- 4. The CUDA benchmark, GPT-2 124M first: the number that matters most.
step bench-gpt2 160 node bin/innerloop.js bench --device cuda --config gpt2-124m --reps 20 --warmup 5 --cuda-graph \
  --steps 0 --analyze-every 0 --profile --json "$OUT/bench-gpt2.json"

# --- 5. CUDA tests: the test files with device loops (each runs its cases on cpu and on cuda), eight
# files at a time (VITEST_MAX_FORKS overrides the config's two).
mapfile -t TESTS < <(grep -l -e "helpers/devices" -e "cuda.isAvailable" test/*.test.ts)
echo "test files: ${TESTS[*]}"
export VITEST_MAX_FORKS=${VITEST_MAX_FORKS:-8}
step tests 150 node node_modules/vitest/vitest.mjs run \
  --reporter=default --reporter=json --outputFile="$OUT/vitest.json" "${TESTS[@]}"

# --- 6. The small configurations on CUDA, with the memory run and the analysis overhead.
step bench-cuda-small 110 node bin/innerloop.js bench --device cuda --config tiny,mid --reps 20 --warmup 5 --cuda-graph \
  --steps 1000 --analyze-every 1 --profile --json "$OUT/bench-cuda-small.json"

# --- 7. If time is left: the CPU configurations on this quiet machine, one thread per side.
step bench-cpu 90 node bin/innerloop.js bench --device cpu --config micro,tiny,mid --reps 30 --warmup 5 --rounds 2 \
  --steps 0 --analyze-every 0 --profile --json "$OUT/bench-cpu.json"

echo "== done after $(elapsed) s"
cat "$OUT/steps.tsv"
