// Tokenizers from tokenizer.json against the `tokenizers` library (scripts/oracle/pretrained_make.py
// trained a byte-level BPE and a LLaMA-style SentencePiece BPE with byte fallback, and recorded
// their encodings and decodings).

import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { HfTokenizer, loadHfTokenizer } from "../lib/data/hf-tokenizer.js";

const ROOT = path.join(__dirname, "fixtures", "pretrained", "tokenizers");

interface Expected {
  vocabSize: number;
  cases: Array<{ text: string; ids: number[]; decoded: string }>;
}

describe.each(["bytelevel", "llama"])("tokenizer.json (%s) agrees with the tokenizers library", (kind) => {
  const dir = path.join(ROOT, kind);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, "expected.json"), "utf8")) as Expected;
  const tok = HfTokenizer.fromDir(dir);

  it("has the vocabulary size and special ids of the files", () => {
    expect(tok.vocabSize).toBe(expected.vocabSize);
    if (kind === "llama") {
      expect(tok.bosId).toBe(1);
      expect(tok.eotId).toBe(2);
    } else {
      expect(tok.eotId).toBe(0);
    }
  });

  for (const [i, c] of expected.cases.entries()) {
    it(`encodes and decodes case ${i} (${JSON.stringify(c.text.slice(0, 20))})`, () => {
      expect(Array.from(tok.encode(c.text))).toEqual(c.ids);
      expect(tok.decode(c.ids)).toBe(c.decoded);
      // Decoding what we encoded gives the text back (every case is representable).
      expect(tok.decode(tok.encode(c.text))).toBe(c.text);
    });
  }

  it("decodes int64 tensor data (BigInt64Array) and refuses out-of-range ids", () => {
    const ids = tok.encode("the world");
    expect(tok.decode(BigInt64Array.from(ids, (v) => BigInt(v)))).toBe("the world");
    expect(() => tok.decode([tok.vocabSize])).toThrow(/not an integer in \[0, /);
  });
});

describe("tokenizer loading errors", () => {
  it("a folder without tokenizer.json gives null from loadHfTokenizer and a clear error from fromDir", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-tok-"));
    expect(loadHfTokenizer(dir)).toBeNull();
    expect(() => HfTokenizer.fromDir(dir)).toThrow(/no tokenizer\.json/);
    fs.writeFileSync(path.join(dir, "tokenizer.json"), "{ not json");
    expect(() => HfTokenizer.fromDir(dir)).toThrow(/tokenizer\.json: invalid JSON/);
  });

  it("round-trips through toJSON/fromJSON", () => {
    const tok = HfTokenizer.fromDir(path.join(ROOT, "llama"));
    const again = HfTokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(Array.from(again.encode("Call me Ishmael."))).toEqual(Array.from(tok.encode("Call me Ishmael.")));
    expect(() => HfTokenizer.fromJSON({ kind: "gpt2" })).toThrow(/expected \{ kind: "hf", dir \}/);
  });
});
