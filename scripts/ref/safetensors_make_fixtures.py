"""Reference safetensors files for test/safetensors.test.ts, written by Python's safetensors.

Writes into test/fixtures/safetensors/:
  python.safetensors   tensors of every dtype innerloop maps (F32 F64 BF16 F16 I64 I32 U8 BOOL),
                       including a scalar, an empty tensor, NaN/Inf/-0 and int64 extremes, saved
                       by safetensors.torch.save_file with metadata {"format": "pt"}
  python.json          for each tensor: dtype, shape and the raw little-endian bytes as hex, plus
                       finite values as float64 (exact for every float dtype)
  sharded/             a Hugging Face sharded checkpoint written by huggingface_hub's
                       save_torch_state_dict (model-0000k-of-0000n.safetensors + index json)
  sharded.json         the same description for the sharded tensors

Run from the repository root:  python3 scripts/ref/safetensors_make_fixtures.py
"""
import json
import math
import os
import shutil

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "test", "fixtures", "safetensors")

ST_NAMES = {
    torch.float32: "F32", torch.float64: "F64", torch.bfloat16: "BF16", torch.float16: "F16",
    torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL",
}


def describe(tensors):
    out = {}
    for name, t in tensors.items():
        flat = t.contiguous().reshape(-1)
        raw = flat.view(torch.uint8) if flat.dtype != torch.bool else flat.to(torch.uint8)
        entry = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "hex": bytes(raw.numpy().tobytes()).hex()}
        if t.dtype.is_floating_point:
            entry["values"] = [v if math.isfinite(v) else str(v) for v in flat.double().tolist()]
        elif t.dtype == torch.int64:
            entry["values"] = [str(v) for v in flat.tolist()]
        else:
            entry["values"] = [int(v) for v in flat.tolist()]
        out[name] = entry
    return out


def main():
    g = torch.Generator().manual_seed(7)
    special = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-45, 3.4e38, -1.5])
    tensors = {
        "transformer.h.0.attn.c_attn.weight": torch.randn(5, 7, generator=g),
        "transformer.wte.weight": torch.randn(11, 3, generator=g),
        "f32.special": special,
        "f64.matrix": torch.randn(3, 4, generator=g, dtype=torch.float64),
        "bf16.weights": torch.randn(2, 3, 5, generator=g).to(torch.bfloat16),
        "f16.weights": torch.randn(4, 6, generator=g).to(torch.float16),
        "f16.special": special.to(torch.float16),
        "i64.ids": torch.tensor([0, 1, -1, 2**62, -(2**63), 2**63 - 1, 50256]),
        "i32.ids": torch.randint(-2**31, 2**31 - 1, (9,), generator=g, dtype=torch.int32),
        "u8.bytes": torch.arange(0, 256, dtype=torch.uint8).reshape(16, 16),
        "bool.mask": torch.rand(3, 5, generator=g) > 0.5,
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 4),
        "ünïcode name/with.dots": torch.ones(2),
    }
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "python.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "python.json"), "w") as f:
        json.dump({"metadata": {"format": "pt"}, "tensors": describe(tensors)}, f, ensure_ascii=False)

    from huggingface_hub import save_torch_state_dict

    sharded = {f"layers.{i}.weight": torch.randn(16, 16, generator=g) for i in range(5)}
    sharded["layers.0.bias"] = torch.randn(16, generator=g).to(torch.bfloat16)
    d = os.path.join(OUT, "sharded")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    save_torch_state_dict(sharded, d, max_shard_size=2500)
    with open(os.path.join(OUT, "sharded.json"), "w") as f:
        json.dump({"files": sorted(os.listdir(d)), "tensors": describe(sharded)}, f)
    print("wrote", OUT, sorted(os.listdir(d)))


if __name__ == "__main__":
    main()
