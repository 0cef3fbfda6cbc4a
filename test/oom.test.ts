// Out of memory: an allocation that cannot succeed is a JS Error with the sizes involved, never a
// crash; on CUDA it is an OutOfMemoryError, the addon releases the allocator's cache before
// throwing, and the process goes on computing on the device.
//
// The CPU cases run in a child process: an allocation larger than the address space fails at
// once, but if an operating system ever let one through, touching it would bring the OOM killer,
// and that must not take the test runner along.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { torch, TorchError, OutOfMemoryError, type Tensor } from "../lib/torch/index.js";

const ROOT = path.resolve(import.meta.dirname, "..");
const TORCH = pathToFileURL(path.join(ROOT, "lib/torch/index.ts")).href;

/** Runs `body` (an async function body with `torch`, `TorchError` and `OutOfMemoryError` in scope) in a fresh Node process; returns its JSON result. */
function inChild(body: string): { status: number | null; signal: NodeJS.Signals | null; result: unknown; stderr: string } {
  const src = `const { torch, TorchError, OutOfMemoryError } = await import(${JSON.stringify(TORCH)});
const result = await (async () => { ${body} })();
process.stdout.write(JSON.stringify(result));`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", src], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, OMP_NUM_THREADS: "1" },
  });
  let result: unknown = null;
  try {
    result = JSON.parse(r.stdout);
  } catch {
    // left null: the assertions below report stdout/stderr
  }
  return { status: r.status, signal: r.signal, result, stderr: r.stderr };
}

describe("OutOfMemoryError", () => {
  it("is a TorchError and an Error, with its own name", () => {
    const e = new OutOfMemoryError("empty: CUDA out of memory. Tried to allocate 2.00 GiB");
    expect(e).toBeInstanceOf(OutOfMemoryError);
    expect(e).toBeInstanceOf(TorchError);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("OutOfMemoryError");
    expect(String(e)).toMatch(/^OutOfMemoryError: empty: CUDA out of memory/);
  });
});

describe("host allocations beyond the address space", () => {
  it("each factory and a copying op throw an Error naming the bytes asked for; the process computes on", () => {
    // 2^50 float32 elements = 4 PiB, beyond any x86-64/arm64 address space (128 TiB): refused by the
    // allocator whatever the overcommit policy, without touching memory.
    const r = inChild(`
      const out = [];
      const n = 2 ** 50;
      const cases = {
        empty: () => torch.empty([n], { dtype: "float32" }),
        zeros: () => torch.zeros([n]),
        ones: () => torch.ones([n]),
        full: () => torch.full([n], 1),
        randn: () => torch.randn([n]),
        "expand+contiguous": () => torch.ones([2 ** 20]).expand([2 ** 30, 2 ** 20]).contiguous(),
      };
      const before = torch.memory().liveTensors;
      for (const [name, f] of Object.entries(cases)) {
        try { torch.tidy(() => { f(); }); out.push({ name, thrown: false }); }
        catch (e) { out.push({ name, thrown: true, isError: e instanceof Error, isTorchError: e instanceof TorchError, isOom: e instanceof OutOfMemoryError, message: e.message }); }
      }
      const after = torch.memory().liveTensors;
      const sum = torch.tidy(() => torch.ones([1000]).mul(2).sum().item());
      return { out, before, after, sum };
    `);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const res = r.result as { out: Array<{ name: string; thrown: boolean; isError: boolean; isTorchError: boolean; isOom: boolean; message: string }>; before: number; after: number; sum: number };
    expect(res.out.map((o) => o.name)).toEqual(["empty", "zeros", "ones", "full", "randn", "expand+contiguous"]);
    for (const o of res.out) {
      expect(o.thrown, o.name).toBe(true);
      expect(o.isError && o.isTorchError, o.name).toBe(true);
      expect(o.isOom, `${o.name}: a failed host allocation is an OutOfMemoryError`).toBe(true);
      // libtorch's CPU allocator reports the request in bytes: 2^50 floats (2^30 x 2^20 for the expand) x 4.
      expect(o.message, o.name).toContain(`${2 ** 52}`);
      expect(o.message, o.name).toMatch(/allocate/i);
      // The op that failed is named first (the native entry point), with no C++ backtrace.
      expect(o.message.split("\n")[0]).toMatch(/^[\w.]+: /);
      expect(o.message).not.toMatch(/Exception raised from|frame #\d/);
    }
    // Nothing half-made is left behind, and ordinary work goes on.
    expect(res.after).toBe(res.before);
    expect(res.sum).toBe(2000);
  });

  it("a size whose byte count overflows is refused with a message, not allocated", () => {
    const before = torch.memory().liveTensors;
    expect(() => torch.empty([2 ** 31, 2 ** 31, 2 ** 4])).toThrow(Error);
    expect(() => torch.empty([2 ** 31, 2 ** 31, 2 ** 4])).toThrow(/overflow/i);
    expect(torch.memory().liveTensors).toBe(before);
  });
});

// CUDA: where a GPU is present (the list is empty otherwise).
const cudaDevices = torch.cuda.isAvailable() ? ["cuda"] : [];

describe("CUDA out of memory", () => {
  for (const device of cudaDevices) {
    it(`on ${device}: OutOfMemoryError with libtorch's sizes, the cache released, the device usable after`, () => {
      const gib = 2 ** 30;
      // 1. One allocation larger than any card (64 TiB): refused at once.
      let err: unknown = null;
      try {
        torch.empty([2 ** 44], { dtype: "float32", device: "cuda" });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(OutOfMemoryError);
      expect(err).toBeInstanceOf(TorchError);
      const m1 = (err as Error).message;
      expect(m1).toMatch(/Tried to allocate [\d.]+ (TiB|GiB)/);
      expect(m1).toMatch(/total capacity of [\d.]+ GiB/);
      expect(m1).not.toMatch(/Exception raised from|frame #\d/);

      // 2. Fill the card 1 GiB at a time until it refuses (the tensors are held, so nothing frees).
      const held: Tensor[] = [];
      let loopErr: unknown = null;
      try {
        for (let i = 0; i < 4096; i++) held.push(torch.empty([gib / 4], { dtype: "float32", device: "cuda" }));
      } catch (e) {
        loopErr = e;
      }
      try {
        expect(loopErr).toBeInstanceOf(OutOfMemoryError);
        // libtorch prints 1 GiB as "1024.00 MiB" (its unit changes above, not at, a power of 1024).
        expect((loopErr as Error).message).toMatch(/Tried to allocate (1024\.00 MiB|1\.00 GiB)/);
        expect(held.length).toBeGreaterThan(0);
        expect(torch.cuda.memoryAllocated()).toBeGreaterThanOrEqual(held.length * gib);
      } finally {
        for (const t of held) t.dispose();
      }
      // Freed tensors go back to the caching allocator: still reserved, no longer allocated.
      const reservedHeld = torch.cuda.memoryReserved();
      expect(reservedHeld).toBeGreaterThanOrEqual(held.length * gib);

      // 3. Another failing allocation: the addon empties the cache as it raises the error.
      expect(() => torch.empty([2 ** 44], { dtype: "float32", device: "cuda" })).toThrow(OutOfMemoryError);
      const reservedAfter = torch.cuda.memoryReserved();
      expect(reservedAfter).toBeLessThan(reservedHeld - (held.length - 1) * gib);

      // 4. The device still works: a small op, and a large allocation that fits again.
      const r = torch.tidy(() => torch.ones([4], { device: "cuda" }).add(1).cpu().toArray());
      expect(r).toEqual([2, 2, 2, 2]);
      const big = torch.empty([gib / 4], { dtype: "float32", device: "cuda" });
      expect(big.device).toMatch(/^cuda/);
      big.dispose();
      torch.cuda.emptyCache();
    }, 120_000);
  }

  it("CUDA memory statistics read 0 and emptyCache is harmless without a GPU (and numbers with one)", () => {
    const s = torch.cuda.memoryStats();
    for (const k of ["allocated", "reserved", "maxAllocated", "maxReserved"] as const) expect(typeof s[k]).toBe("number");
    torch.cuda.emptyCache();
    if (!torch.cuda.isAvailable()) {
      expect(torch.cuda.memoryReserved()).toBe(0);
      // Asking for the device is a clear Error, not a crash.
      expect(() => torch.empty([4], { device: "cuda" })).toThrow(/CUDA is not available/);
    }
  });
});
