// Packs the package as a fresh clone would (`npm pack` of the files git knows, with prebuilt
// addons) and installs the tarball into an empty project: what scripts/pack-check.mjs checks and
// what test/docs.test.ts runs the documentation's code blocks against.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { prebuildDir, prebuildFileName } from "./prebuild.mjs";
import { stageCheckout } from "./stage-package.mjs";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function check(cond, msg) {
  if (!cond) throw new Error(`pack: ${msg}`);
}

/** Runs a command; returns stdout+stderr; throws with the output's tail when it fails. */
export function run(cmd, args, opts = {}, verbose = false) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (verbose) process.stdout.write(out);
  if (r.status !== 0) {
    const tail = out.split("\n").slice(-40).join("\n");
    throw new Error(`\`${cmd} ${args.join(" ")}\` failed (exit ${r.status ?? r.signal}) in ${opts.cwd ?? process.cwd()}:\n${tail}`);
  }
  return { out, stdout: r.stdout ?? "" };
}

/** The working tree as a fresh clone of it would be, copied into `dir`. */
export function stage(dir) {
  return stageCheckout(root, dir);
}

/**
 * The addon as if built on another machine: its rpath (and every other mention of the libtorch
 * folder it was built against) names a folder that does not exist here, of the same length so that
 * the ELF file stays valid. It loads only if the package loads the libtorch found at install time
 * by itself, as it must for prebuilds made elsewhere.
 */
function elsewhere(elf, libDir) {
  const from = Buffer.from(libDir);
  const to = Buffer.from(`/${"prebuild-machine/".slice(0, Math.max(0, from.length - 1))}`.padEnd(from.length, "x"));
  let n = 0;
  for (let i = elf.indexOf(from); i >= 0; i = elf.indexOf(from, i + to.length)) {
    to.copy(elf, i);
    n++;
  }
  check(n > 0, `build/Release/innerloop.node does not mention ${libDir}; is build/libtorch.json from another build?`);
  return elf;
}

export function addPrebuilds(dir, mode) {
  const dest = prebuildDir(dir);
  if (mode === "existing") {
    check(existsSync(prebuildDir(root)), "--prebuild=existing but prebuilds/ is empty; run `npm run prebuild` first");
    cpSync(prebuildDir(root), dest, { recursive: true });
    return readdirSync(dest);
  }
  if (mode === "none") return [];
  const addon = join(root, "build", "Release", "innerloop.node");
  const record = join(root, "build", "libtorch.json");
  check(existsSync(addon) && existsSync(record), "--prebuild=build needs build/Release/innerloop.node and build/libtorch.json (run `npm run build:native`)");
  const torch = JSON.parse(readFileSync(record, "utf8"));
  mkdirSync(dest, { recursive: true });
  const real = prebuildFileName(torch);
  writeFileSync(join(dest, real), elsewhere(readFileSync(addon), torch.libDir));
  // A prebuild for a libtorch this machine does not have. It is not an ELF file: loading it would
  // fail. Its name sorts before the real one's, so that node-gyp-build, left to itself, would take it.
  const decoyTorch = { version: torch.version === "2.10.0" ? "2.0.0" : "2.10.0", cuda: torch.cuda ? null : "13.0" };
  const decoy = prebuildFileName(decoyTorch);
  writeFileSync(join(dest, decoy), "decoy: a prebuild for another libtorch, which install must not choose\n");
  return [real, decoy];
}

/**
 * Stages `root` in `work/package` with prebuilds of kind `prebuild` ("build" | "existing" |
 * "none") and packs it into `work`, or takes the given `tarball` as it is; then installs the
 * tarball into the empty project `work/app` (with `env`, if given) and times the install.
 */
export function packAndInstall({ work, prebuild = "build", tarball = null, env = process.env, verbose = false, log = () => {} }) {
  const appDir = join(work, "app");
  let pack = null;
  let paths;
  let prebuilds;
  if (tarball) {
    ({ paths, prebuilds } = releaseTarball(tarball, log));
  } else {
    const stageDir = join(work, "package");
    const n = stage(stageDir);
    prebuilds = addPrebuilds(stageDir, prebuild);
    log(`staged ${n} files, prebuilds: ${prebuilds.join(", ") || "none"}; running npm pack (compiles dist/)`);
    const packed = run("npm", ["pack", "--json", "--pack-destination", work], { cwd: stageDir }, verbose);
    pack = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("[")))[0];
    tarball = join(work, pack.filename);
    paths = pack.files.map((f) => f.path);
    log(`packed ${pack.filename}: ${paths.length} files, ${(pack.size / 1024).toFixed(0)} KiB (unpacked ${(pack.unpackedSize / 1024).toFixed(0)} KiB)`);
  }
  mkdirSync(appDir);
  writeFileSync(join(appDir, "package.json"), JSON.stringify({ name: "pack-check-app", version: "1.0.0", private: true, type: "module" }, null, 2));
  log(`npm install ${basename(tarball)} in ${appDir}`);
  const t0 = Date.now();
  const inst = run("npm", ["install", tarball, "--no-audit", "--no-fund", "--prefer-offline", "--foreground-scripts"], { cwd: appDir, env }, verbose);
  const installSecs = (Date.now() - t0) / 1000;
  log(`npm install took ${installSecs.toFixed(1)} s`);
  const installed = join(appDir, "node_modules", "innerloop");
  check(existsSync(join(installed, "build", "Release", "innerloop.node")), `the install left no addon in ${installed}/build/Release:\n${inst.out.split("\n").slice(-20).join("\n")}`);
  return { pack, tarball, paths, prebuilds, appDir, installed, installOut: inst.out, installSecs };
}

/** A tarball made by `npm run release`: its files, and the prebuilds its manifest lists (all of which it must hold). */
function releaseTarball(tarball, log) {
  check(existsSync(tarball), `--tarball=${tarball} does not exist (make one with \`npm run release\`)`);
  const paths = run("tar", ["-tzf", tarball]).stdout.split("\n").filter(Boolean).map((p) => p.replace(/^package\//, ""));
  check(paths.includes("prebuilds/manifest.json"), `${tarball} has no prebuilds/manifest.json: is it a release tarball?`);
  const manifest = JSON.parse(run("tar", ["-xzOf", tarball, "package/prebuilds/manifest.json"]).stdout);
  const here = `${process.platform}-${process.arch}/`;
  const prebuilds = manifest.prebuilds.filter((p) => p.file.startsWith(here)).map((p) => p.file.slice(here.length));
  for (const p of manifest.prebuilds) check(paths.includes(`prebuilds/${p.file}`), `the manifest lists prebuilds/${p.file}, which the tarball lacks`);
  log(`release tarball ${tarball}: ${paths.length} files, prebuilds ${prebuilds.join(", ")}`);
  return { paths, prebuilds };
}
