// Atomic file and checkpoint-folder writes: behaviour, recovery of every interrupted state, and
// processes killed with SIGKILL at random instants while writing.
import { describe, expect, it, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { recoverDir, writeDirAtomic, writeDirAtomicAsync, writeFileAtomic } from "../lib/util/atomic.js";
import { Prng } from "../lib/util/prng.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-atomic-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(root, `${n++}-${name}`);

describe("writeFileAtomic", () => {
  it("writes strings, bytes and chunk lists, replacing the old file and leaving no temporary", () => {
    const f = fresh("a.txt");
    writeFileAtomic(f, "héllo");
    expect(fs.readFileSync(f, "utf8")).toBe("héllo");
    writeFileAtomic(f, new Uint8Array([1, 2, 3]));
    expect([...fs.readFileSync(f)]).toEqual([1, 2, 3]);
    writeFileAtomic(f, [new Uint8Array([4]), Buffer.from("xy")]);
    expect(fs.readFileSync(f, "latin1")).toBe("\x04xy");
    expect(fs.readdirSync(path.dirname(f)).filter((x) => x.includes(".tmp-"))).toEqual([]);
  });

  it("leaves the old file when writing fails", () => {
    const f = fresh("b.txt");
    writeFileAtomic(f, "old");
    expect(() => writeFileAtomic(f, 42 as unknown as string)).toThrow(TypeError);
    expect(fs.readFileSync(f, "utf8")).toBe("old");
    expect(fs.readdirSync(path.dirname(f)).filter((x) => x.startsWith(path.basename(f) + ".tmp-"))).toEqual([]);
  });
});

describe("writeDirAtomic", () => {
  it("replaces a folder as a unit, with sub-folders, from a map or a callback", async () => {
    const d = fresh("ckpt");
    writeDirAtomic(d, { "a.json": "{}", "sub/b.bin": new Uint8Array([7]) });
    expect(fs.readdirSync(d).sort()).toEqual(["a.json", "sub"]);
    writeDirAtomic(d, (tmp) => fs.writeFileSync(path.join(tmp, "c.txt"), "c"));
    expect(fs.readdirSync(d)).toEqual(["c.txt"]);
    await writeDirAtomicAsync(d, async (tmp) => fs.promises.writeFile(path.join(tmp, "d.txt"), "d"));
    expect(fs.readdirSync(d)).toEqual(["d.txt"]);
    expect(() =>
      writeDirAtomic(d, () => {
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(fs.readdirSync(d)).toEqual(["d.txt"]);
    expect(() => writeDirAtomic(d, { "../escape.txt": "x" })).toThrow(/must stay inside/);
    expect(fs.readdirSync(path.dirname(d)).filter((x) => x.startsWith(path.basename(d) + "."))).toEqual([]);
  });

  it("recovers each interrupted state to a complete checkpoint", () => {
    const make = (p: string, v: string) => {
      fs.mkdirSync(p, { recursive: true });
      fs.writeFileSync(path.join(p, "v.txt"), v);
    };
    const read = (p: string) => fs.readFileSync(path.join(p, "v.txt"), "utf8");
    // Killed while filling the temporary folder: the old checkpoint stays, the partial one goes.
    let d = fresh("s1");
    make(d, "old");
    make(`${d}.tmp-1-0000abcd`, "partial");
    expect(recoverDir(d)).toBe(true);
    expect(read(d)).toBe("old");
    expect(fs.existsSync(`${d}.tmp-1-0000abcd`)).toBe(false);
    // Killed after the old one was moved aside, before the new one was moved in: the new one is complete.
    d = fresh("s2");
    make(`${d}.old-1-0000abcd`, "old");
    make(`${d}.new-1-0000abcd`, "new");
    expect(recoverDir(d)).toBe(true);
    expect(read(d)).toBe("new");
    expect(fs.readdirSync(path.dirname(d)).filter((x) => x.startsWith(path.basename(d) + "."))).toEqual([]);
    // Only the old one aside (new one never completed): restored.
    d = fresh("s3");
    make(`${d}.old-1-0000abcd`, "old");
    make(`${d}.tmp-1-0000abcd`, "partial");
    expect(recoverDir(d)).toBe(true);
    expect(read(d)).toBe("old");
    // Killed before the first checkpoint was complete: there is none.
    d = fresh("s4");
    make(`${d}.tmp-1-0000abcd`, "partial");
    expect(recoverDir(d)).toBe(false);
    expect(fs.existsSync(`${d}.tmp-1-0000abcd`)).toBe(false);
    // Unrelated siblings are left alone.
    d = fresh("s5");
    make(d, "x");
    make(`${d}.backup`, "mine");
    recoverDir(d);
    expect(read(`${d}.backup`)).toBe("mine");
  });

  it("survives SIGKILL at random instants: always the old or the new complete checkpoint", async () => {
    // The writer runs in a plain node process: compile the module to JavaScript for it.
    const src = fs.readFileSync(path.join(here, "..", "lib", "util", "atomic.ts"), "utf8");
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const work = fresh("kill");
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, "atomic.mjs"), js);
    // Version v writes three files whose contents all name v; a checkpoint is consistent when they agree.
    fs.writeFileSync(
      path.join(work, "writer.mjs"),
      `import { writeDirAtomic, writeFileAtomic } from "./atomic.mjs";
       const [dir, file] = process.argv.slice(2);
       for (let v = Number(process.argv[4]); ; v++) {
         const big = Buffer.alloc(1 << 19, v % 251);
         writeDirAtomic(dir, { "model.bin": big, "state.json": JSON.stringify({ v }), "nested/meta.txt": "v=" + v });
         writeFileAtomic(file, String(v).padStart(12, "0").repeat(20000));
         if (v % 3 === 0) process.stdout.write(".");
       }`,
    );
    const dir = path.join(work, "ckpt");
    const file = path.join(work, "single.txt");
    const rng = new Prng(99);
    let completed = 0;
    let interrupted = 0; // kills that landed inside a folder write (leftovers for recovery to handle)
    const kills = 12;
    for (let k = 0; k < kills; k++) {
      const child = spawn(process.execPath, [path.join(work, "writer.mjs"), dir, file, String(k * 1000)], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stderr.on("data", (b) => (err += String(b)));
      // Wait until it has started writing, then a random extra delay.
      await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
      await new Promise((r) => setTimeout(r, 5 + rng.nextInt(120)));
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      expect(err).toBe("");
      if (fs.readdirSync(work).some((x) => x.startsWith("ckpt.")) || !fs.existsSync(dir)) interrupted++;
      expect(recoverDir(dir)).toBe(true);
      const v = (JSON.parse(fs.readFileSync(path.join(dir, "state.json"), "utf8")) as { v: number }).v;
      expect(fs.readFileSync(path.join(dir, "nested", "meta.txt"), "utf8")).toBe(`v=${v}`);
      const bin = fs.readFileSync(path.join(dir, "model.bin"));
      expect(bin.length).toBe(1 << 19);
      expect(bin.every((b) => b === v % 251)).toBe(true);
      expect(fs.readdirSync(dir).sort()).toEqual(["model.bin", "nested", "state.json"]);
      const single = fs.readFileSync(file, "utf8");
      expect(single.length).toBe(12 * 20000);
      expect(single).toBe(single.slice(0, 12).repeat(20000));
      expect(v).toBeGreaterThanOrEqual(k * 1000); // written by this process, which got past its first checkpoint
      completed++;
      expect(fs.readdirSync(work).filter((x) => x.startsWith("ckpt."))).toEqual([]);
    }
    expect(completed).toBe(kills);
    // Most of the writer's time is spent inside writeDirAtomic, so most kills interrupt one.
    expect(interrupted).toBeGreaterThan(0);
    console.log(`atomic kill test: ${interrupted} of ${kills} kills interrupted a folder write`);
  });
});
