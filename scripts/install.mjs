// `npm install` entry: use a matching prebuilt addon when one is present,
// otherwise build from source against the libtorch found (or installed).
//
// A prebuild is chosen here, not by node-gyp-build: node-gyp-build cannot see the libtorch tags in
// a prebuild's name. The chosen one is copied to build/Release/innerloop.node, which node-gyp-build
// loads first, and the libtorch it will run on is recorded in build/libtorch.json (with `prebuild`
// set), so that lib/torch/native.ts loads that libtorch for it.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findOrInstallLibtorch, root } from "./find-libtorch.mjs";
import { describeTorch, findMatchingPrebuild } from "./prebuild.mjs";

function usePrebuild(file, torch) {
  const release = join(root, "build", "Release");
  mkdirSync(release, { recursive: true });
  const dest = join(release, "innerloop.node");
  copyFileSync(file, `${dest}.tmp`);
  renameSync(`${dest}.tmp`, dest);
  const record = { ...torch, prebuild: file.slice(root.length + 1), builtAt: new Date().toISOString() };
  writeFileSync(join(root, "build", "libtorch.json.tmp"), JSON.stringify(record, null, 2) + "\n");
  renameSync(join(root, "build", "libtorch.json.tmp"), join(root, "build", "libtorch.json"));
}

if (process.env.INNERLOOP_SKIP_BUILD) {
  console.log("innerloop: INNERLOOP_SKIP_BUILD is set; not building the addon");
} else {
  let torch;
  try {
    // Prebuilds this package carries steer which torch is fetched, when one must be.
    torch = findOrInstallLibtorch(console.log, findMatchingPrebuild(null, root).available);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
  // In a git checkout the sources may be newer than any prebuild lying around: build them, unless
  // asked otherwise. INNERLOOP_BUILD_FROM_SOURCE=1 builds from source anywhere.
  const checkout = existsSync(join(root, ".git")) && !process.env.INNERLOOP_USE_PREBUILDS;
  const { match, reason } = checkout || process.env.INNERLOOP_BUILD_FROM_SOURCE
    ? { match: null, reason: null }
    : findMatchingPrebuild(torch, root);
  if (match) {
    usePrebuild(match, torch);
    console.log(`innerloop: using prebuilt addon ${match} for ${describeTorch(torch)} from ${torch.libDir}`);
  } else {
    if (reason) console.log(reason);
    try {
      execFileSync(process.execPath, [join(root, "scripts", "build-native.mjs")], { stdio: "inherit", cwd: root });
    } catch {
      // build-native.mjs has said why; repeat what a prebuild would need, if there are any.
      if (reason) console.error(reason.replace("Building from source instead (needs cmake and a C++17 compiler). ", ""));
      process.exit(1);
    }
  }
}
