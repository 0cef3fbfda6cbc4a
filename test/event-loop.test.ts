// The asynchronous reads and file I/O leave the event loop free: while `await t.data()` reads
// 200 MB, and while saveSafetensorsAsync / loadSafetensorsAsync write and read a 200 MB file,
// a 1 ms interval timer never waits more than 20 ms. The same monitor around the synchronous
// toTypedArray() shows that it does see a block when there is one.
//
// The machine running the tests may be shared: a thread that is simply not scheduled for a
// while also looks like a block. Each measurement therefore takes the best of three tries: a
// real block (a copy on the event loop) shows in every try, scheduling noise does not. (On a
// 2-core machine with a load average of 11-16, an idle event loop alone showed gaps of 6-14 ms.)
import { afterAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch, type Tensor } from "../lib/torch/index.js";
import { loadSafetensorsAsync, saveSafetensorsAsync } from "../lib/torch/safetensors.js";
import { commitCheckpointAsync } from "../lib/train/checkpoint.js";

const LIMIT_MS = 20;
const ELEMENTS = 50_000_000; // 200 MB of float32
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-loop-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs `work` while a 1 ms interval records the longest gap between its ticks (ms). */
async function longestBlock<T>(work: () => Promise<T> | T): Promise<{ result: T; blockMs: number; tookMs: number }> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  // Let the timer start before the work does.
  await new Promise((r) => setTimeout(r, 5));
  last = performance.now();
  const started = performance.now();
  const result = await work();
  const end = performance.now();
  longest = Math.max(longest, end - last);
  clearInterval(timer);
  return { result, blockMs: longest, tookMs: end - started };
}

async function bestOfFive(work: () => Promise<unknown>): Promise<number[]> {
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) {
    const { blockMs } = await longestBlock(work);
    seen.push(blockMs);
    if (blockMs <= LIMIT_MS) break;
  }
  return seen;
}

describe("reads and file I/O off the event loop", () => {
  const t = torch.keep(torch.ones([ELEMENTS]));

  it(`await t.data() of 200 MB blocks the loop less than ${LIMIT_MS} ms`, async () => {
    const seen = await bestOfFive(async () => {
      const a = await t.data();
      expect(a.length).toBe(ELEMENTS);
      expect(a[ELEMENTS - 1]).toBe(1);
    });
    console.log(`data(): longest block per try ${seen.map((v) => v.toFixed(1)).join(", ")} ms`);
    expect(Math.min(...seen)).toBeLessThan(LIMIT_MS);
  });

  it("the monitor sees the synchronous toTypedArray() of the same tensor block the loop", async () => {
    const { blockMs } = await longestBlock(() => t.toTypedArray().length);
    console.log(`toTypedArray(): longest block ${blockMs.toFixed(1)} ms`);
    expect(blockMs).toBeGreaterThan(LIMIT_MS);
  });

  it(`saveSafetensorsAsync and loadSafetensorsAsync of 200 MB block the loop less than ${LIMIT_MS} ms`, async () => {
    const file = path.join(tmp, "big.safetensors");
    const saves = await bestOfFive(() => saveSafetensorsAsync(file, { w: t }));
    expect(fs.statSync(file).size).toBeGreaterThan(ELEMENTS * 4);
    // Disposing 200 MB is the caller's (synchronous) choice, made after each measurement.
    const loaded: Tensor[] = [];
    const loads = await bestOfFive(async () => {
      const { tensors } = await loadSafetensorsAsync(file);
      loaded.push(tensors.w!);
    });
    for (const w of loaded) {
      expect(w.shape).toEqual([ELEMENTS]);
      expect(w.narrow(0, ELEMENTS - 3, 3).toArray()).toEqual([1, 1, 1]);
      w.dispose();
    }
    console.log(`saveSafetensorsAsync: ${saves.map((v) => v.toFixed(1)).join(", ")} ms; loadSafetensorsAsync: ${loads.map((v) => v.toFixed(1)).join(", ")} ms`);
    expect(Math.min(...saves)).toBeLessThan(LIMIT_MS);
    expect(Math.min(...loads)).toBeLessThan(LIMIT_MS);
  });

  it(`an async checkpoint commit of 200 MB blocks the loop less than ${LIMIT_MS} ms`, async () => {
    const run = path.join(tmp, "run");
    const seen = await bestOfFive(() =>
      commitCheckpointAsync(run, async (dir) => {
        await saveSafetensorsAsync(path.join(dir, "model.safetensors"), { w: t });
        await fs.promises.writeFile(path.join(dir, "trainer_state.json"), "{}");
      }),
    );
    console.log(`commitCheckpointAsync: ${seen.map((v) => v.toFixed(1)).join(", ")} ms`);
    expect(fs.statSync(path.join(run, "model.safetensors")).size).toBeGreaterThan(ELEMENTS * 4);
    expect(Math.min(...seen)).toBeLessThan(LIMIT_MS);
  });

  it("a tensor disposed while data() reads it is still read whole", async () => {
    const u = torch.arange(0, 1_000_000, 1, { dtype: "float32" });
    const p = u.data();
    u.dispose();
    const a = await p;
    expect(a[999_999]).toBe(999_999);
  });
});
