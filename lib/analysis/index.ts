// innerloop analysis: hook-based capture, the inner-optimization measures, snapshots during
// training, and the report. Definitions: docs/analysis.md.
export { runWithCache, matchNames } from "./capture.js";
export type { ActivationCache, RunWithCacheOptions, NamesFilter, HookedModel, HookNameOf } from "./capture.js";
export { adaptModel } from "./adapter.js";
export type { AnalysisModel, ModelAdapter } from "./adapter.js";
export { Analyzer } from "./analyzer.js";
export type { AnalyzerOptions, PreparedBatch } from "./analyzer.js";
export { analyzeModel, HeldOutAnalysis } from "./analyze.js";
export type { AnalyzeOptions } from "./analyze.js";
export { StreamingMoments, DeviceSum, RunningTopK } from "./stats.js";
export { fitPowerLaw, firstTokenRatio, frequencyBuckets } from "./fits.js";
export { arrayTokenStream, binTokenStream, toTokenStream, planWindows, readWindows } from "./windows.js";
export type { TokenStream, WindowPlan } from "./windows.js";
export { writeAnalysis, readTimeline, writeTimeline, timelinePath, positionsCsv, layersCsv } from "./files.js";
export type { Snapshot, Timeline } from "./files.js";
export type { AnalysisResult, PowerLawFit, MassiveLayer } from "./result.js";
export { AnalysisPlugin, createAnalysisPlugin, ThreadChoice } from "./plugin.js";
export type { AnalysisPluginOptions } from "./plugin.js";
export { writeReport } from "./report/html.js";
export type { ReportOptions } from "./report/html.js";
export { writeCompareReport } from "./report/compare.js";
export type { CompareOptions } from "./report/compare.js";
export { serveLive } from "./report/live.js";
export type { LiveOptions, LiveServer, LiveStatus } from "./report/live.js";
export { snapshotScalars } from "./scalars.js";
export { analyzeDir } from "./run.js";
export { reproduce, reproduceConfig } from "./reproduce.js";
