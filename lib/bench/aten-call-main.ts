// The innerloop side of the per-call benchmark (aten-call.ts): times each case and prints one JSON
// line, { case: [CPU ns per call, one entry per round] }. Arguments: calls per round, rounds.
import { torch } from "../torch/index.js";
import { ATEN_CALL_CASES } from "./aten-call.js";

const calls = Number(process.argv[2] ?? 20000);
const rounds = Number(process.argv[3] ?? 5);
torch.setNumThreads(1);

const a = torch.randn([4, 4]);
const b = torch.randn([4, 4]);
const i = torch.tensor([2, 0]);

// Each returns what the call made, released by the loop below as Python releases its result.
const cases: Record<string, () => unknown> = {
  "torch.aten.add(a, b)": () => torch.aten.add(a, b),
  "torch.aten.add(a, b, {alpha: 2})": () => torch.aten.add(a, b, { alpha: 2 }),
  "torch.aten.add(a, 2)": () => torch.aten.add(a, 2),
  "torch.aten.sum(a, {dim: [0]})": () => torch.aten.sum(a, { dim: [0] }),
  "torch.aten.index_select(a, 0, i)": () => torch.aten.index_select(a, 0, i),
  "torch.aten.size(a, 0)": () => torch.aten.size(a, 0),
  "a.add(b), hand-written": () => a.add(b),
};

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

const out: Record<string, number[]> = {};
for (const c of ATEN_CALL_CASES) {
  const perCall: number[] = [];
  const fn = cases[c.call ?? c.name];
  if (!fn) throw new Error(`no innerloop case '${c.call ?? c.name}'`);
  for (let r = 0; r <= rounds; r++) {
    const t0 = cpuNs();
    if (c.tidy) {
      // The scope's end, which releases every result, is inside the clock.
      torch.tidy(() => {
        for (let k = 0; k < calls; k++) fn();
      });
    } else {
      // Only the release, no type test: \`instanceof Tensor\` asks the addon (a native call that
      // Python's loop has no counterpart for); the cases that return a tensor are known.
      for (let k = 0; k < calls; k++) {
        const t = fn();
        if (typeof t === "object" && t !== null) (t as { dispose(): void }).dispose();
      }
    }
    const ns = (cpuNs() - t0) / calls;
    if (r > 0) perCall.push(ns); // round 0 warms up
    // Let finalizers of collected wrappers run between rounds, as an application's loop would.
    await new Promise((resolve) => setImmediate(resolve));
  }
  out[c.name] = perCall;
}
console.log(JSON.stringify(out));
