// innerloop models: causal language models on nn, with Hugging Face checkpoint I/O.
export { GPT2, GPT2Block } from "./gpt2.js";
export type { GPT2Options, ForwardOptions, ForwardResult, GenerateOptions } from "./gpt2.js";
export { gpt2Config, toHFConfig, fromHFConfig, GPT2_DEFAULTS } from "./gpt2-config.js";
export type { GPT2Config } from "./gpt2-config.js";
export { saveGPT2, loadGPT2, readHFConfig, gpt2StateDictFromHF, CONFIG_FILE } from "./gpt2-hf.js";
export type { LoadGPT2Options } from "./gpt2-hf.js";
export { Conv1D } from "./conv1d.js";
export { KVCache } from "./kv-cache.js";
export { sampleNext } from "./sampling.js";
export { ConfigError } from "./errors.js";
export type { SampleOptions } from "./sampling.js";
export { forwardProbed, probedForwardApplies } from "./gpt2-probe.js";
export type { ProbeCapture, ProbedForward } from "./gpt2-probe.js";
// Hugging Face checkpoints of every supported architecture (docs/pretrained.md).
export { loadPretrained, savePretrained, architectureOf, SUPPORTED_MODEL_TYPES, Llama, GPTNeoX, Gemma, Phi3, Olmo2 } from "./hf.js";
export type { PretrainedModel, LoadPretrainedOptions, SavePretrainedOptions, ArchitectureConfig } from "./hf.js";
export { llamaConfigFromHF } from "./llama.js";
export { neoxConfigFromHF } from "./neox.js";
export { gemmaConfigFromHF } from "./gemma.js";
export { phi3ConfigFromHF } from "./phi3.js";
export { olmo2ConfigFromHF } from "./olmo2.js";
