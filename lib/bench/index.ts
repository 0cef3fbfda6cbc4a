// The benchmark harness behind `innerloop bench` (see BENCHMARKS.md).
export { runBench, compare, resolveConfigs, CPU_GOALS, ANALYSIS_GOAL } from "./run.js";
export { ANALYSIS_CONFIGS, compareFields, FIELD_TOLERANCE } from "./analysis-compare.js";
export type { AnalysisComparison, FieldAgreement } from "./analysis-compare.js";
export type { BenchOptions, BenchReport, ConfigResult } from "./run.js";
export { formatReport, formatAtenCalls } from "./format.js";
export { runAtenCallBench, ATEN_CALL_CASES, ATEN_CALL_GOAL } from "./aten-call.js";
export type { AtenCallReport, AtenCallRow, AtenCallCase } from "./aten-call.js";
export { CONFIGS, CPU_DEFAULT, CUDA_DEFAULT, flopsPerToken, paramCount, peakBf16Flops, padTo } from "./configs.js";
export type { BenchConfig, BenchModel, Precision } from "./configs.js";
export type { SideSpec, SideResult, OptimSpec, PhaseProfile } from "./spec.js";
