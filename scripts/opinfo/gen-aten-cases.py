#!/usr/bin/env python3
"""Turns PyTorch's OpInfo database into test cases for `torch.aten` (test/aten-opinfo.test.ts).

    python3 scripts/opinfo/gen-aten-cases.py OUT_DIR

For each OpInfo of `op_db` whose `aten_name` is an operator of `torch.ops.aten`, takes up to
SAMPLES float32 CPU sample inputs that `torch.ops.aten.<name>` accepts, and records the inputs
and the result of `torch.ops.aten.<name>(input, *args, **kwargs)`. Random operators (those whose
result changes with the seed) are skipped. For operators that support autograd, the gradient of
sum(output * weight) with respect to every float input tensor is recorded as well, from
`torch.autograd.grad`.

Writes OUT_DIR/cases.json (structure and values) and OUT_DIR/tensors.safetensors (every tensor,
referenced from the JSON by name). Deterministic: the same torch gives the same files.
"""
import json
import math
import os
import sys
import warnings

import torch
from safetensors.torch import save_file

warnings.filterwarnings("ignore")
SAMPLES = 3
MAX_ELEMENTS = 4096  # larger sample inputs are skipped to keep the fixture and the test small

DTYPE_NAMES = {
    torch.float32: "float32", torch.float64: "float64", torch.float16: "float16", torch.bfloat16: "bfloat16",
    torch.int64: "int64", torch.int32: "int32", torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8",
    torch.bool: "bool", torch.complex64: "complex64", torch.complex128: "complex128",
}
MEMORY_FORMATS = {
    torch.contiguous_format: "contiguous_format", torch.preserve_format: "preserve_format",
    torch.channels_last: "channels_last", torch.channels_last_3d: "channels_last_3d",
}


class Skip(Exception):
    pass


class Encoder:
    def __init__(self):
        self.tensors = {}

    def tensor(self, t):
        if t.dtype not in DTYPE_NAMES or t.dtype in (torch.complex128,) or t.is_sparse or t.layout != torch.strided:
            raise Skip(f"tensor of dtype {t.dtype} / layout {t.layout}")
        name = f"t{len(self.tensors)}"
        self.tensors[name] = t.detach().clone().contiguous()
        return {"tensor": name}

    def value(self, v):
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int):
            if abs(v) > 2**53:
                raise Skip("integer beyond 2^53")
            return v
        if isinstance(v, float):
            if math.isfinite(v):
                return v
            return {"number": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}
        if isinstance(v, (list, tuple)):
            return [self.value(x) for x in v]
        if isinstance(v, torch.dtype):
            if v not in DTYPE_NAMES:
                raise Skip(f"dtype {v}")
            return DTYPE_NAMES[v]
        if isinstance(v, torch.device):
            return str(v)
        if isinstance(v, torch.memory_format):
            return MEMORY_FORMATS[v]
        if isinstance(v, torch.Size):
            return list(v)
        raise Skip(f"value of type {type(v).__name__}")


def numel(v):
    if isinstance(v, torch.Tensor):
        return v.numel()
    if isinstance(v, (list, tuple)):
        return sum(numel(x) for x in v)
    if isinstance(v, dict):
        return sum(numel(x) for x in v.values())
    return 0


def clone_inputs(v, requires_grad):
    """A copy of the inputs, float tensors made leaves that require grad when asked."""
    leaves = []

    def go(x):
        if isinstance(x, torch.Tensor):
            y = x.detach().clone()
            if requires_grad and y.dtype == torch.float32:
                y.requires_grad_(True)
                leaves.append(y)
            return y
        if isinstance(x, list):
            return [go(e) for e in x]
        if isinstance(x, tuple):
            return tuple(go(e) for e in x)
        if isinstance(x, dict):
            return {k: go(e) for k, e in x.items()}
        return x

    return go(v), leaves


def flat_tensors(v):
    if isinstance(v, torch.Tensor):
        return [v]
    if isinstance(v, (list, tuple)):
        return [t for x in v for t in flat_tensors(x)]
    return []


def same(a, b):
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        try:
            if a.is_floating_point() or a.is_complex():
                return torch.allclose(a.to(torch.complex128), b.to(torch.complex128), equal_nan=True)
            return torch.equal(a, b)
        except Exception:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def main():
    out_dir = sys.argv[1]
    try:
        import expecttest  # noqa: F401  (torch's test utilities import it; only its TestCase is used)
    except ImportError:
        import types
        import unittest

        sys.modules["expecttest"] = types.SimpleNamespace(TestCase=unittest.TestCase)
    from torch.testing._internal.common_methods_invocations import op_db

    torch.manual_seed(0)
    # Dispatcher operators only: names that exist just as TorchScript helpers are not ATen kernels.
    dispatcher = {q[len("aten::"):].split(".")[0] for q in torch._C._dispatch_get_all_op_names() if q.startswith("aten::")}
    enc = Encoder()
    cases = []
    considered = {}  # aten name -> why it has no case, or None when it has
    for info in op_db:
        name = info.aten_name
        if not name or name not in dispatcher:
            continue
        if considered.get(name) == "random":
            continue
        considered.setdefault(name, "no usable float32 sample")
        if float32_unsupported(info):
            continue
        packet = getattr(torch.ops.aten, name)
        try:
            samples = list(info.sample_inputs("cpu", torch.float32, requires_grad=False))
        except Exception:
            continue
        taken = sum(1 for c in cases if c["op"] == name)
        for s in samples:
            if taken >= SAMPLES:
                break
            args = [s.input, *s.args]
            kwargs = dict(s.kwargs)
            if numel(args) + numel(kwargs) > MAX_ELEMENTS:
                continue
            try:
                # Four seeds: a random operator can agree under two by chance (bernoulli of small p).
                results = []
                for seed in (1, 2, 3, 4):
                    torch.manual_seed(seed)
                    a1, _ = clone_inputs(args, False)
                    k1, _ = clone_inputs(kwargs, False)
                    results.append(packet(*a1, **k1))
            except Exception:
                continue
            r1 = results[0]
            if not isinstance(r1, (torch.Tensor, list, tuple, int, float, bool)):
                continue
            if not all(same(r1, r) for r in results[1:]):
                # Random: drop every case of the operator, also those whose samples happened to agree.
                considered[name] = "random"
                cases = [c for c in cases if c["op"] != name]
                break
            try:
                mark = len(enc.tensors)
                case = {
                    "op": name,
                    "opinfo": info.name + (f".{info.variant_test_name}" if info.variant_test_name else ""),
                    "args": enc.value(args),
                    "kwargs": {k: enc.value(v) for k, v in kwargs.items()},
                    "expected": enc.value(r1),
                }
                if "empty" in name:
                    case["uninitialized"] = True  # only dtype and shape are defined
                case["grad"] = gradient_case(enc, info, packet, args, kwargs)
            except Skip:
                for k in list(enc.tensors)[mark:]:
                    del enc.tensors[k]
                continue
            cases.append(case)
            considered[name] = None
            taken += 1
    summary = {
        "torch": torch.__version__,
        "samplesPerOp": SAMPLES,
        "skipped": {k: v for k, v in sorted(considered.items()) if v is not None},
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump({"summary": summary, "cases": cases}, f, separators=(",", ":"))
    save_file(enc.tensors, os.path.join(out_dir, "tensors.safetensors"))
    print(f"{len(cases)} cases for {len({c['op'] for c in cases})} operators, {len(enc.tensors)} tensors", file=sys.stderr)


def float32_unsupported(info):
    try:
        return torch.float32 not in info.supported_dtypes("cpu")
    except Exception:
        return True


def gradient_case(enc, info, packet, args, kwargs):
    """Gradients of sum(out_i * w_i) over the float outputs, for every float32 input tensor."""
    if not info.supports_autograd:
        return None
    a, leaves = clone_inputs(args, True)
    k, more = clone_inputs(kwargs, True)
    leaves += more
    if not leaves:
        return None
    try:
        out = packet(*a, **k)
        outs = [o for o in flat_tensors(out) if o.requires_grad and o.dtype == torch.float32]
        if not outs:
            return None
        gen = torch.Generator().manual_seed(3)
        weights = [torch.randn(o.shape, generator=gen) for o in outs]
        grads = torch.autograd.grad(outs, leaves, weights, allow_unused=True)
    except Exception:
        return None
    return {
        "weights": [enc.tensor(w) for w in weights],
        "grads": [None if g is None else enc.tensor(g) for g in grads],
    }


if __name__ == "__main__":
    main()
