#!/usr/bin/env python3
"""Loads Hugging Face model folders with transformers and prints their logits.

Checks that folders innerloop writes (savePretrained) are valid checkpoints:
transformers must load them without missing or unexpected weights and give
the logits innerloop computes.

Usage: python3 scripts/oracle/pretrained_check.py IDS_JSON DIR [DIR ...]
IDS_JSON holds a [B, T] list of token ids. Prints one JSON object:
{ DIR: { "modelType", "logits" (flat), "shape", "missing", "unexpected" } }.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main():
    ids = torch.tensor(json.load(open(sys.argv[1])), dtype=torch.long)
    out = {}
    for d in sys.argv[2:]:
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64, attn_implementation="eager",
                                                           output_loading_info=True)
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits
        out[d] = {"modelType": model.config.model_type, "logits": logits.reshape(-1).tolist(),
                  "shape": list(logits.shape), "missing": sorted(info["missing_keys"]),
                  "unexpected": sorted(info["unexpected_keys"])}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
