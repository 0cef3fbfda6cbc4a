// innerloop: libtorch for Node.js, and tools to train causal language models
// and study the inner optimization in their residual streams.
export { torch, Tensor, TorchError, OutOfMemoryError, F, version } from "./torch/index.js";
export type { DType, Device, Shape, TensorOptions, TypedArray, MemoryInfo } from "./torch/index.js";
// A model configuration (config.json) that cannot be used; names the file and the field.
export { ConfigError } from "./models/errors.js";
// The layers above torch, each as a namespace (as torch.nn / torch.optim in PyTorch): their
// names stay apart (e.g. data's and analysis's token streams).
export * as nn from "./nn/index.js";
export * as optim from "./optim/index.js";
export * as models from "./models/index.js";
export * as data from "./data/index.js";
export * as analysis from "./analysis/index.js";
export * as train from "./train/index.js";
export * as experiments from "./experiments/index.js";
