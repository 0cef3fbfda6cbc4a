"""The PyTorch side of the per-call benchmark (lib/bench/aten-call.ts): the same calls through
Python's torch.ops.aten on the same small tensors, one thread. Prints one JSON line,
{case: [CPU ns per call, one entry per round]}. Arguments: calls per round, rounds."""
import json
import sys
import time

import torch

calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(1)

a = torch.randn(4, 4)
b = torch.randn(4, 4)
i = torch.tensor([2, 0])
aten = torch.ops.aten

# Each result is dropped as soon as the lambda returns: Python frees it then.
cases = {
    "torch.ops.aten.add(a, b)": lambda: aten.add(a, b),
    "torch.ops.aten.add(a, b, alpha=2)": lambda: aten.add(a, b, alpha=2),
    "torch.ops.aten.add(a, 2)": lambda: aten.add(a, 2),
    "torch.ops.aten.sum(a, dim=[0])": lambda: aten.sum(a, dim=[0]),
    "torch.ops.aten.index_select(a, 0, i)": lambda: aten.index_select(a, 0, i),
    "torch.ops.aten.size(a, 0)": lambda: aten.size(a, 0),
    "torch.add(a, b)": lambda: torch.add(a, b),
}

out = {}
for name, fn in cases.items():
    per_call = []
    for r in range(rounds + 1):
        t0 = time.process_time_ns()
        for _ in range(calls):
            fn()
        ns = (time.process_time_ns() - t0) / calls
        if r:  # round 0 warms up
            per_call.append(ns)
    out[name] = per_call
print(json.dumps(out))
