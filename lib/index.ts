// innerloop: libtorch for Node.js, and tools to train causal language models
// and study the inner optimization in their residual streams.
export { torch, Tensor, TorchError, OutOfMemoryError, F, version } from "./torch/index.js";
export type { DType, Device, Shape, TensorOptions, TypedArray, MemoryInfo } from "./torch/index.js";
