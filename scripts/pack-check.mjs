#!/usr/bin/env node
// Checks that `npm pack` gives a tarball that installs into a fresh folder and works there:
//
//   1. stages the package as a fresh clone would have it (the files git knows, node_modules linked)
//      plus prebuilt addons, and runs `npm pack` there (its `prepare` compiles dist/ from scratch);
//   2. checks the tarball's file list: what install and use need is in it, tests and build outputs are not;
//   3. `npm install ./innerloop-*.tgz` into an empty temporary project;
//   4. there: `import { torch } from "innerloop"` computes something, `npx innerloop --version` works,
//      and examples/train-char-gpt2.mjs trains.
//
// Prebuilds (option --prebuild):
//   build     (default) the addon in build/Release is packaged as a prebuild for the libtorch it was
//             built against (build/libtorch.json), with its rpath pointed at a folder that does not
//             exist (as for a prebuild made on another machine), beside a decoy prebuild for another
//             libtorch that is not a loadable file: the install must pick the matching one, never the
//             decoy, and the package must find libtorch by itself. This exercises the prebuild path
//             and needs no compiler, so it is quick.
//   existing  ship the prebuilds in prebuilds/ as they are (made by `npm run prebuild`).
//   none      ship no prebuild: the install compiles the addon from source (minutes).
//
//   --tarball=FILE  check a tarball made by `npm run release` instead of packing one: its manifest's
//             prebuilds are all in it, and `npm install` of it, with stand-ins for every compiler and
//             build tool first on PATH, picks a prebuild for the libtorch here, runs none of them and
//             takes under 60 s.
//
// Other options: --keep (keep the temporary folders and print where they are), --verbose.
// Exit status 0 when every check passed; the last line says what was checked.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { packAndInstall, root, run as runCommand } from "./pack-lib.mjs";

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

/** Paths the tarball must hold: install (find libtorch, build or pick a prebuild), the library and the CLI. */
const REQUIRED = [
  "package.json",
  "CMakeLists.txt",
  "bin/innerloop.js",
  "dist/index.js",
  "dist/index.d.ts",
  "dist/torch/index.js",
  "dist/torch/index.d.ts",
  "dist/torch/native.js",
  "dist/cli/main.js",
  "scripts/install.mjs",
  "scripts/find-libtorch.mjs",
  "scripts/build-native.mjs",
  "scripts/cmake-args.mjs",
  "scripts/build-ts.mjs",
  "scripts/prebuild.mjs",
];
/** Prefixes the tarball must not hold: tests, build outputs, local caches and generated docs. */
const FORBIDDEN = ["test/", "build/", "node_modules/", ".libtorch/", ".ci/", "runs/", "docs/api/", "coverage/", ".vitest-cache/"];

function parseArgs(argv) {
  const o = { prebuild: "build", keep: false, verbose: false, tarball: null };
  for (const a of argv) {
    if (a === "--keep") o.keep = true;
    else if (a.startsWith("--tarball=")) o.tarball = resolve(a.slice("--tarball=".length));
    else if (a === "--verbose") o.verbose = true;
    else if (/^--prebuild=(build|existing|none)$/.test(a)) o.prebuild = a.split("=")[1];
    else throw new Error(`pack-check: unknown argument ${a} (allowed: --prebuild=build|existing|none, --tarball=FILE, --keep, --verbose)`);
  }
  return o;
}

const started = Date.now();
const secs = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
let verbose = false;

function log(msg) {
  console.log(`pack-check [${secs()}]: ${msg}`);
}

/** Runs a command; returns stdout+stderr; throws with the output's tail when it fails. */
function run(cmd, args, opts = {}) {
  return runCommand(cmd, args, opts, verbose);
}

function check(cond, msg) {
  if (!cond) throw new Error(`pack-check: ${msg}`);
}

/**
 * A folder of stand-ins for the compilers and build tools, put first on PATH during the install of
 * a release tarball: each one notes that it was called (and fails), so that an install that
 * compiled anything is caught, even one whose output does not say so.
 */
function compilerTrap(work) {
  const dir = join(work, "no-compilers");
  const called = join(work, "compilers-called.txt");
  mkdirSync(dir);
  for (const tool of ["cc", "c++", "gcc", "g++", "clang", "clang++", "cmake", "ninja", "make", "nvcc"]) {
    writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> '${called}'\nexit 1\n`, { mode: 0o755 });
  }
  return { dir, called };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  verbose = opts.verbose;
  const work = mkdtempSync(join(tmpdir(), "innerloop-pack-"));
  let ok = false;
  try {
    // 1. Stage, pack (or take the release tarball given) and install into an empty project; a
    // release tarball installs with stand-ins for every compiler and build tool first on PATH.
    const trap = opts.tarball ? compilerTrap(work) : null;
    const env = trap ? { ...process.env, PATH: `${trap.dir}:${process.env.PATH}` } : process.env;
    const { paths, prebuilds, appDir, installed, installOut, installSecs } = packAndInstall({
      work, prebuild: opts.prebuild, tarball: opts.tarball, env, verbose, log,
    });
    const inst = { out: installOut };

    // 2. The file list.
    const missing = REQUIRED.filter((p) => !paths.includes(p));
    check(!missing.length, `the tarball lacks ${missing.join(", ")}`);
    check(paths.some((p) => /^native\/.+\.cc$/.test(p)), "the tarball has no native/*.cc sources");
    const bad = paths.filter((p) => FORBIDDEN.some((f) => p.startsWith(f)) || /\.(tgz|test\.[cm]?[jt]s)$/.test(p));
    check(!bad.length, `the tarball holds files it must not: ${bad.slice(0, 10).join(", ")}${bad.length > 10 ? ", ..." : ""}`);
    for (const p of prebuilds) check(paths.includes(`prebuilds/${process.platform}-${process.arch}/${p}`), `the tarball lacks the prebuild ${p}`);
    // Reference scripts and their fixtures serve the tests; users do not need them.
    const extra = paths.filter((p) => /^scripts\/.+\.py$|^scripts\/.*fixtures\//.test(p));
    if (extra.length) log(`warning: the tarball holds ${extra.length} test reference files under scripts/ (e.g. ${extra[0]}); list only the install scripts in package.json "files"`);
    const dts = paths.filter((p) => p.startsWith("dist/") && p.endsWith(".d.ts")).length;
    log(`file list ok (${dts} .d.ts files; no tests or build outputs)`);

    // 3. The install.
    check(!existsSync(join(installed, "test")), "the installed package holds test/");
    const record = JSON.parse(readFileSync(join(installed, "build", "libtorch.json"), "utf8"));
    if (opts.tarball) {
      check(!existsSync(trap.called), `installing the release tarball ran build tools: ${existsSync(trap.called) ? readFileSync(trap.called, "utf8").trim().split("\n").join("; ") : ""}`);
      check(record.prebuild && prebuilds.includes(record.prebuild.split("/").pop()), `the install did not use one of the tarball's prebuilds (${prebuilds.join(", ")}) for libtorch ${record.version}:\n${inst.out.split("\n").slice(-20).join("\n")}`);
      check(installSecs < 60, `installing the release tarball took ${installSecs.toFixed(1)} s (more than 60 s)`);
      log(`install used ${record.prebuild} for libtorch ${record.version} in ${record.libDir}; no compiler or build tool ran; ${installSecs.toFixed(1)} s`);
    } else if (opts.prebuild === "build") {
      check(/using prebuilt addon/.test(inst.out), `the install did not use the prebuild:\n${inst.out.split("\n").slice(-20).join("\n")}`);
      check(record.prebuild === `prebuilds/${process.platform}-${process.arch}/${prebuilds[0]}`, `the install chose ${record.prebuild}, not ${prebuilds[0]}`);
      log(`install used the matching prebuild ${record.prebuild} (not the decoy) for libtorch ${record.version} in ${record.libDir}; its rpath names a folder that does not exist here`);
    } else {
      log(`install done: addon for libtorch ${record.version}${record.prebuild ? ` from ${record.prebuild}` : " built from source"}`);
    }

    // 4. Use it: the library import and the CLI.
    const script = [
      'import { torch } from "innerloop";',
      "const a = torch.tensor([[1, 2], [3, 4]]);",
      "const s = torch.tidy(() => a.matmul(a).sum().item());",
      'console.log(JSON.stringify({ sum: s, version: torch.version, from: import.meta.resolve("innerloop") }));',
    ].join("\n");
    const imp = run(process.execPath, ["--input-type=module", "-e", script], { cwd: appDir });
    const line = imp.stdout.trim().split("\n").pop();
    const got = JSON.parse(line);
    check(got.sum === 54, `[[1,2],[3,4]] @ itself summed to ${got.sum}, expected 54`);
    check(got.from.startsWith(`file://${installed}/`), `"innerloop" resolved to ${got.from}, not the installed package`);
    check(got.version.libtorch === record.version, `torch.version.libtorch is ${got.version.libtorch}, install recorded ${record.version}`);
    log(`import ok: ${line}`);
    const cli = run("npx", ["--no-install", "innerloop", "--version"], { cwd: appDir });
    check(cli.stdout.includes(`innerloop ${pkg.version}`), `\`npx innerloop --version\` printed:\n${cli.out}`);
    check(cli.stdout.includes(`libtorch ${record.version}`), `\`npx innerloop --version\` does not name libtorch ${record.version}:\n${cli.out}`);
    const addonLine = record.prebuild ? `addon: prebuild ${basename(record.prebuild)}` : "addon: built from source";
    check(cli.stdout.includes(addonLine), `\`npx innerloop --version\` does not say "${addonLine}":\n${cli.out}`);
    log(`CLI ok: ${cli.stdout.trim().split("\n").join(" | ")}`);
    // An example written against the public API, run by the installed package.
    copyFileSync(join(root, "examples", "train-char-gpt2.mjs"), join(appDir, "train.mjs"));
    const ex = run(process.execPath, ["train.mjs", "--steps", "30"], { cwd: appDir, env: { ...process.env, OMP_NUM_THREADS: "1" } });
    const trained = JSON.parse(ex.stdout.trim().split("\n").pop());
    check(trained.lastLoss < trained.firstLoss - 0.3, `examples/train-char-gpt2.mjs did not learn: ${JSON.stringify(trained)}`);
    log(`examples/train-char-gpt2.mjs runs on the installed package: loss ${trained.firstLoss.toFixed(3)} -> ${trained.lastLoss.toFixed(3)}`);
    ok = true;
    log(`PASS: ${opts.tarball ? "installed the release tarball without compiling" : `packed, installed (${opts.prebuild === "none" ? "built from source" : `prebuild mode ${opts.prebuild}`})`}, imported and ran the CLI`);
  } finally {
    if (opts.keep || !ok) console.log(`pack-check: files kept in ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
}
