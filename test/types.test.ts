// The public torch API's types under strict TypeScript (the root module's exports, from the
// sources, so that the check never sees a stale dist/): test/types/torch-api.ts must compile,
// and each of its @ts-expect-error lines must be an error (tsc reports an unused one).
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

describe("public types", () => {
  it("compile under tsc --strict, and the misuses do not", () => {
    const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
    const r = spawnSync(
      process.execPath,
      [tsc, "--strict", "--noEmit", "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--skipLibCheck", "test/types/torch-api.ts"],
      { cwd: root, encoding: "utf8" },
    );
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
