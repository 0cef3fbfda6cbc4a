#!/usr/bin/env node
// The per-call part of `npm run bench` on its own: the boxed `torch.aten` caller against Python's
// `torch.ops.aten.<name>(...)` on the same small tensors (lib/bench/aten-call.ts; docs/aten.md,
// "Per-call cost"), in alternating processes, one libtorch thread per side.
//
//   npm run build:ts && node scripts/bench/aten-call.mjs [--calls N] [--rounds R] [--processes P]
import { formatAtenCalls, runAtenCallBench } from "../../dist/bench/index.js";

const argv = process.argv.slice(2);
const flag = (name, dflt) => {
  const k = argv.indexOf(name);
  return k >= 0 ? Number(argv[k + 1]) : dflt;
};
const report = await runAtenCallBench({ calls: flag("--calls", 20000), rounds: flag("--rounds", 5), processes: flag("--processes", 2) });
console.log(formatAtenCalls(report).join("\n"));
