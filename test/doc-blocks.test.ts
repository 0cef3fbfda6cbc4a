// The Markdown code-block extraction behind test/docs.test.ts.
import { describe, expect, it } from "vitest";
import { docBlocks } from "./helpers/doc-blocks.js";

describe("docBlocks", () => {
  it("finds fenced blocks with their line, language and whether they run", () => {
    const md = ["# t", "```ts", "a();", "```", "text", "```ts no-run", "b();", "```", "~~~js", "c();", "~~~", "```sh", "npx x", "```", "````mjs", "```", "````"].join("\n");
    const b = docBlocks("x.md", md);
    expect(b.map((x) => [x.line, x.lang, x.runAs])).toEqual([
      [2, "ts", "ts"],
      [6, "ts", null],
      [9, "js", "js"],
      [12, "sh", null],
      [15, "mjs", "js"],
    ]);
    expect(b[0]!.code).toBe("a();\n");
    expect(b[4]!.code).toBe("```\n");
  });

  it("names the file and line of a fence that is never closed", () => {
    expect(() => docBlocks("docs/y.md", "x\n```ts\nfoo();\n")).toThrow("docs/y.md:2: code block opened here is never closed");
  });
});
