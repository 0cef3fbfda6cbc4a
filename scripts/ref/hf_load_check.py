#!/usr/bin/env python3
"""Load an innerloop run directory with Hugging Face transformers and report the loss on given token ids.

The run directory of `innerloop train` must be a valid Hugging Face GPT-2 checkpoint: this script loads it with
`AutoModelForCausalLM.from_pretrained(DIR)` exactly as a user would, puts the model in eval mode (no dropout) and
computes the mean next-token cross-entropy on the windows given, so that a test can compare it with innerloop's
own loss on the same weights and ids.

usage: hf_load_check.py RUN_DIR IDS_JSON
  IDS_JSON: a file holding a JSON list of windows, each a list of T+1 token ids; inputs are the first T ids,
            targets the last T (as innerloop's `forward(ids, { targets })`).
prints one JSON object: { "loss", "model_type", "architectures", "vocab_size", "n_layer", "n_embd",
                          "first_logits" (the logits of window 0, position 0, first 8 entries),
                          "missing_keys", "unexpected_keys" }
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    run_dir, ids_path = sys.argv[1], sys.argv[2]
    with open(ids_path) as f:
        windows = json.load(f)
    ids = torch.tensor(windows, dtype=torch.long)
    if ids.ndim != 2 or ids.shape[1] < 2:
        sys.exit("IDS_JSON must be a list of windows of at least 2 ids each")

    model, info = AutoModelForCausalLM.from_pretrained(
        run_dir, torch_dtype=torch.float32, output_loading_info=True
    )
    model.eval()
    inputs, targets = ids[:, :-1], ids[:, 1:]
    with torch.no_grad():
        logits = model(input_ids=inputs).logits.float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    cfg = model.config
    print(
        json.dumps(
            {
                "loss": loss.item(),
                "model_type": cfg.model_type,
                "architectures": getattr(cfg, "architectures", None),
                "vocab_size": cfg.vocab_size,
                "n_layer": cfg.n_layer,
                "n_embd": cfg.n_embd,
                "first_logits": logits[0, 0, :8].tolist(),
                "missing_keys": list(info.get("missing_keys", [])),
                "unexpected_keys": list(info.get("unexpected_keys", [])),
            }
        )
    )


if __name__ == "__main__":
    main()
