// The working tree as a fresh clone of it would be (tracked files and untracked ones git does not
// ignore), copied into a folder: what pack-check and release pack from, so that local build outputs
// never reach a tarball.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, lstatSync, mkdirSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";

/** Copies the checkout at `root` into `dir` and links its node_modules there; returns the file count. */
export function stageCheckout(root, dir) {
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root })
    .toString()
    .split("\0")
    // Regular files only (a deleted file git still tracks, or a link, is not what a clone holds).
    .filter((f) => f && f !== "node_modules" && existsSync(join(root, f)) && lstatSync(join(root, f)).isFile());
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    copyFileSync(join(root, f), join(dir, f));
  }
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  return files.length;
}
