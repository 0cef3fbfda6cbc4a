#!/usr/bin/env python3
"""Reference values for innerloop's GPT-2 (test/gpt2.test.ts), from Hugging Face transformers.

Makes a small random GPT2LMHeadModel with odd sizes (n_embd 48, 3 heads, vocabulary 101, T 13),
perturbs every LayerNorm weight and bias and every linear bias away from their initial 1/0 so that
they matter, and saves it with `save_pretrained` (config.json + model.safetensors, float32). From
those float32 weights, cast to float64, it computes with transformers:

  - logits for a batch of ids and the mean cross-entropy against next-token targets (some -100,
    which are ignored), and the gradient of that loss for a few parameters;
  - the residual stream: h^0 (embedding output), h^1 (output of block 0), h^L (input of ln_f) and
    the final normalized stream (ln_f output), for the hook-point tests;
  - greedy continuations of a prompt.

Usage: python3 scripts/ref/gpt2_reference.py [--out test/fixtures/gpt2] [--seed 1234]
Writes OUT/model/{config.json,model.safetensors}, OUT/expected.json (ids, targets, loss, settings)
and OUT/expected.safetensors (logits, gradients and hidden states computed in float64, stored as
float32).
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB, N_EMBD, N_HEAD, N_LAYER, N_POS = 101, 48, 3, 2, 24
BATCH, SEQ_LEN = 3, 13
PROMPT_LEN, NEW_TOKENS = 5, 8
GRAD_PARAMS = [
    "transformer.wte.weight",
    "transformer.wpe.weight",
    "transformer.h.0.ln_1.weight",
    "transformer.h.0.attn.c_attn.weight",
    "transformer.h.0.attn.c_attn.bias",
    "transformer.h.1.mlp.c_proj.weight",
    "transformer.h.1.ln_2.bias",
    "transformer.ln_f.weight",
]


def make_model(seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_positions=N_POS, n_embd=N_EMBD, n_layer=N_LAYER, n_head=N_HEAD,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, tie_word_embeddings=True,
        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1,
    )
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif ".ln_" in name and name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif name.endswith("wte.weight"):
                p.copy_(0.3 * torch.randn_like(p))
            elif name.endswith("wpe.weight"):
                p.copy_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/fixtures/gpt2")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    model = make_model(args.seed)
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(os.path.join(args.out, "model"), safe_serialization=True)

    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)
    targets = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=g)
    targets[0, 3] = -100
    targets[2, 0] = -100
    prompt = torch.randint(0, VOCAB, (2, PROMPT_LEN), generator=g)

    # Everything below in float64 from the saved float32 weights.
    m64 = model.double()
    named = dict(m64.named_parameters())
    out = m64(input_ids=ids, output_hidden_states=True)
    logits = out.logits
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)
    grads = torch.autograd.grad(loss, [named[n] for n in GRAD_PARAMS])

    hs = out.hidden_states  # (h^0, h^1, ..., h^{L-1}, ln_f(h^L)) in transformers' GPT-2
    captured = {}

    def grab(_module, inputs, output):
        captured["resid_final"] = inputs[0].detach()

    handle = m64.transformer.ln_f.register_forward_hook(grab)
    with torch.no_grad():
        m64(input_ids=ids)
    handle.remove()

    with torch.no_grad():
        gen = m64.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)

    tensors = {
        "logits": logits.detach().contiguous(),
        "h0": hs[0].detach().contiguous(),
        "h1": hs[1].detach().contiguous(),
        "resid_final": captured["resid_final"].contiguous(),
        "normalized": hs[-1].detach().contiguous(),
    }
    for n, gr in zip(GRAD_PARAMS, grads):
        tensors["grad." + n] = gr.contiguous()
    # Stored as float32 (relative error 6e-8, far below the tests' 1e-4) to keep the fixture small.
    save_file({k: v.float() for k, v in tensors.items()}, os.path.join(args.out, "expected.safetensors"))

    expected = {
        "seed": args.seed,
        "config": {"vocabSize": VOCAB, "nEmbd": N_EMBD, "nHead": N_HEAD, "nLayer": N_LAYER, "nPositions": N_POS},
        "ids": ids.tolist(),
        "targets": targets.tolist(),
        "loss": loss.item(),
        "gradParams": GRAD_PARAMS,
        "prompt": prompt.tolist(),
        "greedy": gen.tolist(),
    }
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")
    print(f"wrote {args.out}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
