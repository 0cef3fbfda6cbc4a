// innerloop nn: modules, layers and initialisers.
export { Module } from "./module.js";
export type { StateDict, LoadStateDictOptions, LoadStateDictResult, ToOptions } from "./module.js";
export { HookPoint } from "./hook-point.js";
export type { HookFn } from "./hook-point.js";
export { Linear } from "./linear.js";
export type { LinearOptions } from "./linear.js";
export { Embedding } from "./embedding.js";
export { LayerNorm, RMSNorm } from "./norm.js";
export type { LayerNormOptions, RMSNormOptions } from "./norm.js";
export { Dropout } from "./dropout.js";
export { GELU, ReLU, SiLU } from "./activation.js";
export { ModuleList, Sequential } from "./container.js";
export type { UnaryModule } from "./container.js";
export type { FactoryOptions } from "./options.js";
export * as init from "./init.js";
