/**
 * Crash-safe file and directory writes.
 *
 * Files: `writeFileAtomic(path, data)` writes `path.tmp-<pid>-<random>` in the
 * same folder, fsyncs it, renames it over `path` and fsyncs the folder. A
 * rename within one file system is atomic, so a reader (or a process that
 * restarts after kill -9 or a power cut) sees either the old file or the new
 * one, never a mixture. A stray `*.tmp-*` file is the only trace a crash can
 * leave.
 *
 * Directories (checkpoints of several files): POSIX cannot rename a directory
 * over a non-empty one, so `writeDirAtomic(dir, ...)` swaps in three steps,
 * with names that say how far it got:
 *
 *   1. fill `DIR.tmp-<id>` and fsync every file in it and the folder itself;
 *   2. rename `DIR.tmp-<id>` to `DIR.new-<id>`     (now known to be complete);
 *   3. rename `DIR` to `DIR.old-<id>`              (if DIR existed);
 *   4. rename `DIR.new-<id>` to `DIR`, fsync the parent;
 *   5. delete `DIR.old-<id>`.
 *
 * A kill at any instant leaves one of these states, and `recoverDir(dir)`
 * (called by `writeDirAtomic` first, and to be called by readers before they
 * read a checkpoint) turns each into a complete checkpoint:
 *
 *   - `DIR` exists: it is complete (only complete folders are ever renamed to
 *     DIR). Leftover `.tmp-`, `.new-` and `.old-` siblings are deleted.
 *   - `DIR` missing, a `DIR.new-*` exists (crash between 3 and 4): the new
 *     checkpoint is complete; it is renamed to DIR.
 *   - `DIR` missing, only a `DIR.old-*` exists: the old one is restored.
 *   - nothing but `DIR.tmp-*`: there never was a complete checkpoint; the
 *     partial folder is deleted and DIR stays missing.
 *
 * One writer per target at a time is assumed (the training process).
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import * as path from "node:path";
import { randomBytes } from "node:crypto";

export type FileData = string | Uint8Array | readonly Uint8Array[];

function uniqueSuffix(): string {
  return `${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** fsync a folder so that a rename inside it is durable. Not possible on every platform; best effort there. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot open folders for fsync; the rename is still atomic there.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** `fsyncDir` through libuv's thread pool. */
export async function fsyncDirAsync(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsp.open(dir, "r");
    await handle.sync();
  } catch {
    // Windows cannot open folders for fsync; the rename is still atomic there.
  } finally {
    await handle?.close();
  }
}

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.byteLength) {
    off += fs.writeSync(fd, buf, off, Math.min(buf.byteLength - off, 1 << 30));
  }
}

/**
 * Write a file through `write(fd)` atomically: the callback writes into a
 * temporary file in the same folder, which is then fsynced and renamed over
 * `target`. Used for large files written piece by piece (safetensors).
 */
export function writeFileAtomicWith(target: string, write: (fd: number) => void, opts: { mode?: number } = {}): void {
  if (typeof target !== "string" || target.length === 0) throw new TypeError("writeFileAtomic: path must be a non-empty string");
  const dir = path.dirname(path.resolve(target));
  const tmp = path.join(dir, `${path.basename(target)}.tmp-${uniqueSuffix()}`);
  const fd = fs.openSync(tmp, "wx", opts.mode ?? 0o644);
  let ok = false;
  try {
    write(fd);
    fs.fsyncSync(fd);
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (!ok) rmQuiet(tmp);
  }
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    rmQuiet(tmp);
    throw e;
  }
  fsyncDir(dir);
}

/**
 * `writeFileAtomicWith` with an async writer: the writes, the fsync and the rename run on
 * libuv's thread pool (fs/promises), so a large file does not block the event loop.
 */
export async function writeFileAtomicAsync(target: string, write: (file: FileHandle) => Promise<void>, opts: { mode?: number } = {}): Promise<void> {
  if (typeof target !== "string" || target.length === 0) throw new TypeError("writeFileAtomic: path must be a non-empty string");
  const dir = path.dirname(path.resolve(target));
  const tmp = path.join(dir, `${path.basename(target)}.tmp-${uniqueSuffix()}`);
  const file = await fsp.open(tmp, "wx", opts.mode ?? 0o644);
  let ok = false;
  try {
    await write(file);
    await file.sync();
    ok = true;
  } finally {
    await file.close();
    if (!ok) await fsp.rm(tmp, { force: true });
  }
  try {
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDirAsync(dir);
}

/** Writes all of `buf` at the file's current position, through libuv's thread pool. */
export async function writeAllAsync(file: FileHandle, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.byteLength) off += (await file.write(buf, off, Math.min(buf.byteLength - off, 1 << 30))).bytesWritten;
}

/** Write `data` (text as UTF-8, bytes, or a list of byte chunks) to `target` atomically. */
export function writeFileAtomic(target: string, data: FileData, opts: { mode?: number } = {}): void {
  writeFileAtomicWith(
    target,
    (fd) => {
      if (typeof data === "string") writeAll(fd, Buffer.from(data, "utf8"));
      else if (data instanceof Uint8Array) writeAll(fd, data);
      else if (Array.isArray(data)) for (const chunk of data) writeAll(fd, chunk);
      else throw new TypeError("writeFileAtomic: data must be a string, a Uint8Array or an array of Uint8Array");
    },
    opts,
  );
}

function rmQuiet(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    // Best effort: a leftover temporary is harmless and removed by the next recovery.
  }
}

/** fsync every regular file below `dir` and every folder, deepest first. */
function fsyncTree(dir: string): void {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) fsyncTree(p);
    else if (ent.isFile()) {
      const fd = fs.openSync(p, "r+");
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  fsyncDir(dir);
}

type Sibling = { name: string; kind: "tmp" | "new" | "old"; mtimeMs: number };

function siblings(dir: string): Sibling[] {
  const parent = path.dirname(dir);
  const base = path.basename(dir);
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return [];
  }
  const out: Sibling[] = [];
  for (const name of names) {
    for (const kind of ["tmp", "new", "old"] as const) {
      const prefix = `${base}.${kind}-`;
      if (name.startsWith(prefix) && /^[0-9]+-[0-9a-f]{8}$/.test(name.slice(prefix.length))) {
        let mtimeMs = 0;
        try {
          mtimeMs = fs.statSync(path.join(parent, name)).mtimeMs;
        } catch {
          continue;
        }
        out.push({ name, kind, mtimeMs });
      }
    }
  }
  return out;
}

/**
 * Finish or undo an interrupted `writeDirAtomic` on `dir` (see the scheme at
 * the top of this file). Returns true when `dir` exists afterwards.
 */
export function recoverDir(dir: string): boolean {
  dir = path.resolve(dir);
  const parent = path.dirname(dir);
  const sibs = siblings(dir);
  if (!fs.existsSync(dir)) {
    const byNewest = (a: Sibling, b: Sibling) => b.mtimeMs - a.mtimeMs;
    const candidate = sibs.filter((s) => s.kind === "new").sort(byNewest)[0] ?? sibs.filter((s) => s.kind === "old").sort(byNewest)[0];
    if (candidate) {
      fs.renameSync(path.join(parent, candidate.name), dir);
      fsyncDir(parent);
    }
  }
  for (const s of siblings(dir)) rmQuiet(path.join(parent, s.name));
  return fs.existsSync(dir);
}

function prepareTmp(dir: string): { dir: string; parent: string; id: string; tmp: string } {
  dir = path.resolve(dir);
  const parent = path.dirname(dir);
  fs.mkdirSync(parent, { recursive: true });
  recoverDir(dir);
  const id = uniqueSuffix();
  const tmp = path.join(parent, `${path.basename(dir)}.tmp-${id}`);
  fs.mkdirSync(tmp);
  return { dir, parent, id, tmp };
}

function swapIn(p: { dir: string; parent: string; id: string; tmp: string }): void {
  fsyncTree(p.tmp);
  const base = path.basename(p.dir);
  const fresh = path.join(p.parent, `${base}.new-${p.id}`);
  const old = path.join(p.parent, `${base}.old-${p.id}`);
  fs.renameSync(p.tmp, fresh);
  fsyncDir(p.parent);
  let hadOld = false;
  if (fs.existsSync(p.dir)) {
    fs.renameSync(p.dir, old);
    hadOld = true;
  }
  fs.renameSync(fresh, p.dir);
  fsyncDir(p.parent);
  if (hadOld) rmQuiet(old);
}

export type DirContents = Record<string, FileData>;

function writeContents(tmp: string, files: DirContents): void {
  for (const [name, data] of Object.entries(files)) {
    const rel = path.normalize(name);
    if (path.isAbsolute(rel) || rel.startsWith("..")) throw new RangeError(`writeDirAtomic: file name ${JSON.stringify(name)} must stay inside the folder`);
    const p = path.join(tmp, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const fd = fs.openSync(p, "wx");
    try {
      if (typeof data === "string") writeAll(fd, Buffer.from(data, "utf8"));
      else if (data instanceof Uint8Array) writeAll(fd, data);
      else for (const chunk of data) writeAll(fd, chunk);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * Replace the folder `dir` as one unit. `contents` is either a map from file
 * names (relative, may contain sub-folders) to data, or a callback that writes
 * whatever it likes into the temporary folder it is given (plain, non-atomic
 * writes are fine there). If the callback throws, `dir` is left untouched.
 */
export function writeDirAtomic(dir: string, contents: DirContents | ((tmpDir: string) => void)): void {
  const p = prepareTmp(dir);
  try {
    if (typeof contents === "function") {
      const r: unknown = contents(p.tmp);
      if (r instanceof Promise) throw new TypeError("writeDirAtomic: the callback returned a Promise; use writeDirAtomicAsync");
    } else writeContents(p.tmp, contents);
    swapIn(p);
  } catch (e) {
    rmQuiet(p.tmp);
    throw e;
  }
}

/** `writeDirAtomic` with an async callback. */
export async function writeDirAtomicAsync(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const p = prepareTmp(dir);
  try {
    await fill(p.tmp);
    swapIn(p);
  } catch (e) {
    rmQuiet(p.tmp);
    throw e;
  }
}
