// The public types, checked by the compiler: test/types/*.ts compile with `tsc --strict`, and each
// line after a `@ts-expect-error` directive there must fail to compile (tsc reports an unused
// directive otherwise), so both what the types allow and what they refuse are tested.
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..");

describe("types", () => {
  it("test/types compiles with --strict, and every expected error occurs", async () => {
    const tsc = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");
    const r = await promisify(execFile)(process.execPath, [tsc, "-p", path.join(ROOT, "test", "types", "tsconfig.json")], { cwd: ROOT }).then(
      () => "",
      (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ""}${e.stderr ?? ""}` || "tsc failed",
    );
    expect(r).toBe("");
  });
});
