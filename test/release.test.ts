// The release matrix and the choice of torch when install has to fetch one. The release itself
// (`npm run release`: compile each prebuild, pack, install each from the tarball, load it) and the
// install of its tarball without a compiler (`npm run pack-check -- --tarball=...`) take minutes
// and run in .ci/run.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without type declarations
import * as find from "../scripts/find-libtorch.mjs";
// @ts-expect-error: a plain .mjs script without type declarations
import * as prebuild from "../scripts/prebuild.mjs";

interface Fetch {
  flavour: string;
  version: string | null;
  spec: string;
  args: string[];
}
const torchToFetch = (find as { torchToFetch(p: { version: string; flavour: string }[]): Fetch }).torchToFetch;
const parsePrebuildName = (prebuild as { parsePrebuildName(f: string): { version: string; flavour: string } | null }).parsePrebuildName;

const saved = process.env.INNERLOOP_TORCH;
afterEach(() => {
  if (saved === undefined) delete process.env.INNERLOOP_TORCH;
  else process.env.INNERLOOP_TORCH = saved;
});

describe("release matrix", () => {
  const matrix = JSON.parse(readFileSync(join(__dirname, "..", "scripts", "release-matrix.json"), "utf8")) as {
    prebuilds: { torch: string; flavour: string; indexUrl: string; requirements: string[] }[];
  };

  it("has a CPU and a CUDA entry, each naming a prebuild install can recognise and pinning its torch", () => {
    expect(matrix.prebuilds.some((e) => e.flavour === "cpu")).toBe(true);
    expect(matrix.prebuilds.some((e) => /^cu\d+$/.test(e.flavour))).toBe(true);
    for (const e of matrix.prebuilds) {
      const parsed = parsePrebuildName(`innerloop.torch${e.torch}.${e.flavour}.glibc.node`);
      expect(parsed).toEqual(expect.objectContaining({ version: e.torch, flavour: e.flavour }));
      expect(e.requirements).toContain(`torch==${e.torch}`);
      expect(e.indexUrl).toBe(`https://download.pytorch.org/whl/${e.flavour}`);
    }
    const tags = matrix.prebuilds.map((e) => `${e.torch}.${e.flavour}`);
    expect(new Set(tags).size).toBe(tags.length);
  });
});

describe("torchToFetch (install without a libtorch)", () => {
  const prebuilds = [
    { version: "2.14.1", flavour: "cu130" },
    { version: "2.13.0", flavour: "cpu" },
  ];

  it("fetches the torch of a prebuild of the flavour asked for, from PyTorch's index for it", () => {
    process.env.INNERLOOP_TORCH = "cpu";
    expect(torchToFetch(prebuilds)).toEqual({
      flavour: "cpu",
      version: "2.13.0",
      spec: "torch==2.13.0",
      args: ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"],
    });
    process.env.INNERLOOP_TORCH = "cu130";
    expect(torchToFetch(prebuilds).args).toEqual(["torch==2.14.1", "--index-url", "https://download.pytorch.org/whl/cu130"]);
  });

  it("honours a version given with @, and leaves the version to pip when no prebuild has that flavour", () => {
    process.env.INNERLOOP_TORCH = "cpu@2.12.0";
    expect(torchToFetch(prebuilds).spec).toBe("torch==2.12.0");
    process.env.INNERLOOP_TORCH = "cu126";
    expect(torchToFetch(prebuilds)).toEqual(expect.objectContaining({ version: null, spec: "torch", args: ["torch", "--index-url", "https://download.pytorch.org/whl/cu126"] }));
    process.env.INNERLOOP_TORCH = "cuda";
    expect(torchToFetch(prebuilds).args).toEqual(["torch==2.14.1"]);
  });

  it("refuses a flavour it does not know, naming INNERLOOP_TORCH and the choices", () => {
    process.env.INNERLOOP_TORCH = "gpu";
    expect(() => torchToFetch(prebuilds)).toThrow(/INNERLOOP_TORCH=gpu is not a torch flavour: use cpu, cuda .* cu<version>/);
    process.env.INNERLOOP_TORCH = "cpu@2.13";
    expect(() => torchToFetch(prebuilds)).toThrow(/INNERLOOP_TORCH=cpu@2\.13/);
  });
});
