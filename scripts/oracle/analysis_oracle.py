#!/usr/bin/env python3
"""Independent reference for `innerloop analyze` (see docs/analysis.md).

Makes a small random Hugging Face GPT-2 (odd sizes; LayerNorm weights and biases
perturbed away from 1/0 so that they matter), saves it as a Hugging Face directory
(config.json + model.safetensors), writes a nanoGPT-style uint16 token file, and
computes every analysis.json field with transformers and PyTorch autograd in
float64 from the saved float32 weights.

Usage: python3 scripts/oracle/analysis_oracle.py --out DIR [--seed S]
Writes DIR/model/, DIR/tokens.bin and DIR/expected.json (with the settings used:
seqLen, batchSize, maxWindows).
"""
import argparse
import json
import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel

# Sizes are deliberately odd: 3 heads of 12, a vocabulary of 97, T = 13, and
# N = 10 windows in batches of 4 so that the last batch holds 2.
VOCAB, N_EMBD, N_HEAD, N_LAYER, N_POS = 97, 36, 3, 3, 32
from analysis_reference import BATCH, BUCKETS, MAX_WINDOWS, SEQ_LEN, TOPK, analyse, make_tokens


def make_model(seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_positions=N_POS, n_embd=N_EMBD, n_layer=N_LAYER, n_head=N_HEAD,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        # Non-zero dropout: the analysis must run in eval mode to agree.
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
        tie_word_embeddings=True, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1,
    )
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
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
        # A few large embedding coordinates so that the top-k activations are
        # unambiguous (massive-activation style outliers).
        model.transformer.wte.weight[:, 7] += 2.0
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "model"), exist_ok=True)
    model = make_model(args.seed)
    model.save_pretrained(os.path.join(args.out, "model"), safe_serialization=True)
    tokens = make_tokens(args.seed)
    tokens.tofile(os.path.join(args.out, "tokens.bin"))
    # Reload what was saved, so the reference uses exactly the float32 weights on disk.
    saved = GPT2LMHeadModel.from_pretrained(os.path.join(args.out, "model"), attn_implementation="eager")
    res = analyse(saved.double().eval(), tokens)
    res["settings"] = {"seqLen": SEQ_LEN, "batchSize": BATCH, "maxWindows": MAX_WINDOWS, "topK": TOPK,
                       "freqBuckets": BUCKETS, "tokensInFile": int(len(tokens))}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
