// Builds the addon with cmake-js against the libtorch that find-libtorch.mjs finds (installing one
// if needed) and records what it used in <out>/libtorch.json.
//
//   node scripts/build-native.mjs [--out DIR]   (default DIR: build/, the addon in DIR/Release)
//
// The compiler's output goes to DIR/build.log; the terminal shows one line per compiled file, and
// the log's tail when the build fails.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildEnv, cmakeJsArgs } from "./cmake-args.mjs";
import { findOrInstallLibtorch, root } from "./find-libtorch.mjs";

const outArg = process.argv.indexOf("--out");
const out = outArg > 0 ? resolve(process.argv[outArg + 1] ?? "") : join(root, "build");
if (outArg > 0 && !process.argv[outArg + 1]) {
  console.error("build-native: --out needs a folder");
  process.exit(2);
}

const torch = findOrInstallLibtorch();
console.log(`innerloop: compiling the addon against libtorch ${torch.version} (${torch.cuda ? `CUDA ${torch.cuda}` : "CPU"}) from ${torch.libDir}`);
mkdirSync(out, { recursive: true });
// A configure step that failed leaves a CMakeCache.txt without build files, and cmake-js would then
// skip configuring and fail at once: start that folder afresh.
if (existsSync(join(out, "CMakeCache.txt")) && !existsSync(join(out, "build.ninja")) && !existsSync(join(out, "Makefile"))) {
  rmSync(join(out, "CMakeCache.txt"));
}
const logFile = join(out, "build.log");
const log = createWriteStream(logFile);
const started = Date.now();
const child = spawn(process.execPath, cmakeJsArgs(root, torch, out), { cwd: root, env: buildEnv(torch), stdio: ["ignore", "pipe", "pipe"] });
let pending = "";
const onData = (chunk) => {
  log.write(chunk);
  pending += chunk.toString();
  const lines = pending.split("\n");
  pending = lines.pop();
  for (const line of lines) {
    // Ninja's "[3/9] Building CXX object .../tensor.cc.o", make's "[ 33%] Building CXX object ...".
    const m = /^\[\s*(\d+(?:\/\d+|%))\]\s+(Building|Linking)\s+\S+\s+\S+\s+(\S+)/.exec(line);
    if (!m) continue;
    const what = m[2] === "Linking" ? "linked" : /\.gch$/.test(m[3]) ? "compiled the precompiled header (native/binding.h)" : `compiled ${m[3].replace(/^.*\/(native\/)/, "$1").replace(/\.o$/, "")}`;
    console.log(`innerloop: [${m[1]}] ${what}`);
  }
};
child.stdout.on("data", onData);
child.stderr.on("data", onData);
const code = await new Promise((ok) => child.on("close", ok));
await new Promise((ok) => log.end(ok));
if (code !== 0) {
  const tail = readFileSync(logFile, "utf8").split("\n").slice(-60).join("\n");
  console.error(tail);
  console.error(`innerloop: building the native addon failed (the compiler's output is above; all of it is in ${logFile}).`);
  console.error("  It needs cmake >= 3.18, a C++17 compiler (C++20 for libtorch >= 2.14) and libtorch >= 2.4; see README.md, Troubleshooting.");
  process.exit(1);
}
writeFileSync(join(out, "libtorch.json"), JSON.stringify({ ...torch, builtAt: new Date().toISOString() }, null, 2) + "\n");
console.log(`innerloop: addon built in ${((Date.now() - started) / 1000).toFixed(0)} s (${join(out, "Release", "innerloop.node")})`);
