// The per-call cost of the boxed `torch.aten` caller against Python's `torch.ops.aten.<name>(...)`
// on the same small tensors: the same cases on both sides (scripts/bench/torch_aten_call.py holds
// Python's), each timed as CPU time (user + system) per call over rounds of many calls, one
// libtorch thread per side, in separate processes that alternate.
//
// Every call's result is released inside the timed loop on both sides: Python frees a tensor as
// soon as its last reference goes, so the innerloop side disposes each result (`.dispose()`),
// which also charges it the wrapper's teardown. Released at the end of a `tidy` instead, results
// pile up as live objects that every minor garbage collection has to copy; that case is timed too
// (the `in tidy` rows), since it is how most code holds tensors.

import { median } from "./stats.js";
import { runInnerloopAtenCalls, runTorchAtenCalls, type SpawnOptions } from "./sides.js";

/** One case: its label, the Python call it is compared with, and whether the goal applies to it. */
export interface AtenCallCase {
  name: string;
  /** The innerloop call it times (aten-call-main.ts), when not the name itself. */
  call?: string;
  /** Results held until a `tidy` scope ends (its end inside the clock) instead of disposed one by one. */
  tidy?: boolean;
  python: string;
  /** Whether the goal (no slower than Python's torch.ops.aten) applies to this row. */
  goal: boolean;
}

/** The cases, in the order they are printed. Names are keys of both sides' JSON output. */
export const ATEN_CALL_CASES: AtenCallCase[] = [
  { name: "torch.aten.add(a, b)", python: "torch.ops.aten.add(a, b)", goal: true },
  { name: "torch.aten.add(a, b, {alpha: 2})", python: "torch.ops.aten.add(a, b, alpha=2)", goal: true },
  { name: "torch.aten.add(a, 2)", python: "torch.ops.aten.add(a, 2)", goal: true },
  { name: "torch.aten.sum(a, {dim: [0]})", python: "torch.ops.aten.sum(a, dim=[0])", goal: true },
  { name: "torch.aten.index_select(a, 0, i)", python: "torch.ops.aten.index_select(a, 0, i)", goal: true },
  { name: "torch.aten.size(a, 0)", python: "torch.ops.aten.size(a, 0)", goal: true },
  { name: "torch.aten.add(a, b), in tidy", call: "torch.aten.add(a, b)", tidy: true, python: "torch.ops.aten.add(a, b)", goal: false },
  { name: "a.add(b), hand-written", python: "torch.add(a, b)", goal: false },
];

/** Goal: a boxed call no slower than Python's torch.ops.aten call (ratio of CPU time per call). */
export const ATEN_CALL_GOAL = 1.0;

export interface AtenCallRow {
  name: string;
  python: string;
  goal: boolean;
  /** Median over the rounds of CPU nanoseconds per call. */
  innerloopNs: number;
  pytorchNs: number;
  ratio: number;
}

export interface AtenCallReport {
  calls: number;
  rounds: number;
  /** Processes per side; the rounds of all of them are pooled. */
  processes: number;
  rows: AtenCallRow[];
}

type PerCase = Record<string, number[]>;

export async function runAtenCallBench(o: { calls?: number; rounds?: number; processes?: number; log?: (s: string) => void } & SpawnOptions = {}): Promise<AtenCallReport> {
  const calls = o.calls ?? 20000;
  const rounds = o.rounds ?? 5;
  const processes = o.processes ?? 2;
  const il: PerCase = {};
  const pt: PerCase = {};
  const add = (into: PerCase, r: PerCase) => {
    for (const [k, v] of Object.entries(r)) (into[k] ??= []).push(...v);
  };
  for (let k = 0; k < processes; k++) {
    // innerloop, PyTorch, PyTorch, innerloop: a drift in the machine's load hits both alike.
    const order = k % 2 === 0 ? ["il", "pt"] : ["pt", "il"];
    for (const side of order) {
      if (side === "il") add(il, (await runInnerloopAtenCalls<PerCase>(calls, rounds, o)).result);
      else add(pt, (await runTorchAtenCalls<PerCase>(calls, rounds, o)).result);
    }
  }
  const rows = ATEN_CALL_CASES.map((c) => {
    const a = il[c.name];
    const b = pt[c.python];
    if (!a?.length || !b?.length) throw new Error(`aten-call bench: no timing for '${a?.length ? c.python : c.name}'`);
    const innerloopNs = median(a);
    const pytorchNs = median(b);
    return { ...c, innerloopNs, pytorchNs, ratio: innerloopNs / pytorchNs };
  });
  return { calls, rounds, processes, rows };
}
