#!/usr/bin/env python3
"""Load a GPT-2 folder written by innerloop's saveGPT2 with transformers, as a user would, and
report what a test needs to compare: the loss on given ids and targets, a few logits, and the
loading report (missing/unexpected keys must be empty).

usage: gpt2_hf_check.py MODEL_DIR INPUT_JSON
  INPUT_JSON: {"ids": [[...], ...], "targets": [[...], ...]} (targets may hold -100, ignored)
prints one JSON object: {"loss", "logits_first" (window 0, position 0, all entries), "config"
(the loaded config as a dict), "missing_keys", "unexpected_keys", "mismatched_keys"}
"""
import json
import sys

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    model_dir, input_path = sys.argv[1], sys.argv[2]
    with open(input_path) as f:
        data = json.load(f)
    ids = torch.tensor(data["ids"], dtype=torch.long)
    targets = torch.tensor(data["targets"], dtype=torch.long)
    model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits.double()
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    print(json.dumps({
        "loss": loss.item(),
        "logits_first": logits[0, 0].tolist(),
        "config": model.config.to_dict(),
        "missing_keys": sorted(info.get("missing_keys", [])),
        "unexpected_keys": sorted(info.get("unexpected_keys", [])),
        "mismatched_keys": [str(k) for k in info.get("mismatched_keys", [])],
    }))


if __name__ == "__main__":
    main()
