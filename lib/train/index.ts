/** The training layer: the loop, its configuration, checkpoints and resume, metrics, plugins. */
export { Trainer, NonFiniteLossError } from "./trainer.js";
export type { TrainerOptions, TrainResult } from "./trainer.js";
export { DEFAULT_TRAIN_CONFIG, PRESETS, resolveConfig, configProblems } from "./config.js";
export type { TrainConfig, TokenizerKind, TrainDType } from "./config.js";
export { registerTrainerPlugin, getTrainerPluginFactory } from "./plugins.js";
export type { TrainerPlugin, TrainerContext, StepContext, EvalContext, EndContext, TrainerPluginFactory, TrainerPluginOptions } from "./plugins.js";
export { readMetrics, MetricsWriter, METRICS_FILE } from "./metrics.js";
export type { StepRow, EvalRow, MetricsRow } from "./metrics.js";
export { recoverRunDir, hasCheckpoint, commitCheckpoint, CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE } from "./checkpoint.js";
export { readTrainerState, readCheckpoint } from "./state.js";
export type { TrainerState } from "./state.js";
export { runTraining } from "./run.js";
export type { RunOptions, RunTrainingOptions } from "./run.js";
export { sampleText, runTokenizer } from "./sample.js";
export type { SampleTextOptions } from "./sample.js";
export { loadRunData, padVocab } from "./data.js";
export type { RunData, BatchSampler } from "./data.js";
