// Compile-time checks (tsc --strict, run by test/types.test.ts): a line after an expect-error
// directive must fail to compile, every other line must compile.
import { torch, type Tensor } from "../../lib/torch/index.js";
import { GPT2, Llama, GPTNeoX, loadPretrained, type CausalLMHookName } from "../../lib/models/index.js";
import { runWithCache } from "../../lib/analysis/index.js";
import { AdamW } from "../../lib/optim/index.js";
import { Trainer, type CausalLM } from "../../lib/train/index.js";
import { Module } from "../../lib/nn/index.js";

declare const gpt2: GPT2;
declare const llama: Llama;
declare const neox: GPTNeoX;
declare const ids: Tensor;

// forward with targets: the loss is a Tensor, for every model (and for a union of them).
const l1: Tensor = gpt2.forward(ids, { targets: ids }).loss;
const l2: Tensor = llama.forward(ids, { targets: ids }).loss;
const l3: Tensor = neox.forward(ids, { targets: ids }).loss;
const l4: Tensor = loadPretrained("dir").forward(ids, { targets: ids }).loss;
// Without targets there may be no loss.
// @ts-expect-error loss is possibly undefined
const l5: Tensor = gpt2.forward(ids).loss;
const logits: Tensor = llama.forward(ids).logits;

// Hook names are checked.
const h1: CausalLMHookName = "blocks.3.hook_resid_pre";
const h2: CausalLMHookName = "blocks.0.attn.hook_q";
const h3: CausalLMHookName = "ln_final.hook_normalized";
// @ts-expect-error a misspelt hook
const h4: CausalLMHookName = "blocks.0.hook_resid_pr";
// @ts-expect-error the layer must be a number
const h5: CausalLMHookName = "blocks.x.hook_resid_pre";
const points = neox.hookPoints();
points.get("blocks.1.hook_mlp_out");
// @ts-expect-error no such hook point
points.get("blocks.1.mlp_out");

// runWithCache takes and gives the model's hook names.
const cache = runWithCache(gpt2, ids, { namesFilter: ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post"] });
cache.acts.get("blocks.0.hook_resid_pre");
// @ts-expect-error not a hook name of GPT-2
runWithCache(gpt2, ids, { namesFilter: ["blocks.0.resid"] });
runWithCache(llama, ids, { namesFilter: (n) => n.endsWith("hook_resid_pre") });
runWithCache(neox, ids, { namesFilter: /resid/ });

// AdamW: betas as PyTorch spells them.
new AdamW(gpt2.parameters(), { betas: [0.9, 0.95] });
// @ts-expect-error betas is a pair
new AdamW(gpt2.parameters(), { betas: [0.9] });

// The Trainer takes any causal LM.
class MyLM extends Module {
  forward(x: Tensor, opts: { targets: Tensor }): { logits: Tensor; loss: Tensor } {
    return { logits: x, loss: opts.targets };
  }
}
const mine: CausalLM = new MyLM();
new Trainer({ runDir: "r", model: mine, data: new Int32Array(10) });
new Trainer({ runDir: "r", model: llama, data: [1, 2, 3] });
new Trainer({ runDir: "r", model: gpt2, data: "tokens.bin", config: { vocabSize: 256 } });
class NoLoss extends Module {
  forward(x: Tensor): { logits: Tensor } {
    return { logits: x };
  }
}
// @ts-expect-error a model whose forward returns no loss cannot be trained
new Trainer({ runDir: "r", model: new NoLoss(), data: [1] });

void [l1, l2, l3, l4, l5, logits, h1, h2, h3, h4, h5, torch];
