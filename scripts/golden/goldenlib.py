"""Shared helpers for the golden-value generators.

A golden *case* describes one call of the innerloop torch API in a form the
TypeScript harness can replay generically:

    {
      "id":     "reduce/sum/dim1-keepdim",
      "call":   "method" | "torch" | "F",
      "op":     "sum",
      "self":   "x",                     # receiver, only for call == "method"
      "args":   [1, {"keepdim": true}],  # TS arguments; {"$t": name} is a tensor input,
                                         # {"$n": "inf"} a non-finite number, {"$u": 1} undefined
      "inputs": {"x": TensorSpec},       # TensorSpec = {shape, dtype, data, grad?}
      "out":    Result,                  # TensorSpec | [Result] | {"values": .., "indices": ..} | number
      "weights": WeightSpec,             # when gradients are recorded (same structure as "out")
      "grads":  {"x": TensorSpec},       # d/d input of sum(out * weights)
      "inplace": true,                   # the call must return its receiver
      "factory": true,                   # merge {device} into the last (options) argument
      "pre": [["transpose", [0, 1]]],    # method calls applied to the receiver first
    }

Reference values are computed in float64 from the very same (rounded) inputs;
the dtype recorded is what PyTorch gives for the case's own input dtypes.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.bfloat16: "bfloat16",
    torch.float16: "float16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.uint8: "uint8",
    torch.bool: "bool",
}


class Rng:
    """Deterministic input maker; values are rounded so the JSON stays short."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)

    def randn(self, *shape: int, scale: float = 1.0, decimals: int = 3) -> torch.Tensor:
        x = torch.randn(shape, generator=self.g, dtype=torch.float64) * scale
        return torch.round(x, decimals=decimals).to(torch.float32)

    def uniform(self, *shape: int, lo: float = 0.0, hi: float = 1.0, decimals: int = 3) -> torch.Tensor:
        x = torch.rand(shape, generator=self.g, dtype=torch.float64) * (hi - lo) + lo
        return torch.round(x, decimals=decimals).to(torch.float32)

    def away_from_zero(self, *shape: int) -> torch.Tensor:
        """Values in ±[0.5, 2.5): safe divisors, and |x| has a gradient everywhere."""
        mag = self.uniform(*shape, lo=0.5, hi=2.5)
        sign = torch.where(torch.rand(shape, generator=self.g) < 0.5, -1.0, 1.0)
        return (mag * sign).to(torch.float32)

    def distinct(self, *shape: int) -> torch.Tensor:
        """Distinct values (no ties), so max/argmax/topk indices are unambiguous on every backend."""
        n = math.prod(shape)
        perm = torch.randperm(n, generator=self.g).to(torch.float64)
        return ((perm - n / 2) / 4).reshape(shape).to(torch.float32)

    def randint(self, lo: int, hi: int, *shape: int) -> torch.Tensor:
        return torch.randint(lo, hi, shape, generator=self.g, dtype=torch.int64)

    def perm(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.g)

    def bool(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.g) < 0.5


def enc_number(v: Any, dtype: torch.dtype, exact32: bool = False) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if dtype in (torch.float64, torch.bfloat16, torch.float16):
        # float64 at full precision; half-precision values are exact in few digits anyway
        return float(repr(v))
    # float32 data: the shortest decimal that reads back as the same float32; values computed
    # in float64 for a float32 result: 8 significant digits (far below float32 tolerance).
    r = float(str(np.float32(v))) if exact32 else float(f"{v:.8g}")
    return int(r) if r.is_integer() and abs(r) < 1e15 else r


def spec(t: torch.Tensor, dtype: torch.dtype | None = None, grad: bool = False) -> dict:
    """TensorSpec: shape, dtype (the case dtype, default: t's own) and flat data."""
    d = dtype if dtype is not None else t.dtype
    vals = t.detach().reshape(-1)
    if vals.dtype in (torch.bfloat16, torch.float16):
        vals = vals.to(torch.float64)
    exact32 = t.dtype == torch.float32
    data = [enc_number(v, d, exact32) for v in vals.tolist()]
    out = {"shape": list(t.shape), "dtype": DTYPE_NAMES[d], "data": data}
    if grad:
        out["grad"] = True
    return out


def T(name: str) -> dict:
    return {"$t": name}


UNDEF = {"$u": 1}


def NUM(v: float) -> dict:
    return {"$n": "inf" if v > 0 else "-inf"} if math.isinf(v) else {"$n": "nan"}


def is_pair(r: Any) -> bool:
    return hasattr(r, "values") and hasattr(r, "indices") and not isinstance(r, torch.Tensor)


def upcast(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64) if t.dtype == torch.float32 else t.clone()


def encode_result(native: Any, ref: Any) -> Any:
    """Values from the float64 run, dtypes from the native run; indices must agree exactly."""
    if isinstance(native, torch.Tensor):
        if not native.dtype.is_floating_point:
            if not torch.equal(native, ref.to(native.dtype)):
                raise AssertionError("integer/bool result differs between float32 and float64 runs (ties?)")
            return spec(native)
        return spec(ref.to(torch.float64) if native.dtype in (torch.float32, torch.float64) else native, dtype=native.dtype)
    if is_pair(native):
        return {"values": encode_result(native.values, ref.values), "indices": encode_result(native.indices, ref.indices)}
    if isinstance(native, (list, tuple)):
        return [encode_result(a, b) for a, b in zip(native, ref)]
    if isinstance(native, (int, float, bool)):
        return native
    raise TypeError(f"cannot encode {type(native)}")


def make_weights(rng: Rng, ref: Any) -> tuple[Any, Any]:
    """(JSON spec, float64 tensors) of fixed random weights matching the float outputs."""
    if isinstance(ref, torch.Tensor):
        if not ref.dtype.is_floating_point:
            return None, None
        w = rng.randn(*ref.shape)
        return spec(w), w.to(torch.float64)
    if is_pair(ref):
        s, w = make_weights(rng, ref.values)
        return {"values": s}, {"values": w}
    if isinstance(ref, (list, tuple)):
        pairs = [make_weights(rng, r) for r in ref]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return None, None


def weighted_sum(ref: Any, w: Any) -> torch.Tensor | None:
    if w is None:
        return None
    if isinstance(ref, torch.Tensor):
        return (ref * w).sum()
    if is_pair(ref):
        return weighted_sum(ref.values, w["values"])
    total = None
    for r, ww in zip(ref, w):
        s = weighted_sum(r, ww)
        if s is not None:
            total = s if total is None else total + s
    return total


class CaseBook:
    def __init__(self, seed: int = 0):
        self.cases: list[dict] = []
        self.ids: set[str] = set()
        self.rng = Rng(seed)

    def add(
        self,
        id: str,
        call: str,
        op: str,
        args: list,
        fn: Callable[[dict[str, torch.Tensor]], Any],
        inputs: dict[str, torch.Tensor] | None = None,
        self_: str | None = None,
        grad: tuple[str, ...] = (),
        inplace: bool = False,
        factory: bool = False,
        check_values: bool = True,
        ref64: bool = True,
        pre: list | None = None,
    ) -> None:
        """Record one case. fn computes the PyTorch result from a dict of input tensors."""
        if id in self.ids:
            raise ValueError(f"duplicate case id {id}")
        self.ids.add(id)
        inputs = inputs or {}
        native_in = {k: v.clone() for k, v in inputs.items()}
        native = fn(native_in)
        ref_in = {k: (upcast(v) if ref64 else v.clone()) for k, v in inputs.items()}
        for k in grad:
            ref_in[k].requires_grad_(True)
        ref = fn(ref_in)
        case: dict[str, Any] = {"id": id, "call": call, "op": op}
        if self_ is not None:
            case["self"] = self_
        case["args"] = args
        case["inputs"] = {k: spec(v, grad=k in grad) for k, v in inputs.items()}
        if inplace:
            case["inplace"] = True
            # in-place ops return their receiver, so native/ref already are the updated tensors
            if pre is None:
                assert native is native_in[self_] and ref is ref_in[self_]
        if factory:
            case["factory"] = True
        if pre:
            case["pre"] = pre
        out = encode_result(native, ref)
        if not check_values:
            out["data"] = None
        case["out"] = out
        if grad:
            wspec, w = make_weights(self.rng, ref)
            loss = weighted_sum(ref, w)
            loss.backward()
            case["weights"] = wspec
            case["grads"] = {k: spec(ref_in[k].grad, dtype=inputs[k].dtype) for k in grad}
        self.cases.append(case)
