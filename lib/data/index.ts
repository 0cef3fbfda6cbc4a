/** The data layer: tokenizers, corpora, token streams and batching. */
export * from "./tokenizer.js";
export * from "./char.js";
export * from "./gpt2.js";
export * from "./hf-tokenizer.js";
export * from "./tokens.js";
export * from "./corpus.js";
export * from "./batch.js";
export * from "./sampler.js";
export * from "./windows.js";
export * from "./unknown.js";
