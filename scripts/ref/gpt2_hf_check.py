#!/usr/bin/env python3
"""Load a GPT-2 folder written by innerloop's saveGPT2 with transformers, as a user would, and
report what a test needs to compare: the loss on given ids and targets, a few logits, and the
loading report (missing/unexpected keys must be empty).

usage: gpt2_hf_check.py INPUT_JSON MODEL_DIR [MODEL_DIR ...]
  INPUT_JSON: {"ids": [[...], ...], "targets": [[...], ...]} (targets may hold -100, ignored)
prints one line of JSON: a list with, for each MODEL_DIR, {"loss", "logits_first" (window 0,
position 0, all entries), "config" (the loaded config as a dict), "missing_keys",
"unexpected_keys", "mismatched_keys"}. Several folders share one start of Python and transformers.
"""
import json
import sys

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def check(model_dir, ids, targets):
    model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits.double()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    return {
        "loss": loss.item(),
        "logits_first": logits[0, 0].tolist(),
        "config": model.config.to_dict(),
        "missing_keys": sorted(info.get("missing_keys", [])),
        "unexpected_keys": sorted(info.get("unexpected_keys", [])),
        "mismatched_keys": [str(k) for k in info.get("mismatched_keys", [])],
    }


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        data = json.load(f)
    ids = torch.tensor(data["ids"], dtype=torch.long)
    targets = torch.tensor(data["targets"], dtype=torch.long)
    print(json.dumps([check(d, ids, targets) for d in sys.argv[2:]]))


if __name__ == "__main__":
    main()
