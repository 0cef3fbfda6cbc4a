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
export * as safetensors from "./torch/safetensors.js";
// What most programs reach for, also by name at the root (the same objects as in the namespaces).
export { GPT2, Llama, GPTNeoX, loadPretrained, savePretrained, loadGPT2, saveGPT2 } from "./models/index.js";
export type { PretrainedModel, ForwardResult, ForwardResultWithLoss } from "./models/index.js";
export { HfTokenizer, CharTokenizer, Gpt2Tokenizer } from "./data/index.js";
export type { Tokenizer } from "./data/index.js";
export { AdamW, SGD, saveOptimizer, loadOptimizer } from "./optim/index.js";
export { Trainer } from "./train/index.js";
export type { TrainerOptions } from "./train/index.js";
export { loadSafetensors, saveSafetensors, loadSafetensorsAsync, saveSafetensorsAsync, openSafetensors, loadSafetensorsDir, saveSafetensorsDir } from "./torch/safetensors.js";
export * as experiments from "./experiments/index.js";
