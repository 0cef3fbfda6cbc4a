#!/usr/bin/env python3
"""Write a tiny random GPT-2 checkpoint with Hugging Face transformers, and what transformers computes with it.

usage: make_tiny_hf_gpt2.py DIR

DIR gets config.json and model.safetensors (transformers' save_pretrained), as any GPT-2 checkpoint on the
Hugging Face Hub has them, and reference.json: for the ids in it, transformers' mean next-token loss, the logits
at the last position, and 8 greedily generated tokens. examples/load-hf-checkpoint.mjs loads DIR with innerloop
and computes the same things; the tests compare them.
"""
import json
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging


def main() -> None:
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    out = sys.argv[1]
    logging.disable_progress_bar()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=61, n_positions=32, n_embd=24, n_layer=2, n_head=3,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        # Random LayerNorm weights and biases, so that loading them wrongly would show.
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                p.add_(0.1 * torch.randn_like(p))
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)

    ids = [(7 * i + 3) % config.vocab_size for i in range(17)]
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits[0], x[0, 1:])
        prompt = x[:, :5]
        generated = prompt
        for _ in range(8):
            nxt = model(input_ids=generated).logits[:, -1].argmax(-1, keepdim=True)
            generated = torch.cat([generated, nxt], dim=1)
    ref = {
        "ids": ids,
        "loss": loss.item(),
        "lastLogits": logits[0, -1, :6].tolist(),
        "prompt": prompt[0].tolist(),
        "generated": generated[0].tolist(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(json.dumps({"dir": out, "files": sorted(os.listdir(out))}))


if __name__ == "__main__":
    main()
