// Experiments over many runs: sweeps of training settings, each a normal run directory, ending in
// a comparison report (lib/analysis/report/compare.ts).
export { runSweep, expandSweep, readSweepSpec } from "./sweep.js";
export type { SweepSpec, SweepOptions, SweepResult, SweepState, SweepRun, RunSettings, RunStatus } from "./sweep.js";
