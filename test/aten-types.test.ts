// The committed declarations of torch.aten are what scripts/gen-aten-types.py makes from the
// pinned torch's operator schemas: regenerate and compare.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";

const root = join(__dirname, "..");

it("lib/torch/aten-ops.generated.ts is up to date with the pinned torch", (ctx) => {
  const committed = readFileSync(join(root, "lib", "torch", "aten-ops.generated.ts"), "utf8");
  const pinned = /from the operator schemas of torch (\S+)\./.exec(committed)?.[1];
  expect(pinned).toBeDefined();
  const installed = execFileSync("python3", ["-c", "import torch; print(torch.__version__.split('+')[0])"], { encoding: "utf8" }).trim();
  if (installed !== pinned) {
    // The declarations describe the pinned torch; another one has other schemas by design.
    console.log(`aten-types: python3 has torch ${installed}, the declarations are for ${pinned}: not compared`);
    ctx.skip();
  }
  const fresh = execFileSync("python3", [join(root, "scripts", "gen-aten-types.py"), "--stdout"], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  expect(fresh.length).toBeGreaterThan(100_000);
  // A readable failure: the first differing line, not a 250 kB diff.
  const a = fresh.split("\n"), b = committed.split("\n");
  const k = a.findIndex((line, i) => line !== b[i]);
  expect(k === -1 ? null : { line: k + 1, generated: a[k], committed: b[k] }).toBeNull();
  expect(a.length).toBe(b.length);
});
