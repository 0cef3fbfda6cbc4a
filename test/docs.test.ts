// The documentation's code runs as written: README.md and docs/*.md are split into fenced blocks,
// the package is packed (`npm pack`) and installed into an empty project as a user would install
// it (scripts/pack-lib.mjs, with the addon built here shipped as a prebuild so nothing compiles),
// and there every ```ts / ```js / ```mjs block not marked `no-run` runs as an ES module that imports
// the package by name (TypeScript through tsx, and type-checked with `tsc --strict`). The README's
// command examples (analyze, sample, report) run as written through `npx innerloop`.
// A failure names the Markdown file and the line of the block.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { docBlocks, type DocBlock } from "./helpers/doc-blocks.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const DOCS = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
const blocks: DocBlock[] = DOCS.flatMap((f) => docBlocks(f, fs.readFileSync(path.join(ROOT, f), "utf8")));
const runnable = blocks.filter((b) => b.runAs !== null);
const TSX = pathToFileURL(path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href;
const TSC = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
// One intra-op thread: test files run side by side on few cores.
const env = { ...process.env, OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1", FORCE_COLOR: "0" };

let work = "";
let app = "";

/** The file a block is written to: its Markdown file and line in the name, so errors point back to it. */
function blockFile(b: DocBlock): string {
  return path.join("doc-blocks", `${b.file.replace(/[/.]/g, "_")}_L${b.line}.${b.runAs === "ts" ? "ts" : "mjs"}`);
}

function tail(s: string, n = 30): string {
  return s.trim().split("\n").slice(-n).join("\n");
}

/**
 * Runs `cmd args` in `cwd` (the installed project by default) without blocking this process (the
 * test runner talks to it meanwhile); a failure's message names `where` and ends with the output.
 */
function runIn(where: string, cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd ?? app, env, encoding: "utf8", timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout);
      const why = err.killed ? `killed after ${opts.timeoutMs ?? 120_000} ms` : `exit ${err.code ?? err.signal}`;
      reject(new Error(`${where}: \`${[cmd, ...args].join(" ")}\` failed (${why}):\n${tail(`${stdout}\n${stderr}`)}`));
    });
  });
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-docs-"));
  // Pack and install in a child process: it takes a minute of synchronous commands.
  const lib = pathToFileURL(path.join(ROOT, "scripts", "pack-lib.mjs")).href;
  const script = `const { packAndInstall } = await import(${JSON.stringify(lib)}); console.log(JSON.stringify({ app: packAndInstall({ work: process.argv[1] }).appDir }));`;
  const out = await runIn("npm pack and install", process.execPath, ["--input-type=module", "-e", script, work], { cwd: ROOT, timeoutMs: 540_000 });
  app = (JSON.parse(out.trim().split("\n").pop()!) as { app: string }).app;
  fs.mkdirSync(path.join(app, "doc-blocks"));
  for (const b of runnable) fs.writeFileSync(path.join(app, blockFile(b)), b.code);
}, 600_000);
afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("documentation code blocks", () => {
  it("there are blocks to run, and every file's fences are closed", () => {
    expect(runnable.length).toBeGreaterThanOrEqual(4);
    expect(runnable.filter((b) => b.file === "README.md").length).toBeGreaterThanOrEqual(1);
  });

  it("no doc imports the package's internal files", () => {
    const internal = blocks.filter((b) => /from\s+["'](\.{1,2}\/)*(lib|dist)\/|innerloop\/(lib|dist)\//.test(b.code));
    expect(internal.map((b) => `${b.file}:${b.line}`)).toEqual([]);
  });

  for (const b of runnable) {
    it(`${b.file}:${b.line} (${b.info}) runs`, async () => {
      const args = b.runAs === "ts" ? ["--import", TSX, blockFile(b)] : [blockFile(b)];
      await runIn(`${b.file}:${b.line}`, process.execPath, args);
    });
  }

  it("a block that fails is reported with its Markdown file and line, and its output", async () => {
    const [bad] = docBlocks("docs/broken.md", "# t\n\n```js\nimport { torch } from \"innerloop\";\nthrow new Error(`boom ${torch.ones([2]).sum().item()}`);\n```\n");
    fs.writeFileSync(path.join(app, blockFile(bad!)), bad!.code);
    await expect(runIn(`${bad!.file}:${bad!.line}`, process.execPath, [blockFile(bad!)])).rejects.toThrow(/^docs\/broken\.md:3: .*failed \(exit 1\):[\s\S]*boom 2/);
  });

  it("the TypeScript blocks type-check with --strict against the installed package's types", async () => {
    const ts = runnable.filter((b) => b.runAs === "ts");
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true, noEmit: true, target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", skipLibCheck: true,
          typeRoots: [path.join(ROOT, "node_modules", "@types")], types: ["node"],
        },
        files: ts.map(blockFile),
      }),
    );
    let msg = "";
    try {
      await runIn("tsc --strict over the doc blocks", process.execPath, [TSC, "-p", "tsconfig.json"], { timeoutMs: 180_000 });
    } catch (e) {
      msg = (e as Error).message;
    }
    // tsc names the block's file and a position in it: translate back to the Markdown file and line.
    for (const b of ts) {
      msg = msg.replaceAll(new RegExp(`${blockFile(b).replace(/[.]/g, "\\.")}\\((\\d+),(\\d+)\\)`, "g"), (_, row: string) => `${b.file}:${b.line + Number(row)}`);
    }
    expect(msg).toBe("");
  });
});

describe("the README's commands", () => {
  const readme = blocks.filter((b) => b.file === "README.md" && b.lang === "sh");
  const line = (cmd: string) => readme.flatMap((b) => b.code.split("\n")).find((l) => l.startsWith(`npx innerloop ${cmd} `));

  it("analyze, sample and report run as written on a small run in runs/a", async () => {
    const analyze = line("analyze");
    const sample = line("sample");
    const report = line("report");
    expect(analyze, "README.md has an `npx innerloop analyze` example").toBeDefined();
    expect(analyze!).toContain("--model runs/a");
    // The README's train line takes 2,000 steps; the examples after it need only a model in runs/a.
    await runIn("train for the README's examples", "npx", ["--no-install", "innerloop", "train", "--data", "moby-dick", "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--seq-len", "128", "--batch-size", "4", "--steps", "4", "--eval-every", "0", "--analyze-every", "2", "--analyze-windows", "2", "--out", "runs/a"]);
    for (const cmd of [analyze!, sample!, report!]) await runIn(`README.md: ${cmd}`, "sh", ["-c", cmd]);
    expect(JSON.parse(fs.readFileSync(path.join(app, "runs", "a", "final", "analysis.json"), "utf8")).meta.unknownSkipped).toBe(0);
  });
});
