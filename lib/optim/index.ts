// innerloop optim: optimizers, gradient clipping and learning-rate schedules.
export { Optimizer, zeroGrads } from "./optimizer.js";
export type { BaseHyper, ParamGroup, ParamGroupSpec, ParamsArg, OptimizerStateDict } from "./optimizer.js";
export { AdamW } from "./adamw.js";
export type { AdamWHyper, AdamWOptions } from "./adamw.js";
export { SGD } from "./sgd.js";
export type { SGDHyper } from "./sgd.js";
export { clipGradNorm_, clipGradNormTensor_ } from "./clip.js";
export { warmupCosine, constantLr, linearLr } from "./schedule.js";
export type { LrSchedule, WarmupCosineOptions } from "./schedule.js";
export { weightDecayGroups } from "./groups.js";
export type { DecayGroup } from "./groups.js";
export { saveOptimizer, loadOptimizer, OPTIMIZER_META_KEY } from "./io.js";
export type { LoadOptimizerOptions } from "./io.js";
