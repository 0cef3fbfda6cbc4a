// Where innerloop's time goes below the model: how many calls cross from JS into the addon during
// one step, and what one small op costs. Profiling only; the timed runs never go through here.

import { torch } from "../torch/index.js";
import type { Device } from "../torch/index.js";
import { native, ops } from "../torch/native.js";
import { msBetween } from "./stats.js";

/**
 * Runs fn with every function of the addon (the op table and the top-level entry points) replaced
 * by a counting wrapper, then puts the originals back. The typed facade calls through these very
 * objects, so every JS -> native crossing is seen.
 */
export function countNativeCalls(fn: () => void): { total: number; byName: Record<string, number> } {
  const counts = new Map<string, number>();
  const restore: Array<() => void> = [];
  const wrapAll = (obj: Record<string, unknown>, prefix: string) => {
    for (const key of Object.keys(obj)) {
      const orig = obj[key];
      if (typeof orig !== "function" || key === "Tensor") continue;
      const name = prefix + key;
      const wrapped = function (this: unknown, ...args: unknown[]) {
        counts.set(name, (counts.get(name) ?? 0) + 1);
        return (orig as (...a: unknown[]) => unknown).apply(this, args);
      };
      obj[key] = wrapped;
      restore.push(() => {
        obj[key] = orig;
      });
    }
  };
  wrapAll(ops as Record<string, unknown>, "ops.");
  wrapAll(native as Record<string, unknown>, "");
  try {
    fn();
  } finally {
    for (const r of restore) r();
  }
  const byName = Object.fromEntries([...counts.entries()].sort((a, b) => b[1] - a[1]));
  let total = 0;
  for (const v of counts.values()) total += v;
  return { total, byName };
}

/** Best-of-3 microseconds per call of a few small ops, each result released as a step would. */
export function opOverheadUs(device: string): Record<string, number> {
  const dev = device as Device;
  const a = torch.keep(torch.ones([1], { device: dev }));
  const b = torch.keep(torch.ones([1], { device: dev }));
  const x = torch.keep(torch.randn([8, 64], { device: dev }));
  const w = torch.keep(torch.randn([64, 64], { device: dev }));
  const sync = device.startsWith("cuda") ? () => torch.cuda.synchronize() : () => {};
  const cases: Array<[string, () => unknown]> = [
    ["add", () => a.add(b)],
    ["add_", () => a.add_(b)],
    ["matmul8x64x64", () => x.matmul(w)],
    ["view", () => x.view([64, 8])],
  ];
  const out: Record<string, number> = {};
  try {
    for (const [name, fn] of cases) {
      let best = Infinity;
      for (let r = 0; r < 3; r++) {
        const n = 2000;
        sync();
        const t0 = process.hrtime.bigint();
        // Results are released by a scope every 100 calls, as the tidy around a training step does.
        for (let i = 0; i < n; i += 100) torch.tidy(() => { for (let j = 0; j < 100; j++) fn(); });
        sync();
        best = Math.min(best, (msBetween(t0, process.hrtime.bigint()) * 1000) / n);
      }
      out[name] = best;
    }
  } finally {
    for (const t of [a, b, x, w]) t.dispose();
  }
  return out;
}
