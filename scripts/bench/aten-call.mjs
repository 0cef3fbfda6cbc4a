#!/usr/bin/env node
// Per-call cost of the boxed `torch.aten` caller against the hand-written fast path and against
// Python's `torch.ops.aten.<name>(...)` on the same small tensors (docs/aten.md, "Per-call cost").
//
//   npm run build:ts && node scripts/bench/aten-call.mjs [--calls N] [--rounds R]
//
// Prints nanoseconds per call: the minimum and the median over R rounds of N calls each, one
// libtorch thread on both sides. Time is the process's CPU time (user + system), which other
// processes on a shared machine disturb less than wall time does. Results are in BENCHMARKS.md.
import { execFileSync } from "node:child_process";
import { torch } from "../../dist/index.js";

const argv = process.argv.slice(2);
const flag = (name, dflt) => {
  const k = argv.indexOf(name);
  return k >= 0 ? Number(argv[k + 1]) : dflt;
};
const CALLS = flag("--calls", 20000);
const ROUNDS = flag("--rounds", 7);
torch.setNumThreads(1);

const a = torch.randn([4, 4]);
const b = torch.randn([4, 4]);
const s = torch.tensor([1]);
const cases = {
  "torch.aten.add(a, b)": () => torch.aten.add(a, b),
  "a.add(b) (hand-written)": () => a.add(b),
  "torch.aten.add(a, b, {alpha: 2})": () => torch.aten.add(a, b, { alpha: 2 }),
  "torch.aten.add(a, 2) (2nd overload)": () => torch.aten.add(a, 2),
  "torch.aten.sum(a, {dim: [0]})": () => torch.aten.sum(a, { dim: [0] }),
  // No tensor made: the caller's own cost, without wrapping a result.
  "torch.aten.size(a, 0)": () => torch.aten.size(a, 0),
  "torch.aten.is_nonzero(s)": () => torch.aten.is_nonzero(s),
};

const stats = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return { min: s[0], median: s[Math.floor(s.length / 2)] };
};

const results = {};
for (const [name, fn] of Object.entries(cases)) {
  const perCall = [];
  for (let r = 0; r < ROUNDS + 1; ++r) {
    torch.tidy(() => {
      const t0 = process.cpuUsage();
      for (let k = 0; k < CALLS; ++k) fn();
      const used = process.cpuUsage(t0);
      const ns = ((used.user + used.system) * 1000) / CALLS;
      if (r > 0) perCall.push(ns); // round 0 warms up
    });
  }
  results[name] = stats(perCall);
}

const py = `
import time, torch, statistics, json
torch.set_num_threads(1)
a = torch.randn(4, 4); b = torch.randn(4, 4); s = torch.tensor([1.0])
cases = {
  "python torch.ops.aten.add(a, b)": lambda: torch.ops.aten.add(a, b),
  "python torch.add(a, b)": lambda: torch.add(a, b),
  "python torch.ops.aten.add(a, b, alpha=2)": lambda: torch.ops.aten.add(a, b, alpha=2),
  "python torch.ops.aten.add(a, 2)": lambda: torch.ops.aten.add(a, 2),
  "python torch.ops.aten.sum(a, dim=[0])": lambda: torch.ops.aten.sum(a, dim=[0]),
  "python torch.ops.aten.size(a, 0)": lambda: torch.ops.aten.size(a, 0),
  "python torch.ops.aten.is_nonzero(s)": lambda: torch.ops.aten.is_nonzero(s),
}
out = {}
for name, fn in cases.items():
  xs = []
  for r in range(${ROUNDS} + 1):
    t0 = time.process_time_ns()
    for _ in range(${CALLS}): fn()
    if r: xs.append((time.process_time_ns() - t0) / ${CALLS})
  xs.sort()
  out[name] = {"min": xs[0], "median": xs[len(xs) // 2]}
print(json.dumps(out))
`;
Object.assign(results, JSON.parse(execFileSync("python3", ["-c", py], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } })));

console.log(`CPU ns per call, ${ROUNDS} rounds of ${CALLS} calls, [4, 4] float32 tensors, 1 thread`);
for (const [name, { min, median }] of Object.entries(results)) {
  console.log(`${name.padEnd(42)} min ${min.toFixed(0).padStart(6)}  median ${median.toFixed(0).padStart(6)}`);
}
