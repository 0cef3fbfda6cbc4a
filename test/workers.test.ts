// worker_threads: the main thread and any number of workers use the package at once. Each
// scenario (test/fixtures/workers/scenarios.mjs) runs in its own process, importing the package
// by name as a user's program does, so that a crash (the V8 "HandleScope" abort, a segfault)
// shows as an exit status here. Before the addon kept its JS state per environment, the first
// three scenarios ended with exit 134, 134 and 139.
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const script = path.join(root, "test", "fixtures", "workers", "scenarios.mjs");

/** Runs one scenario in a child process (without blocking this one's event loop) and parses its JSON line. */
async function scenario(name: string, timeoutMs = 120_000): Promise<Record<string, any>> {
  if (!existsSync(path.join(root, "dist", "index.js"))) throw new Error("workers import the built package: run `npm run build:ts` first");
  const child = spawn(process.execPath, ["--expose-gc", script, name], { cwd: root, timeout: timeoutMs });
  let stdout = "", stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (c, s) => resolve([c, s])));
  const out = `${stdout}\n${stderr}`;
  expect(signal, out).toBeNull();
  expect(status, out).toBe(0);
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

describe("worker_threads", () => {
  it("two workers loading the package at the same moment both train, and the main thread goes on", async () => {
    const r = await scenario("twoAtOnce");
    expect(r.codes).toEqual([0, 0]);
    expect(r.same).toEqual([true, true]);
    expect(r.ones).toBe(2);
  });

  it("worker A loads, worker B loads, A calls again", async () => {
    const r = await scenario("aThenBThenA");
    expect(r.codeB).toBe(0);
    expect(r.same).toEqual([true, true, true]);
  });

  it("the main thread uses the library, a worker loads it and exits, the main thread calls torch.ones", async () => {
    const r = await scenario("mainAfterWorkerExit");
    expect(r.code).toBe(0);
    expect(r.after).toEqual([5, 5, 5]);
    expect(r.beforeStillThere).toEqual([1.5, 2.5]);
  });

  it("the main thread and four workers train at once while a fifth is terminated mid-loop", async () => {
    const r = await scenario("fourPlusTerminated");
    expect(r.codes).toEqual([0, 0, 0, 0]);
    // Each worker's losses equal the main thread's own run of the same training, step for step.
    expect(r.same).toEqual([true, true, true, true]);
    expect(r.mainSame).toBe(true);
    expect(r.doomedStepsSeen).toBeGreaterThanOrEqual(5);
    expect(r.doomedExitCode).toBe(1); // what Worker.terminate() reports
  });

  it("100 workers in a row load, train, leave an 8 MB tensor undisposed and exit, with resident memory flat", async () => {
    const r = await scenario("churn", 300_000);
    expect(r.failedAt).toBeUndefined();
    const rss: number[] = r.rssMB;
    expect(rss).toHaveLength(100);
    // From the 20th worker (allocator and code caches warm) to the 100th: under 20 MB of growth
    // in all, i.e. under 0.25 MB per worker . A leaked environment would cost at
    // least its 8 MB tensor each, 640 MB over those 80 workers.
    const growth = rss[99]! - rss[19]!;
    console.log(`RSS after worker 1: ${rss[0]} MB, 20: ${rss[19]} MB, 100: ${rss[99]} MB (growth 20->100: ${growth.toFixed(1)} MB)`);
    expect(growth).toBeLessThan(20);
  });

  it("torch.tidy in a worker keeps the tensors inside the returned object and releases the rest", async () => {
    const r = await scenario("tidyInWorker");
    expect(r.kept).toBe(2);
    expect(r.a).toEqual([1, 1]);
    expect(r.nested).toEqual([3, 3]);
    expect(r.disposed).toEqual([false, false]);
    expect(r.mainLiveUnchanged).toBe(true);
    expect(r.mainHeld).toEqual([1, 1, 1]);
  });

  it("a tensor sent to another thread is a clear TorchError there, and the sender's tensor still works", async () => {
    const r = await scenario("crossThread");
    for (const msg of [r.add, r.asOther, r.clone]) {
      expect(msg).toMatch(/^TorchError: .*is an empty object, as a tensor of another thread becomes when it is sent with postMessage/);
    }
    expect(r.stillWorks).toEqual([2, 3, 4]);
  });
});
