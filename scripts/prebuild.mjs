#!/usr/bin/env node
// Prebuilt addons, tagged with the libtorch they were built against.
//
//   npm run prebuild                  builds the addon with prebuildify into
//                                     prebuilds/<platform>-<arch>/innerloop.torch<version>.<flavour>.<libc>.node
//   npm run prebuild -- --from-build  packages the addon already built in build/Release
//                                     (recorded in build/libtorch.json) under the same name, without compiling
//
// The flavour is `cpu` or `cu<major><minor>` (e.g. cu130 for CUDA 13.0). libtorch itself is never
// bundled: a prebuild only fits a machine whose libtorch has exactly that version and flavour.
//
// node-gyp-build chooses among prebuilds by platform, architecture, runtime, ABI and libc only; the
// torch tags in the name are invisible to it (it ignores tags it does not know). So the choice by
// libtorch is made here, at install time: findMatchingPrebuild() is what scripts/install.mjs uses to
// pick the prebuild for the libtorch it found, and a prebuild for another libtorch is never loaded.
//
// This file is also prebuildify's build backend: prebuildify runs `<backend> rebuild --target=...`
// in a staging folder; that call builds with cmake-js against the libtorch found (see main below).
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildEnv, cmakeJsArgs } from "./cmake-args.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const NAME = "innerloop";

/** `cpu`, `cu130` (CUDA 13.0), or null when the CUDA version of a libtorch is not known. */
export function torchFlavour(torch) {
  if (!torch.cuda) return "cpu";
  const m = /^(\d+)\.(\d+)/.exec(String(torch.cuda));
  return m ? `cu${m[1]}${m[2]}` : null;
}

/** The tag a prebuild for this libtorch carries, e.g. `torch2.13.0.cpu`; null when it cannot have one. */
export function prebuildTag(torch) {
  const flavour = torchFlavour(torch);
  if (!flavour || !/^\d+\.\d+\.\d+$/.test(String(torch.version))) return null;
  return `torch${torch.version}.${flavour}`;
}

/** The libc tag prebuildify's --tag-libc adds (and node-gyp-build checks). */
function libcTag() {
  return existsSync("/etc/alpine-release") ? "musl" : "glibc";
}

/** The file name of the prebuild for this libtorch on this machine. */
export function prebuildFileName(torch) {
  const tag = prebuildTag(torch);
  if (!tag) throw new Error(`innerloop: cannot tag a prebuild for libtorch ${torch.version} (CUDA ${torch.cuda}): version or CUDA flavour unknown`);
  return `${NAME}.${tag}.${libcTag()}.node`;
}

/** Parses `innerloop.torch2.13.0.cu130.glibc.node` into { version, flavour, libc }, or null for other files. */
export function parsePrebuildName(file) {
  const m = /^innerloop\.torch(\d+\.\d+\.\d+)\.(cpu|cu\d+)(?:\.(glibc|musl))?\.node$/.exec(file);
  return m ? { file, version: m[1], flavour: m[2], libc: m[3] ?? null } : null;
}

/** "libtorch 2.13.0 (CPU)" / "libtorch 2.11.0 (CUDA 13.0)". */
export function describeTorch(torch) {
  return `libtorch ${torch.version} (${torch.cuda ? `CUDA ${torch.cuda}` : "CPU"})`;
}

function describeTagged(p) {
  return `libtorch ${p.version} (${p.flavour === "cpu" ? "CPU" : `CUDA ${p.flavour.slice(2, -1)}.${p.flavour.slice(-1)}`})`;
}

/** The folder node-gyp-build reads prebuilds from for this platform. */
export function prebuildDir(pkgRoot = root) {
  return join(pkgRoot, "prebuilds", `${process.platform}-${process.arch}`);
}

/**
 * Picks the prebuild made for exactly this libtorch (version and flavour; C++11 ABI, this libc).
 * Returns { match: path | null, available: parsed prebuilds for this platform, reason: string | null },
 * where `reason` says, when there are prebuilds but none fits, why and what to do.
 */
export function findMatchingPrebuild(torch, pkgRoot = root) {
  const dir = prebuildDir(pkgRoot);
  // Newest libtorch first, so that messages list them in a sensible order.
  const available = (existsSync(dir) ? readdirSync(dir).map(parsePrebuildName).filter(Boolean) : []).sort(
    (a, b) => b.file.localeCompare(a.file, "en", { numeric: true }),
  );
  if (!available.length) return { match: null, available, reason: null };
  const libc = libcTag();
  const tag = torch ? prebuildTag(torch) : null;
  const hit = tag && torch.cxx11abi !== false
    ? available.find((p) => `torch${p.version}.${p.flavour}` === tag && (p.libc === null || p.libc === libc))
    : undefined;
  if (hit) return { match: join(dir, hit.file), available, reason: null };
  const offered = [...new Set(available.map(describeTagged))].join(", ");
  const from = { LIBTORCH: "LIBTORCH", python: "Python torch", local: "the torch wheel installed for innerloop" }[torch?.source] ?? torch?.source;
  const found = torch ? `${describeTorch(torch)} from ${from} (${torch.libDir})` : "no libtorch";
  const abi = torch && torch.cxx11abi === false ? " It uses the pre-C++11 ABI; prebuilds need the C++11 ABI." : "";
  const reason =
    `innerloop: no prebuilt addon matches ${found}.${abi} Prebuilt addons here are for: ${offered}. ` +
    "Building from source instead (needs cmake and a C++17 compiler). To use a prebuild instead, make the libtorch " +
    "found be one of those: install that torch version in Python, or set LIBTORCH to such a libtorch folder.";
  return { match: null, available, reason };
}

// ---------------------------------------------------------------------------------------------

async function buildWithPrebuildify() {
  const { findOrInstallLibtorch } = await import("./find-libtorch.mjs");
  const torch = findOrInstallLibtorch();
  if (torch.cxx11abi === false) throw new Error("innerloop: prebuilds are made only against a C++11-ABI libtorch");
  const fileName = prebuildFileName(torch);
  const name = fileName.replace(/\.(glibc|musl)\.node$/, "");
  // prebuildify builds in <cwd>/build/Release and moves the result into <out>/prebuilds/...; a staging
  // folder inside build/ (same file system, so the move works) keeps the local build untouched.
  const stage = join(root, "build", "prebuild");
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  const require = createRequire(import.meta.url);
  const prebuildify = require("prebuildify");
  const strip = (() => {
    try {
      execFileSync("strip", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();
  console.log(`innerloop: making prebuild ${fileName} against ${describeTorch(torch)} from ${torch.libDir}`);
  // The backend builds against exactly this libtorch. (It cannot look again: prebuildify puts
  // Node's folder first on PATH, where a different python3 may live.)
  process.env.INNERLOOP_PREBUILD_TORCH = JSON.stringify(torch);
  await new Promise((ok, fail) =>
    prebuildify(
      {
        cwd: stage,
        out: root,
        name,
        napi: true,
        tagLibc: true,
        strip,
        targets: [{ runtime: "node", target: process.versions.node }],
        nodeGyp: fileURLToPath(import.meta.url),
      },
      (err) => (err ? fail(err) : ok()),
    ),
  );
  return join(prebuildDir(), fileName);
}

/**
 * prebuildify's backend: `prebuild.mjs rebuild --target=... --release` run in the staging folder.
 * It runs cmake-js as scripts/build-native.mjs does, with the output in the staging folder.
 */
async function backend() {
  const given = process.env.INNERLOOP_PREBUILD_TORCH;
  if (!given) throw new Error("innerloop: prebuild.mjs rebuild is prebuildify's backend; run `npm run build:prebuild` instead");
  const torch = JSON.parse(given);
  const out = join(process.cwd(), "build");
  execFileSync(process.execPath, cmakeJsArgs(root, torch, out), { stdio: "inherit", cwd: root, env: buildEnv(torch) });
  writeFileSync(join(out, "libtorch.json"), JSON.stringify({ ...torch, builtAt: new Date().toISOString() }, null, 2) + "\n");
}

/** Packages build/Release/innerloop.node (built by `npm run build:native`) as a prebuild. */
function fromBuild() {
  const addon = join(root, "build", "Release", "innerloop.node");
  const recordPath = join(root, "build", "libtorch.json");
  if (!existsSync(addon) || !existsSync(recordPath)) {
    throw new Error("innerloop: --from-build needs build/Release/innerloop.node and build/libtorch.json; run `npm run build:native` first");
  }
  const torch = JSON.parse(readFileSync(recordPath, "utf8"));
  if (torch.cxx11abi === false) throw new Error("innerloop: prebuilds are made only against a C++11-ABI libtorch");
  const dest = join(prebuildDir(), prebuildFileName(torch));
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = `${dest}.tmp-${process.pid}`;
  copyFileSync(addon, tmp);
  renameSync(tmp, dest); // atomic: nothing ever sees half a file
  console.log(`innerloop: packaged build/Release/innerloop.node (${describeTorch(torch)}) as ${dest}`);
  return dest;
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const args = process.argv.slice(2);
  try {
    if (args[0] === "rebuild") await backend();
    else if (args.includes("--from-build")) fromBuild();
    else if (args.length === 0) console.log(`innerloop: wrote ${await buildWithPrebuildify()}`);
    else throw new Error(`innerloop prebuild: unknown arguments ${args.join(" ")} (use no arguments or --from-build)`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
