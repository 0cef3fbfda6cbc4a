// Prebuild naming and choice. The whole pack -> install -> import/CLI path is checked by
// scripts/pack-check.mjs (`npm run pack-check`, run by .ci/run): it takes about a minute.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without type declarations
import * as prebuild from "../scripts/prebuild.mjs";

interface Torch {
  version: string;
  cuda: string | null;
  libDir?: string;
  source?: string;
  cxx11abi?: boolean;
}
const pb = prebuild as {
  prebuildTag(t: Torch): string | null;
  prebuildFileName(t: Torch): string;
  parsePrebuildName(f: string): { version: string; flavour: string; libc: string | null } | null;
  findMatchingPrebuild(t: Torch | null, root: string): { match: string | null; available: unknown[]; reason: string | null };
};

const require = createRequire(import.meta.url);
const nodeGypBuild = require("node-gyp-build") as {
  resolve(dir: string): string;
  parseTags(file: string): { file: string } | undefined;
  matchTags(runtime: string, abi: string): (tags: unknown) => boolean;
};

const cpu213: Torch = { version: "2.13.0", cuda: null, libDir: "/opt/torch/lib", source: "python", cxx11abi: true };
const cu130: Torch = { version: "2.11.0", cuda: "13.0", libDir: "/opt/torch/lib", source: "python", cxx11abi: true };
const dirs: string[] = [];

/** A package root whose prebuilds folder holds these (empty) files. */
function fakePackage(files: string[]): string {
  const root = mkdtempSync(join(tmpdir(), "innerloop-prebuilds-"));
  dirs.push(root);
  const dir = join(root, "prebuilds", `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(root, "package.json"), JSON.stringify({ name: "innerloop" }));
  for (const f of files) writeFileSync(join(dir, f), "");
  return root;
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("prebuild names", () => {
  it("tag the libtorch version and flavour", () => {
    expect(pb.prebuildTag(cpu213)).toBe("torch2.13.0.cpu");
    expect(pb.prebuildTag(cu130)).toBe("torch2.11.0.cu130");
    expect(pb.prebuildTag({ version: "2.4.0", cuda: "12.1" })).toBe("torch2.4.0.cu121");
    expect(pb.prebuildFileName(cpu213)).toBe("innerloop.torch2.13.0.cpu.glibc.node");
  });

  it("cannot be made for a libtorch whose version or CUDA version is unknown", () => {
    expect(pb.prebuildTag({ version: "unknown", cuda: null })).toBeNull();
    expect(pb.prebuildTag({ version: "2.13.0", cuda: "unknown" })).toBeNull();
    expect(() => pb.prebuildFileName({ version: "2.13.0", cuda: "unknown" })).toThrow(/flavour unknown/);
  });

  it("parse back, and other files are not prebuilds", () => {
    expect(pb.parsePrebuildName("innerloop.torch2.11.0.cu130.glibc.node")).toEqual({
      file: "innerloop.torch2.11.0.cu130.glibc.node",
      version: "2.11.0",
      flavour: "cu130",
      libc: "glibc",
    });
    expect(pb.parsePrebuildName("innerloop.torch2.13.0.cpu.node")?.libc).toBeNull();
    expect(pb.parsePrebuildName("innerloop.node")).toBeNull();
    expect(pb.parsePrebuildName("node.napi.node")).toBeNull();
    expect(pb.parsePrebuildName("innerloop.torch2.13.0.cpu.glibc.node.tmp-12")).toBeNull();
  });

  it("are loadable by node-gyp-build on this Node (napi, no ABI tag)", () => {
    const tags = nodeGypBuild.parseTags(pb.prebuildFileName(cpu213));
    expect(tags).toBeDefined();
    expect(nodeGypBuild.matchTags("node", process.versions.modules)(tags)).toBe(true);
  });
});

describe("choosing a prebuild for the libtorch found", () => {
  const files = ["innerloop.torch2.4.0.cu121.glibc.node", "innerloop.torch2.13.0.cpu.glibc.node", "innerloop.torch2.11.0.cu130.glibc.node"];

  it("picks exactly the matching version and flavour", () => {
    const root = fakePackage(files);
    expect(pb.findMatchingPrebuild(cpu213, root).match).toMatch(/innerloop\.torch2\.13\.0\.cpu\.glibc\.node$/);
    expect(pb.findMatchingPrebuild(cu130, root).match).toMatch(/innerloop\.torch2\.11\.0\.cu130\.glibc\.node$/);
    expect(pb.findMatchingPrebuild(cpu213, root).reason).toBeNull();
  });

  it("never picks a prebuild for another libtorch, and says what to do", () => {
    const root = fakePackage(files);
    for (const torch of [
      { ...cpu213, version: "2.13.1" },
      { ...cpu213, cuda: "12.8" },
      { ...cu130, cuda: null, version: "2.4.0" },
      { ...cpu213, cxx11abi: false },
    ]) {
      const r = pb.findMatchingPrebuild(torch, root);
      expect(r.match, JSON.stringify(torch)).toBeNull();
      expect(r.available).toHaveLength(3);
      expect(r.reason).toContain(`no prebuilt addon matches libtorch ${torch.version}`);
      expect(r.reason).toContain("libtorch 2.13.0 (CPU), libtorch 2.11.0 (CUDA 13.0), libtorch 2.4.0 (CUDA 12.1)");
      expect(r.reason).toMatch(/Building from source instead/);
      expect(r.reason).toMatch(/set LIBTORCH/);
    }
    expect(pb.findMatchingPrebuild({ ...cpu213, cxx11abi: false }, root).reason).toMatch(/pre-C\+\+11 ABI/);
    expect(pb.findMatchingPrebuild(null, root).reason).toContain("no prebuilt addon matches no libtorch");
  });

  it("is silent when there are no prebuilds (the usual source build)", () => {
    const root = mkdtempSync(join(tmpdir(), "innerloop-noprebuilds-"));
    dirs.push(root);
    expect(pb.findMatchingPrebuild(cpu213, root)).toEqual({ match: null, available: [], reason: null });
  });

  it("is needed because node-gyp-build alone ignores the torch tags", () => {
    // With only a prebuild for another libtorch present, node-gyp-build would load it: the choice by
    // libtorch has to be made by install (which copies the match to build/Release).
    const root = fakePackage(["innerloop.torch2.4.0.cu121.glibc.node"]);
    expect(nodeGypBuild.resolve(root)).toMatch(/innerloop\.torch2\.4\.0\.cu121\.glibc\.node$/);
    expect(pb.findMatchingPrebuild(cpu213, root).match).toBeNull();
  });
});
