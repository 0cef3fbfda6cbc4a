// The memory contract: dispose, Symbol.dispose, tidy/keep, tidyAsync scopes across awaits,
// a flat live-tensor count over a long training-like loop, external-memory accounting and the
// finalizer safety net.
import v8 from "node:v8";
import { execFileSync } from "node:child_process";
import vm from "node:vm";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeEach, describe, expect, it } from "vitest";
import { torch, Tensor } from "../lib/torch/index.js";
import { flatValues } from "./helpers/close.js";
import { devices, hasCuda } from "./helpers/devices.js";

const live = () => torch.memory().liveTensors;

// A handle on V8's collector without starting the worker with --expose-gc.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

async function collect(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc();
    // finalizers run as separate tasks after a collection
    await sleep(10);
  }
}

describe("dispose", () => {
  it("is idempotent, counts down liveTensors by one, and later use throws an Error naming disposal", () => {
    const before = live();
    const t = torch.ones([2, 2]);
    const other = torch.ones([2, 2]);
    expect(live()).toBe(before + 2);
    expect(t.isDisposed).toBe(false);
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expect(live()).toBe(before + 1);
    t.dispose();
    expect(live()).toBe(before + 1);
    const uses: Array<[string, () => unknown]> = [
      ["method", () => t.add(1)],
      ["as an argument", () => other.add(t)],
      ["toArray", () => t.toArray()],
      ["toTypedArray", () => t.toTypedArray()],
      ["item", () => t.item()],
      ["backward", () => t.backward()],
      ["torch function", () => torch.exp(t)],
      ["cat", () => torch.cat([other, t])],
    ];
    for (const [what, use] of uses) {
      let err: unknown;
      try {
        use();
      } catch (e) {
        err = e;
      }
      expect(err, what).toBeInstanceOf(Error);
      expect((err as Error).message, what).toMatch(/disposed/i);
    }
    // the other tensor is unaffected
    expect(flatValues(other)).toEqual([1, 1, 1, 1]);
    other.dispose();
    expect(live()).toBe(before);
  });

  it("data() on a disposed tensor rejects with an Error", async () => {
    const t = torch.ones([3]);
    t.dispose();
    await expect(t.data()).rejects.toThrow(/disposed/i);
  });

  it("`using` disposes at the end of the block (Symbol.dispose)", () => {
    const before = live();
    let escaped: Tensor;
    {
      using t = torch.zeros([3]);
      escaped = t;
      expect(live()).toBe(before + 1);
      expect(typeof t[Symbol.dispose]).toBe("function");
    }
    expect(escaped.isDisposed).toBe(true);
    expect(live()).toBe(before);
  });

  it("a view outlives the disposal of its base: each handle owns its own reference", () => {
    const base = torch.arange(0, 6, 1).reshape([2, 3]);
    const view = base.slice(1, 1, 3);
    const base2 = base.view([6]);
    base.dispose();
    expect(flatValues(view)).toEqual([1, 2, 4, 5]);
    expect(flatValues(base2)).toEqual([0, 1, 2, 3, 4, 5]);
    view.dispose();
    base2.dispose();
  });
});

describe("tidy", () => {
  it("disposes every tensor made inside except the returned one, which moves out", () => {
    const before = live();
    let inner: Tensor[] = [];
    const out = torch.tidy(() => {
      const a = torch.ones([3]);
      const b = a.mul(2);
      const c = b.add(a);
      inner = [a, b];
      return c;
    });
    expect(inner.every((t) => t.isDisposed)).toBe(true);
    expect(out.isDisposed).toBe(false);
    expect(flatValues(out)).toEqual([3, 3, 3]);
    expect(live()).toBe(before + 1);
    out.dispose();
    expect(live()).toBe(before);
  });

  it("keeps the tensors of a returned array or plain object", () => {
    const before = live();
    const arr = torch.tidy(() => {
      const x = torch.ones([2]);
      x.add(1);
      return [x.mul(3), x.mul(4)];
    });
    expect(arr.map((t) => flatValues(t))).toEqual([
      [3, 3],
      [4, 4],
    ]);
    const obj = torch.tidy(() => {
      const x = torch.ones([2]);
      return { loss: x.sum(), logits: x.neg(), note: "not a tensor", steps: 3 };
    });
    expect(obj.loss.item()).toBe(2);
    expect(flatValues(obj.logits)).toEqual([-1, -1]);
    expect(obj.note).toBe("not a tensor");
    expect(live()).toBe(before + 4);
    for (const t of [...arr, obj.loss, obj.logits]) t.dispose();
    expect(live()).toBe(before);
    // nested structures, as a model's forward returns them
    const nested = torch.tidy(() => {
      const h = torch.ones([2]);
      return { hidden: [h.mul(1), h.mul(2)], cache: { k: h.mul(3), v: [h.mul(4)] } };
    });
    const all = [...nested.hidden, nested.cache.k, ...nested.cache.v];
    expect(all.map((t) => flatValues(t)[0])).toEqual([1, 2, 3, 4]);
    expect(live()).toBe(before + 4);
    for (const t of all) t.dispose();
    expect(live()).toBe(before);
  });

  it("returns non-tensor values unchanged and disposes everything", () => {
    const before = live();
    const n = torch.tidy(() => torch.ones([4]).sum().item());
    expect(n).toBe(4);
    expect(live()).toBe(before);
  });

  it("keep() protects a tensor from its scope; parameters survive many scopes", () => {
    const before = live();
    const w = torch.tidy(() => torch.keep(torch.zeros([2]).requiresGrad_()));
    let kept: Tensor | undefined;
    torch.tidy(() => {
      kept = torch.keep(torch.ones([2]));
      torch.ones([5]);
    });
    expect(kept!.isDisposed).toBe(false);
    for (let i = 0; i < 3; i++) {
      torch.tidy(() => {
        w.add(kept!).sum().backward();
        torch.noGrad(() => w.sub_(w.grad!.mul(0.5)));
      });
    }
    expect(w.isDisposed).toBe(false);
    // w.grad is never zeroed here, so it accumulates: steps of 0.5 * 1, 0.5 * 2, 0.5 * 3
    expect(flatValues(w)).toEqual([-3, -3]);
    w.grad = null;
    w.dispose();
    kept!.dispose();
    expect(live()).toBe(before);
  });

  it("nested tidy: the inner result belongs to the outer scope", () => {
    const before = live();
    let innerResult: Tensor | undefined;
    const outer = torch.tidy(() => {
      innerResult = torch.tidy(() => torch.ones([2]).add(1));
      expect(innerResult.isDisposed).toBe(false);
      const unused = torch.tidy(() => torch.ones([2]).mul(5));
      expect(unused.isDisposed).toBe(false);
      return innerResult.mul(2);
    });
    // inner result was not returned by the outer scope: disposed with it
    expect(innerResult!.isDisposed).toBe(true);
    expect(flatValues(outer)).toEqual([4, 4]);
    const passthrough = torch.tidy(() => torch.tidy(() => torch.ones([1])));
    expect(passthrough.isDisposed).toBe(false);
    outer.dispose();
    passthrough.dispose();
    expect(live()).toBe(before);
  });

  it("cleans up and rethrows when the function throws", () => {
    const before = live();
    let made: Tensor | undefined;
    expect(() =>
      torch.tidy(() => {
        made = torch.ones([3]);
        throw new Error("inside tidy");
      }),
    ).toThrow("inside tidy");
    expect(made!.isDisposed).toBe(true);
    expect(live()).toBe(before);
    // and the scope stack is intact: a later tidy works normally
    const ok = torch.tidy(() => torch.ones([1]));
    expect(live()).toBe(before + 1);
    ok.dispose();
  });

  it("disposing a tensor inside tidy by hand is fine", () => {
    const before = live();
    torch.tidy(() => {
      const t = torch.ones([2]);
      t.dispose();
    });
    expect(live()).toBe(before);
  });
});

describe("tidyAsync", () => {
  // These tests await between counting and checking, so a tensor an earlier test dropped
  // could be finalized in between and lower the count: collect such garbage first.
  beforeEach(collect);

  it("tracks tensors across awaits and keeps concurrent scopes apart", async () => {
    const before = live();
    let aInner: Tensor | undefined;
    let aDone = false;
    const a = torch.tidyAsync(async () => {
      const x = torch.ones([2]);
      await sleep(5);
      aInner = x.add(1);
      await sleep(5);
      return aInner.mul(2);
    }).then((r) => {
      aDone = true;
      return r;
    });
    const b = torch.tidyAsync(async () => {
      await sleep(1);
      const y = torch.full([3], 2);
      // wait until scope A has finished: y belongs to B and must still be alive
      while (!aDone) await sleep(2);
      const z = y.add(1);
      await sleep(1);
      return z;
    });
    const [ra, rb] = await Promise.all([a, b]);
    expect(aInner!.isDisposed).toBe(true);
    expect(flatValues(ra)).toEqual([4, 4]);
    expect(flatValues(rb)).toEqual([3, 3, 3]);
    expect(live()).toBe(before + 2);
    ra.dispose();
    rb.dispose();
    expect(live()).toBe(before);
  });

  it("a sync tidy inside an async scope hands its result to the async scope", async () => {
    const before = live();
    const out = await torch.tidyAsync(async () => {
      const t = torch.tidy(() => torch.ones([2]).mul(3));
      await sleep(1);
      const u = t.add(1);
      await sleep(1);
      return { u, values: await u.data() };
    });
    expect(Array.from(out.values as Float32Array)).toEqual([4, 4]);
    expect(live()).toBe(before + 1);
    out.u.dispose();
    expect(live()).toBe(before);
  });

  it("cleans up when the async function rejects", async () => {
    // The tensors themselves are checked: the live count alone can also fall when the
    // collector frees tensors that earlier tests forgot, while this one awaits.
    const made: Tensor[] = [];
    const before = live();
    await expect(
      torch.tidyAsync(async () => {
        made.push(torch.ones([2]));
        await sleep(1);
        made.push(torch.ones([2]));
        throw new Error("async failure");
      }),
    ).rejects.toThrow("async failure");
    expect(made.map((t) => t.isDisposed)).toEqual([true, true]);
    expect(live()).toBeLessThanOrEqual(before);
  });
});

describe("long loops", () => {
  for (const device of devices()) {
    it(`liveTensors and cpuBytes stay flat over 10,000 forward+backward+update steps on ${device}`, () => {
      const w = torch.keep(torch.randn([8, 8], { device }).mul_(0.3).requiresGrad_());
      const b = torch.keep(torch.zeros([8], { device }).requiresGrad_());
      const target = torch.keep(torch.randn([4, 8], { device }));
      const x = torch.keep(torch.randn([4, 8], { device }));
      const step = () =>
        torch.tidy(() => {
          const y = x.matmul(w).add(b).tanh();
          const loss = y.sub(target).pow(2).mean();
          loss.backward();
          torch.noGrad(() => {
            w.sub_(w.grad!.mul(0.05));
            b.add_(b.grad!, { alpha: -0.05 });
          });
          w.grad = null;
          b.grad = null;
          return loss.item() as number;
        });
      const first = step();
      for (let i = 0; i < 500; i++) step();
      const liveAfterWarmup = live();
      const bytesAfterWarmup = torch.memory().cpuBytes;
      let last = first;
      for (let i = 0; i < 9500; i++) last = step();
      expect(live()).toBe(liveAfterWarmup);
      expect(torch.memory().cpuBytes).toBe(bytesAfterWarmup);
      expect(last).toBeLessThan(first); // the loop really trains
      for (const t of [w, b, target, x]) t.dispose();
    });
  }
});

describe("native memory accounting", () => {
  it("torch.memory() reports numbers, and cpuBytes follows allocations", () => {
    const m = torch.memory();
    for (const k of ["liveTensors", "cpuBytes", "cudaAllocated", "cudaReserved"] as const) {
      expect(typeof m[k], k).toBe("number");
      expect(m[k], k).toBeGreaterThanOrEqual(0);
    }
    const t = torch.zeros([1 << 20]); // 4 MiB
    expect(torch.memory().cpuBytes - m.cpuBytes).toBeGreaterThanOrEqual(4 << 20);
    t.dispose();
    expect(torch.memory().cpuBytes).toBe(m.cpuBytes);
  });

  it("native sizes are reported to V8: forgotten large tensors trigger collections by themselves", async () => {
    // V8 does not show adjusted external memory in process.memoryUsage() (that counts ArrayBuffers
    // only), but it schedules garbage collections from it. 400 forgotten 16 MiB tensors (6.4 GiB,
    // never touched, so no real memory is used) must not all stay alive: the reported sizes make
    // V8 collect them on its own, without any explicit gc() call.
    await collect();
    const base = torch.memory().cpuBytes;
    let peak = 0;
    for (let i = 0; i < 400; i++) {
      torch.empty([4 << 20]);
      if (i % 8 === 7) await sleep(0); // let finalizers run between batches, as an application would
      peak = Math.max(peak, torch.memory().cpuBytes - base);
    }
    expect(peak).toBeLessThan(2 * 1024 ** 3);
    await collect();
  });

  it("external and resident memory stay flat over many allocate/read/dispose cycles", async () => {
    const cycle = () =>
      torch.tidy(() => {
        const t = torch.ones([256, 1024]).mul(2); // 1 MiB
        t.toTypedArray();
        return t.sum().item();
      });
    // The first cycles raise the allocators' high-water marks; after that memory must be reused.
    // Garbage typed arrays wait for V8's collector: collect every few cycles so that resident
    // memory measures what is live, not how much garbage the collector let pile up.
    const cycles = async (n: number) => {
      for (let i = 0; i < n; i++) {
        cycle();
        if (i % 20 === 19) {
          gc();
          await sleep(0);
        }
      }
      await collect();
    };
    await cycles(100);
    const external = process.memoryUsage().external;
    const rss = process.memoryUsage().rss;
    await cycles(300); // 600 MiB of tensors and 300 MiB of typed arrays
    // Allocators keep some freed memory (tens of MiB of noise); leaking any one buffer per cycle
    // would add 300 MiB or more.
    expect(process.memoryUsage().external - external).toBeLessThan(8 << 20);
    expect(process.memoryUsage().rss - rss).toBeLessThan(128 << 20);
  });

  it("torch.cuda.emptyCache exists and cuda statistics are numbers", () => {
    expect(typeof torch.cuda.emptyCache).toBe("function");
    if (!hasCuda()) return;
    torch.cuda.synchronize();
    const before = torch.cuda.memoryAllocated();
    const t = torch.zeros([1 << 20], { device: "cuda" });
    expect(torch.cuda.memoryAllocated() - before).toBeGreaterThanOrEqual(4 << 20);
    expect(torch.memory().cudaAllocated).toBe(torch.cuda.memoryAllocated());
    expect(torch.cuda.memoryReserved()).toBeGreaterThanOrEqual(torch.cuda.memoryAllocated());
    expect(torch.cuda.maxMemoryAllocated()).toBeGreaterThanOrEqual(torch.cuda.memoryAllocated());
    t.dispose();
    expect(torch.cuda.memoryAllocated()).toBe(before);
    torch.cuda.emptyCache();
    torch.cuda.resetPeakMemoryStats();
    expect(torch.cuda.maxMemoryAllocated()).toBe(torch.cuda.memoryAllocated());
  });
});

describe("finalizer safety net", () => {
  // Made in a separate function so no local variable keeps them reachable.
  function forget(n: number): void {
    for (let i = 0; i < n; i++) torch.ones([1024]).mul(2);
  }

  it("frees tensors the program forgot, once they are garbage collected", async () => {
    await collect();
    const before = live();
    const bytesBefore = torch.memory().cpuBytes;
    forget(300);
    // (a collection may already have started on its own; most of the 600 are still counted)
    expect(live()).toBeGreaterThan(before + 300);
    await collect();
    // a handful may still be referenced from V8's optimised frames; nearly all must be gone
    expect(live() - before).toBeLessThan(30);
    expect(torch.memory().cpuBytes - bytesBefore).toBeLessThan(30 * 4096);
  });

  it("never frees a tensor that is still referenced", async () => {
    const held = Array.from({ length: 50 }, (_, i) => torch.full([4], i));
    await collect();
    held.forEach((t, i) => expect(flatValues(t)).toEqual([i, i, i, i]));
    for (const t of held) t.dispose();
  });
});

// native/cpu_allocator.cc: large CPU buffers are cached for reuse (flat resident memory, warm
// pages); the cache is bounded, can be emptied, and can be turned off.
describe("CPU caching allocator", () => {
  it("keeps a freed large buffer and hands it out again for the same size", () => {
    torch.emptyCpuCache();
    expect(torch.memory().cpuCached).toBe(0);
    const n = 3 << 20; // 12 MiB of float32
    torch.tidy(() => { torch.ones([n]); });
    const kept = torch.memory().cpuCached;
    expect(kept).toBeGreaterThanOrEqual(4 * n);
    // The same size again takes the kept block: the cache shrinks by it, values are right.
    const sum = torch.tidy(() => torch.ones([n]).sum().item());
    expect(sum).toBe(n);
    expect(torch.memory().cpuCached).toBe(kept);
    const t = torch.zeros([n]);
    expect(torch.memory().cpuCached).toBeLessThan(kept);
    expect(t.abs().max().item()).toBe(0); // a reused block is filled like a new one
    t.dispose();
    torch.emptyCpuCache();
    expect(torch.memory().cpuCached).toBe(0);
    // Small buffers are not cached.
    torch.tidy(() => { torch.ones([1000]); });
    expect(torch.memory().cpuCached).toBe(0);
  });

  it("setCpuCacheLimit changes the bound while running: lowering it trims the cache, oldest first; bad values are refused", () => {
    const before = torch.cpuCacheLimit();
    if (process.env.INNERLOOP_CPU_CACHE_MB === undefined) expect(before).toBe(256 * 2 ** 20);
    try {
      torch.emptyCpuCache();
      // Three 16 MiB buffers freed, then a 24 MiB bound: one is kept.
      torch.tidy(() => { torch.ones([4 << 20]); torch.ones([4 << 20]).add(1); });
      expect(torch.memory().cpuCached).toBeGreaterThanOrEqual(2 * (16 << 20));
      expect(torch.setCpuCacheLimit(24 << 20)).toBe(before);
      expect(torch.memory().cpuCached).toBe(16 << 20);
      expect(torch.cpuCacheLimit()).toBe(24 << 20);
      torch.tidy(() => { torch.ones([4 << 20]); torch.ones([4 << 20]).add(1); });
      expect(torch.memory().cpuCached).toBe(16 << 20);
      expect(torch.setCpuCacheLimit(0)).toBe(24 << 20);
      expect(torch.memory().cpuCached).toBe(0);
      for (const bad of [-1, 1.5, Number.NaN, Infinity, "8" as unknown as number]) {
        expect(() => torch.setCpuCacheLimit(bad), String(bad)).toThrow(/setCpuCacheLimit: bytes must be a non-negative whole number/);
      }
      expect(torch.cpuCacheLimit()).toBe(0);
    } finally {
      torch.setCpuCacheLimit(before);
    }
  });

  it("INNERLOOP_CPU_ALLOCATOR=default keeps libtorch's allocator, and INNERLOOP_CPU_CACHE_MB bounds the cache", () => {
    const script = `const { torch } = await import(${JSON.stringify(new URL("../lib/torch/index.ts", import.meta.url).pathname)});
      torch.tidy(() => { torch.ones([4 << 20]); torch.ones([4 << 20]).add(1); });
      console.log(JSON.stringify({ cached: torch.memory().cpuCached, sum: torch.tidy(() => torch.ones([4 << 20]).sum().item()) }));`;
    const run = (env: Record<string, string>) => {
      const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        cwd: new URL("..", import.meta.url).pathname, env: { ...process.env, OMP_NUM_THREADS: "1", ...env }, encoding: "utf8", timeout: 60_000,
      });
      return JSON.parse(out.trim().split("\n").pop()!) as { cached: number; sum: number };
    };
    const off = run({ INNERLOOP_CPU_ALLOCATOR: "default" });
    expect(off).toEqual({ cached: 0, sum: 4 << 20 });
    // Three 16 MiB buffers are freed at once; a 24 MiB bound keeps one of them.
    const bounded = run({ INNERLOOP_CPU_CACHE_MB: "24" });
    expect(bounded).toEqual({ cached: 16 << 20, sum: 4 << 20 });
    const on = run({});
    expect(on.cached).toBeGreaterThanOrEqual(2 * (16 << 20));
  });
});
