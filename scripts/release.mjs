#!/usr/bin/env node
// Builds the release: the prebuilt addons of the declared matrix (scripts/release-matrix.json) and
// the npm tarball that carries them, with prebuilds/manifest.json listing them.
//
//   npm run release [-- --out DIR] [--only TAG[,TAG...]] [--torch TAG=DIR ...]
//
// TAG names a matrix entry as its prebuild does: torch2.13.0.cpu, torch2.14.1.cu130 (or the
// flavour alone: cpu, cu130). For each entry the libtorch it is built against is, in this order:
// the folder given with --torch TAG=DIR (a libtorch folder, or a folder pip installed torch into
// with --target); the libtorch find-libtorch.mjs finds, when it is that version and flavour; or a
// folder under $INNERLOOP_RELEASE_TORCH (default ~/.cache/innerloop/torch/TAG) that pip fills with
// the entry's requirements once. Each prebuild is then checked where it was made: the tarball is
// unpacked, its install step run against that libtorch (it must pick the prebuild, not compile),
// and `innerloop --version` must load it (a CUDA prebuild loads without a GPU: CUDA reads as not
// available).
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { findLibtorch, libtorchFromFolder, root } from "./find-libtorch.mjs";
import { describeTorch, prebuildDir, prebuildFileName, prebuildTag } from "./prebuild.mjs";
import { stageCheckout } from "./stage-package.mjs";

const started = Date.now();
const log = (msg) => console.log(`release [${((Date.now() - started) / 1000).toFixed(0)} s]: ${msg}`);

function parseArgs(argv) {
  const o = { out: join(root, "build", "release"), only: null, torch: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`release: ${a} needs a value`);
      return v;
    };
    if (a === "--out") o.out = resolve(value());
    else if (a === "--only") o.only = value().split(",").filter(Boolean);
    else if (a === "--torch") {
      const [tag, dir] = value().split("=");
      if (!tag || !dir) throw new Error("release: --torch takes TAG=DIR, e.g. --torch torch2.14.1.cu130=/opt/torch-cu130");
      o.torch.set(tag, resolve(dir));
    } else throw new Error(`release: unknown argument ${a} (allowed: --out DIR, --only TAG[,TAG], --torch TAG=DIR)`);
  }
  return o;
}

/**
 * Runs a command quietly and returns its output (stdout alone with `stdoutOnly`); on failure throws
 * one line naming the command and a file with its output.
 */
function quiet(cmd, args, what, { stdoutOnly = false, ...opts } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 << 20, ...opts });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}`;
  if (r.status !== 0) {
    const file = join(tmpdir(), `innerloop-release-${process.pid}-${Date.now()}.log`);
    writeFileSync(file, out);
    throw new Error(`release: ${what} failed (exit ${r.status ?? r.signal}; output in ${file}): ${[cmd, ...args].join(" ")}`);
  }
  return stdoutOnly ? r.stdout : out;
}

/** The libtorch folder for a matrix entry (installing it with pip when no other is at hand). */
function torchFor(entry, tag, given) {
  const asFolder = (dir) => (existsSync(join(dir, "torch", "share", "cmake", "Torch")) ? join(dir, "torch") : dir);
  if (given) return asFolder(given);
  const found = findLibtorch();
  if (found && prebuildTag(found) === tag) return resolve(found.libDir, "..");
  const dir = join(process.env.INNERLOOP_RELEASE_TORCH ?? join(homedir(), ".cache", "innerloop", "torch"), tag);
  if (!existsSync(join(dir, "torch", "share", "cmake", "Torch"))) {
    log(`${tag}: installing ${entry.requirements.join(" ")} into ${dir} (pip, no dependencies)`);
    quiet(process.env.PYTHON || "python3", ["-m", "pip", "install", "--quiet", "--no-deps", "--target", dir, "--extra-index-url", entry.indexUrl, ...entry.requirements], `installing libtorch for ${tag}`);
  }
  return join(dir, "torch");
}

function sha256(file) {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** Unpacks the tarball, runs its install step against `libtorchDir` and `innerloop --version`; returns the version text. */
function checkPrebuild(tarball, libtorchDir, file) {
  const dir = mkdtempSync(join(tmpdir(), "innerloop-release-check-"));
  try {
    execFileSync("tar", ["-xzf", tarball, "-C", dir]);
    const pkg = join(dir, "package");
    symlinkSync(join(root, "node_modules"), join(pkg, "node_modules"), "dir");
    const env = { ...process.env, LIBTORCH: libtorchDir };
    const inst = quiet(process.execPath, ["scripts/install.mjs"], `installing ${file} from the tarball`, { cwd: pkg, env });
    if (!inst.includes(`using prebuilt addon`) || !inst.includes(file)) {
      throw new Error(`release: the tarball's install did not pick ${file} for ${libtorchDir}:\n${inst}`);
    }
    const version = quiet(process.execPath, ["bin/innerloop.js", "--version"], `loading ${file}`, { cwd: pkg, env });
    if (!version.includes(`prebuild ${file}`)) throw new Error(`release: \`innerloop --version\` does not report the prebuild ${file}:\n${version}`);
    return version.trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const matrix = JSON.parse(readFileSync(join(root, "scripts", "release-matrix.json"), "utf8")).prebuilds;
  const entries = matrix
    .map((e) => ({ ...e, tag: `torch${e.torch}.${e.flavour}` }))
    .filter((e) => !opts.only || opts.only.includes(e.tag) || opts.only.includes(e.flavour));
  if (!entries.length) throw new Error(`release: --only ${opts.only.join(",")} names no entry of scripts/release-matrix.json (${matrix.map((e) => `torch${e.torch}.${e.flavour}`).join(", ")})`);
  for (const tag of opts.torch.keys()) {
    if (!entries.some((e) => e.tag === tag)) throw new Error(`release: --torch ${tag}=... names no entry being built`);
  }
  mkdirSync(opts.out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "innerloop-release-"));
  try {
    const stage = join(work, "package");
    log(`staged ${stageCheckout(root, stage)} files of the checkout`);
    const built = [];
    for (const entry of entries) {
      const torchDir = torchFor(entry, entry.tag, opts.torch.get(entry.tag));
      const torch = libtorchFromFolder(torchDir);
      if (prebuildTag(torch) !== entry.tag) throw new Error(`release: ${torchDir} holds ${describeTorch(torch)}, not the ${entry.tag} the matrix asks for`);
      const buildDir = join(root, "build", "release-builds", entry.tag);
      log(`${entry.tag}: compiling against ${describeTorch(torch)} in ${torchDir}`);
      const t0 = Date.now();
      quiet(process.execPath, [join(root, "scripts", "build-native.mjs"), "--out", buildDir], `compiling ${entry.tag}`, { cwd: root, env: { ...process.env, LIBTORCH: torchDir } });
      const name = prebuildFileName(torch);
      const dest = join(prebuildDir(stage), name);
      mkdirSync(prebuildDir(stage), { recursive: true });
      copyFileSync(join(buildDir, "Release", "innerloop.node"), dest);
      quiet("strip", ["--strip-unneeded", dest], `stripping ${name}`);
      log(`${entry.tag}: ${name}, ${(statSync(dest).size / 1048576).toFixed(1)} MiB, compiled in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      built.push({ entry, torch, torchDir, name, dest });
    }
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    const manifest = {
      package: pkg.name,
      version: pkg.version,
      napi: pkg.binary?.napi_versions ?? [8],
      prebuilds: built.map(({ entry, torch, name, dest }) => ({
        file: `${process.platform}-${process.arch}/${name}`,
        platform: process.platform,
        arch: process.arch,
        torch: entry.torch,
        flavour: entry.flavour,
        cuda: torch.cuda,
        bytes: statSync(dest).size,
        sha256: sha256(dest),
      })),
    };
    writeFileSync(join(stage, "prebuilds", "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    log("packing (npm pack compiles dist/)");
    const packed = JSON.parse(quiet("npm", ["pack", "--json", "--pack-destination", opts.out], "npm pack", { cwd: stage, stdoutOnly: true }).replace(/^[^[]*/s, ""));
    const tarball = join(opts.out, packed[0].filename);
    for (const p of manifest.prebuilds) {
      if (!packed[0].files.some((f) => f.path === `prebuilds/${p.file}`)) throw new Error(`release: the tarball lacks prebuilds/${p.file}`);
    }
    log(`packed ${tarball} (${(packed[0].size / 1048576).toFixed(1)} MiB)`);
    for (const b of built) {
      const version = checkPrebuild(tarball, b.torchDir, b.name);
      log(`${b.entry.tag}: installs from the tarball without compiling and loads: ${version.split("\n").join(" | ")}`);
    }
    log(`done: ${tarball} with ${built.map((b) => b.name).join(", ")}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
}
