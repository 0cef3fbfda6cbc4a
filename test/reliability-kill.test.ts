// kill -9 in the middle of a checkpoint write, at two chosen instants rather than random ones:
//
//   - "fill":   while the new checkpoint's files are being written into RUN/.checkpoint-pending,
//               before COMMIT: the previous checkpoint must be what a resume finds;
//   - "commit": after COMMIT, between the renames that move the new files into RUN (the new weights
//               already in place, the old trainer state still there): the new checkpoint must be
//               completed and used.
//
// Either way `innerloop train --resume` must then continue exactly: the loss of every step equals
// that of an uninterrupted run with the same seed (dropout on, so the RNG state matters too).
//
// The instant is chosen by a module loaded before the CLI (--import) that wraps fs.renameSync
// and sends SIGKILL to its own process at the chosen rename.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { hasCheckpoint } from "../lib/train/checkpoint.js";
import { readTrainerState } from "../lib/train/state.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const MAIN = pathToFileURL(path.join(ROOT, "lib/cli/main.ts")).href;
const ENTRY = `const { main } = await import(${JSON.stringify(MAIN)}); process.exitCode = await main(process.argv.slice(1));`;

let tmp: string;
let killer: string;

// KILL_MODE=fill|commit, KILL_STEP=K: die during the checkpoint written after step K.
const KILLER_SRC = `
import fs from "node:fs";
import path from "node:path";
import { syncBuiltinESMExports } from "node:module";
const mode = process.env.KILL_MODE;
const step = Number(process.env.KILL_STEP);
const rename = fs.renameSync;
const stepOf = (file) => { try { return JSON.parse(fs.readFileSync(file, "utf8")).step; } catch { return undefined; } };
fs.renameSync = function (src, dst) {
  const s = String(src), d = String(dst);
  const pendingDir = path.dirname(d);
  if (mode === "fill" && path.basename(pendingDir) === ".checkpoint-pending" && path.basename(d) === "trainer_state.json" && stepOf(s) === step) {
    // The weights and optimizer state are in the pending folder; the trainer state and COMMIT are not.
    fs.writeFileSync(path.join(path.dirname(pendingDir), "killed-at"), mode);
    process.kill(process.pid, "SIGKILL");
  }
  const r = rename.apply(this, arguments);
  if (mode === "commit" && path.basename(path.dirname(s)) === ".checkpoint-pending" && path.basename(s) === "model.safetensors" &&
      stepOf(path.join(path.dirname(s), "trainer_state.json")) === step) {
    // COMMIT is written and the new weights are in RUN; the trainer state there is still the old one.
    fs.writeFileSync(path.join(path.dirname(d), "killed-at"), mode);
    process.kill(process.pid, "SIGKILL");
  }
  return r;
};
syncBuiltinESMExports();
`;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const pre = env.KILL_MODE ? ["--import", pathToFileURL(killer).href] : [];
    const child = spawn(process.execPath, ["--import", "tsx", ...pre, "--input-type=module", "-e", ENTRY, "--", ...args], {
      cwd: ROOT,
      env: { ...process.env, FORCE_COLOR: "0", OMP_NUM_THREADS: "1", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const STEPS = 12;
const RUN = ["--preset", "tiny", "--batch-size", "4", "--seq-len", "32", "--dropout", "0.1", "--eval-every", "0", "--checkpoint-every", "1", "--steps", String(STEPS)];
const losses = (dir: string) =>
  fs
    .readFileSync(path.join(dir, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step: number; loss?: number })
    .filter((r) => r.loss !== undefined);

let straight: Array<{ step: number; loss?: number }>;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-kill-"));
  killer = path.join(tmp, "killer.mjs");
  fs.writeFileSync(killer, KILLER_SRC);
  const r = await cli(["train", ...RUN, "--out", path.join(tmp, "straight")]);
  expect(r.code, r.stderr).toBe(0);
  straight = losses(path.join(tmp, "straight"));
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("kill -9 during a checkpoint write, then innerloop train --resume", () => {
  const cases: Array<[mode: "fill" | "commit", killStep: number, resumesFrom: number]> = [
    ["fill", 6, 5],
    ["commit", 6, 6],
  ];
  for (const [mode, killStep, resumesFrom] of cases) {
    it(`killed while ${mode === "fill" ? "filling the pending checkpoint" : "moving a committed checkpoint in"} at step ${killStep}: resumes from step ${resumesFrom} and continues exactly`, async () => {
      const dir = path.join(tmp, mode);
      const killed = await cli(["train", ...RUN, "--out", dir], { KILL_MODE: mode, KILL_STEP: String(killStep) });
      expect(killed.signal, killed.stderr).toBe("SIGKILL");
      expect(fs.readFileSync(path.join(dir, "killed-at"), "utf8")).toBe(mode);
      // The kill left a half-done write behind...
      expect(fs.existsSync(path.join(dir, ".checkpoint-pending"))).toBe(true);
      expect(fs.existsSync(path.join(dir, ".checkpoint-pending", "COMMIT"))).toBe(mode === "commit");
      // ...which readers turn into one complete, consistent checkpoint.
      expect(hasCheckpoint(dir)).toBe(true);
      expect(fs.existsSync(path.join(dir, ".checkpoint-pending"))).toBe(false);
      const state = readTrainerState(dir);
      expect(state.step).toBe(resumesFrom);
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
      expect(cfg.innerloop.step).toBe(resumesFrom);

      const resumed = await cli(["train", "--resume", dir]);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain(`resuming ${dir} at step ${resumesFrom}`);
      const got = losses(dir);
      expect(got.map((r) => r.step)).toEqual(straight.map((r) => r.step));
      // Same process-independent computation: bit-for-bit the same losses (printed with full precision).
      got.forEach((r, i) => expect(r.loss, `step ${r.step}`).toBe(straight[i]!.loss));
      expect(readTrainerState(dir).step).toBe(STEPS);
    }, 120_000);
  }
});
