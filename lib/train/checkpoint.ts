/**
 * Checkpoints of a run directory, written as one unit.
 *
 * A run directory holds, at its top level, a Hugging Face GPT-2 checkpoint
 * (`config.json`, `model.safetensors`) so that transformers loads it as it
 * is, and beside it what an exact resume needs: `optimizer.safetensors`
 * (AdamW moments; the optimizer's JSON state in its metadata) and
 * `trainer_state.json` (step, RNG states, sampler position, configuration).
 * `metrics.jsonl` and plugin folders (`analysis/`) live there too, so the
 * directory itself cannot be swapped as a whole.
 *
 * A checkpoint is therefore committed like a small journal:
 *
 *   1. every file is written into `RUN/.checkpoint-pending/` (each fsynced);
 *   2. `RUN/.checkpoint-pending/COMMIT` is written atomically: from now on
 *      the pending checkpoint is known to be complete;
 *   3. each pending file is renamed over its counterpart in RUN (atomic
 *      per file);
 *   4. the pending folder is removed.
 *
 * `recoverRunDir` (run before every read and write) finishes step 3 when a
 * COMMIT exists and otherwise deletes the incomplete pending folder, so a
 * kill at any instant leaves either the previous checkpoint or the new one.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fsyncDir, fsyncDirAsync, writeAllAsync, writeFileAtomic, writeFileAtomicAsync } from "../util/atomic.js";

export const CONFIG_FILE = "config.json";
export const MODEL_FILE = "model.safetensors";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const TRAINER_STATE_FILE = "trainer_state.json";
const PENDING = ".checkpoint-pending";
const COMMIT = "COMMIT";

/** Finishes or discards a checkpoint write that was interrupted. Safe to call at any time. */
export function recoverRunDir(runDir: string): void {
  const pending = path.join(runDir, PENDING);
  if (!fs.existsSync(pending)) return;
  const commit = path.join(pending, COMMIT);
  if (fs.existsSync(commit)) {
    let files: string[];
    try {
      files = (JSON.parse(fs.readFileSync(commit, "utf8")) as { files: string[] }).files;
    } catch {
      // COMMIT is written atomically, so it is either absent or whole; a damaged one means the
      // folder was tampered with, and the previous checkpoint is the safe choice.
      files = [];
    }
    for (const f of files) {
      const src = path.join(pending, f);
      if (fs.existsSync(src)) fs.renameSync(src, path.join(runDir, f));
    }
    fsyncDir(runDir);
  }
  fs.rmSync(pending, { recursive: true, force: true });
}

/**
 * Writes a checkpoint into `runDir` as one unit. `fill(dir)` writes the
 * checkpoint's files into the (empty) folder it is given; every regular file
 * it leaves there replaces the file of the same name in `runDir`.
 */
export function commitCheckpoint(runDir: string, fill: (dir: string) => void): void {
  fs.mkdirSync(runDir, { recursive: true });
  recoverRunDir(runDir);
  const pending = path.join(runDir, PENDING);
  fs.mkdirSync(pending);
  try {
    fill(pending);
    const files = pendingFiles(pending);
    for (const f of files) fsyncFile(path.join(pending, f));
    writeCommit(pending, files);
  } catch (e) {
    fs.rmSync(pending, { recursive: true, force: true });
    throw e;
  }
  recoverRunDir(runDir);
}

/**
 * `commitCheckpoint` with an async `fill` (e.g. one that writes with saveSafetensorsAsync): the
 * fsyncs of the pending files also run on libuv's thread pool. The renames that commit stay
 * synchronous (each is one metadata operation).
 */
export async function commitCheckpointAsync(runDir: string, fill: (dir: string) => Promise<void>): Promise<void> {
  await fs.promises.mkdir(runDir, { recursive: true });
  recoverRunDir(runDir);
  const pending = path.join(runDir, PENDING);
  await fs.promises.mkdir(pending);
  try {
    await fill(pending);
    const files = pendingFiles(pending);
    for (const f of files) {
      const handle = await fs.promises.open(path.join(pending, f), "r+");
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    await fsyncDirAsync(pending);
    await writeFileAtomicAsync(path.join(pending, COMMIT), (file) => writeAllAsync(file, Buffer.from(commitRecord(files))));
  } catch (e) {
    fs.rmSync(pending, { recursive: true, force: true });
    throw e;
  }
  recoverRunDir(runDir);
}

/** The files `fill` left in the pending folder (not the temporaries of atomic writes). */
function pendingFiles(pending: string): string[] {
  return fs
    .readdirSync(pending, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.includes(".tmp-"))
    .map((e) => e.name);
}

/** COMMIT's contents: the files in the order they are moved into place. */
function commitRecord(files: string[]): string {
  // The trainer state goes last, so that a reader without recovery never sees a state newer than the weights.
  return JSON.stringify({ files: [...files].sort((a, b) => Number(a === TRAINER_STATE_FILE) - Number(b === TRAINER_STATE_FILE)) });
}

/** Step 2: the (fsynced) pending files are complete; COMMIT says so, atomically. */
function writeCommit(pending: string, files: string[]): void {
  fsyncDir(pending);
  writeFileAtomic(path.join(pending, COMMIT), commitRecord(files));
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** True when `runDir` holds a resumable checkpoint (after recovering an interrupted write). */
export function hasCheckpoint(runDir: string): boolean {
  if (!fs.existsSync(runDir)) return false;
  recoverRunDir(runDir);
  return [CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE].every((f) => fs.existsSync(path.join(runDir, f)));
}
