// innerloop models: causal language models on nn, with Hugging Face checkpoint I/O.
export { GPT2, GPT2Block } from "./gpt2.js";
export type { GPT2Options, ForwardOptions, ForwardOptionsWithTargets, ForwardResult, ForwardResultWithLoss, GenerateOptions } from "./gpt2.js";
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
// Every supported Hugging Face architecture (docs/pretrained.md): the LLaMA family (llama, mistral,
// qwen2, qwen3), GPT-NeoX, Gemma 2/3, Phi-3 and OLMo 2, all on the block skeleton (decoder.ts).
export { loadPretrained, savePretrained, architectureOf, SUPPORTED_MODEL_TYPES } from "./hf.js";
export type { PretrainedModel, ArchitectureConfig, LoadPretrainedOptions, SavePretrainedOptions } from "./hf.js";
export { Llama, LlamaBlock, llamaConfigFromHF, llamaConfigToHF } from "./llama.js";
export type { LlamaConfig, LlamaModelType, BuildOptions } from "./llama.js";
export { GPTNeoX, NeoXBlock, neoxConfigFromHF, neoxConfigToHF } from "./neox.js";
export type { NeoXConfig } from "./neox.js";
export { Gemma, gemmaConfigFromHF, gemmaConfigToHF } from "./gemma.js";
export type { GemmaConfig, GemmaModelType } from "./gemma.js";
export { Phi3, phi3ConfigFromHF, phi3ConfigToHF } from "./phi3.js";
export type { Phi3Config } from "./phi3.js";
export { Olmo2, olmo2ConfigFromHF, olmo2ConfigToHF } from "./olmo2.js";
export type { Olmo2Config } from "./olmo2.js";
export { DecoderLM, DecoderBlock } from "./decoder.js";
export type { DecoderSpec, DecoderNames, NormKind, AttentionInfo } from "./decoder.js";
export { RotaryCausalLM } from "./causal-lm.js";
export type { CausalLMConfigBase } from "./causal-lm.js";
export type { RopeConfig, RopeType } from "./rope.js";
export type { CausalLMHookName, BlockHookName, AttentionHookName, GPT2HookName, LlamaHookName, NeoXHookName } from "./hook-names.js";
