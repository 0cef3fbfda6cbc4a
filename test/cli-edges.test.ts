// CLI edges shared by the commands: one policy for characters a char model's vocabulary lacks
// (analyze and sample refuse by default, naming the character and its position; --skip-unknown
// skips them and analyze records how many in analysis.json's meta), and a --data path that does
// not exist is a one-line usage error with exit 2 in every command that takes --data.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cli } from "./helpers/cli.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-cli-edges-"));
const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "");
const runDir = path.join(tmp, "run");
// The model's vocabulary: the characters of this corpus (a, b, c, space, newline).
const corpus = path.join(tmp, "abc.txt");
// Held-out text with 3 characters outside it: 'x' at position 4, then 'y', 'z'.
const heldOut = path.join(tmp, "held-out.txt");

beforeAll(async () => {
  fs.writeFileSync(corpus, "abc cab bca\n".repeat(200));
  fs.writeFileSync(heldOut, "abc x" + "ab ca\n".repeat(60) + "yz");
  const r = await cli(["train", "--preset", "tiny", "--batch-size", "2", "--seq-len", "16", "--eval-every", "0", "--checkpoint-every", "0", "--steps", "2", "--data", corpus, "--out", runDir]);
  expect(r.code, r.stderr).toBe(0);
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("unknown characters", () => {
  it("analyze refuses text with a character the tokenizer lacks, naming it and its position", async () => {
    const out = path.join(tmp, "refused");
    const r = await cli(["analyze", "--model", runDir, "--data", heldOut, "--seq-len", "16", "--batch-size", "2", "--out", out]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/character "x" \(U\+0078\) at position 4 is not in the vocabulary of 5 characters/);
    expect(r.stderr).toContain("--skip-unknown");
    expect(fs.existsSync(path.join(out, "analysis.json"))).toBe(false);
  });

  it("analyze --skip-unknown skips them and records the count in meta", async () => {
    const out = path.join(tmp, "skipped");
    const r = await cli(["analyze", "--model", runDir, "--data", heldOut, "--seq-len", "16", "--batch-size", "2", "--skip-unknown", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("skipped 3 characters");
    const meta = JSON.parse(fs.readFileSync(path.join(out, "analysis.json"), "utf8")).meta;
    expect(meta.unknownSkipped).toBe(3);
  });

  it("sample applies the same policy to the prompt", async () => {
    const refused = await cli(["sample", "--model", runDir, "--prompt", "ab!c", "--max-new-tokens", "3"]);
    expect(refused.code).toBe(1);
    expect(lines(refused.stderr)).toHaveLength(1);
    expect(refused.stderr).toMatch(/--prompt: .*character "!" \(U\+0021\) at position 2 .*--skip-unknown/);
    const skipped = await cli(["sample", "--model", runDir, "--prompt", "ab!c", "--max-new-tokens", "3", "--skip-unknown"]);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stdout.startsWith("abc")).toBe(true);
  });
});

describe("a --data path that does not exist", () => {
  const missing = () => path.join(tmp, "no-such-text.txt");
  it("is a one-line usage error (exit 2) in analyze", async () => {
    const r = await cli(["analyze", "--model", runDir, "--data", missing(), "--out", path.join(tmp, "a")]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([`innerloop analyze: --data: ${missing()} does not exist (give 'moby-dick', a text file, a folder of text files or a .bin token file) (see innerloop analyze --help)`]);
  });
  it("and in train", async () => {
    const r = await cli(["train", "--steps", "1", "--data", missing(), "--out", path.join(tmp, "t")]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain(`--data: ${missing()} does not exist`);
  });
});
