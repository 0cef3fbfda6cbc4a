// The names of the hook points of the package's causal LMs (GPT-2, LLaMA family, GPT-NeoX), as
// string-literal types, so that a misspelt hook name is a compile-time error.

/** Hook points of every block l: h^l (resid_pre), the attention and MLP outputs, h^{l+1} (resid_post). */
export type BlockHookName = "hook_resid_pre" | "hook_attn_out" | "hook_resid_mid" | "hook_mlp_out" | "hook_resid_post";

/** Attention queries and keys of block l (after the rotary embedding where there is one). */
export type AttentionHookName = "hook_q" | "hook_k";

/** Every hook point name of GPT2, Llama and GPTNeoX. */
export type CausalLMHookName =
  | `blocks.${number}.${BlockHookName}`
  | `blocks.${number}.attn.${AttentionHookName}`
  | "ln_final.hook_normalized";

export type GPT2HookName = CausalLMHookName;
export type LlamaHookName = CausalLMHookName;
export type NeoXHookName = CausalLMHookName;
