// Experiments over many runs: sweeps of training settings, each a normal run directory, ending in
// a comparison report (lib/analysis/report/compare.ts).
export { expandSweep, readSweepSpec } from "./spec.js";
export type { SweepSpec, RunSettings } from "./spec.js";
export { runSweep } from "./sweep.js";
export type { SweepOptions, SweepResult, SweepState, SweepRun, RunStatus } from "./sweep.js";
