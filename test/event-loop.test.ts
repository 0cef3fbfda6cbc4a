// The asynchronous reads and file I/O leave the event loop free: while `await t.data()` reads
// 200 MB, and while saveSafetensorsAsync / loadSafetensorsAsync write and read a 200 MB file,
// a 1 ms interval timer never waits more than 20 ms. The same monitor around the synchronous
// toTypedArray() shows that it does see a block when there is one.
//
// A block is the event-loop thread's own CPU time between two ticks of the timer (read from
// /proc/self/task/<pid>/schedstat, in nanoseconds): on a shared machine the thread can also wait
// for a core (an idle event loop alone showed gaps of 6-14 ms of wall time on this 2-core machine
// at a load average of 11-16), and that wait is not work done on the loop. Both numbers are
// printed; the test fails when the loop's own work between two ticks exceeds 20 ms. Each case
// takes the best of five tries.
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

/** CPU time the event-loop (main) thread has run, in ms. */
function loopThreadCpuMs(): number {
  const [onCpuNs] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ");
  return Number(onCpuNs) / 1e6;
}

interface Block {
  /** Longest wall-clock gap between two ticks of a 1 ms interval (ms). */
  wallMs: number;
  /** Most CPU time the event-loop thread spent between two ticks (ms): work that held the loop. */
  cpuMs: number;
}

/** Runs `work` while a 1 ms interval records the longest gap between its ticks. */
async function longestBlock(work: () => Promise<unknown> | unknown): Promise<Block> {
  let last = performance.now(), lastCpu = loopThreadCpuMs();
  const block: Block = { wallMs: 0, cpuMs: 0 };
  const tick = () => {
    const now = performance.now(), cpu = loopThreadCpuMs();
    block.wallMs = Math.max(block.wallMs, now - last);
    block.cpuMs = Math.max(block.cpuMs, cpu - lastCpu);
    last = now;
    lastCpu = cpu;
  };
  const timer = setInterval(tick, 1);
  // Let the timer start before the work does.
  await new Promise((r) => setTimeout(r, 5));
  last = performance.now();
  lastCpu = loopThreadCpuMs();
  block.wallMs = block.cpuMs = 0;
  await work();
  tick();
  clearInterval(timer);
  return block;
}

async function bestOfFive(work: () => Promise<unknown>): Promise<Block[]> {
  const seen: Block[] = [];
  for (let i = 0; i < 5; i++) {
    seen.push(await longestBlock(work));
    if (seen[i]!.cpuMs <= LIMIT_MS) break;
  }
  return seen;
}

const show = (seen: Block[]) => seen.map((b) => `${b.cpuMs.toFixed(1)} ms of loop work (${b.wallMs.toFixed(1)} ms wall)`).join("; ");
const best = (seen: Block[]) => Math.min(...seen.map((b) => b.cpuMs));

describe("reads and file I/O off the event loop", () => {
  const t = torch.keep(torch.ones([ELEMENTS]));

  it(`await t.data() of 200 MB blocks the loop less than ${LIMIT_MS} ms`, async () => {
    const seen = await bestOfFive(async () => {
      const a = await t.data();
      expect(a.length).toBe(ELEMENTS);
      expect(a[ELEMENTS - 1]).toBe(1);
    });
    console.log(`data(): longest block per try: ${show(seen)}`);
    expect(best(seen)).toBeLessThan(LIMIT_MS);
  });

  it("the monitor sees the synchronous toTypedArray() of the same tensor block the loop", async () => {
    const block = await longestBlock(() => t.toTypedArray().length);
    console.log(`toTypedArray(): longest block: ${show([block])}`);
    expect(block.cpuMs).toBeGreaterThan(LIMIT_MS);
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
    console.log(`saveSafetensorsAsync: ${show(saves)}\nloadSafetensorsAsync: ${show(loads)}`);
    expect(best(saves)).toBeLessThan(LIMIT_MS);
    expect(best(loads)).toBeLessThan(LIMIT_MS);
  });

  it(`an async checkpoint commit of 200 MB blocks the loop less than ${LIMIT_MS} ms`, async () => {
    const run = path.join(tmp, "run");
    const seen = await bestOfFive(() =>
      commitCheckpointAsync(run, async (dir) => {
        await saveSafetensorsAsync(path.join(dir, "model.safetensors"), { w: t });
        await fs.promises.writeFile(path.join(dir, "trainer_state.json"), "{}");
      }),
    );
    console.log(`commitCheckpointAsync: ${show(seen)}`);
    expect(fs.statSync(path.join(run, "model.safetensors")).size).toBeGreaterThan(ELEMENTS * 4);
    expect(best(seen)).toBeLessThan(LIMIT_MS);
  });

  it("a tensor disposed while data() reads it is still read whole", async () => {
    const u = torch.arange(0, 1_000_000, 1, { dtype: "float32" });
    const p = u.data();
    u.dispose();
    const a = await p;
    expect(a[999_999]).toBe(999_999);
  });
});
