#!/usr/bin/env python3
"""Golden values for the torch API, computed with PyTorch.

Writes test/golden/ops.json: a list of cases (see goldenlib.py for the format), one per
call of the innerloop API, covering every op family: factories, arithmetic with
broadcasting and scalars, type promotion, matmul, reductions, shape ops, in-place ops
and torch.nn.functional, with input gradients for the differentiable ones.

Run from the repository root:  python3 scripts/golden/make_ops.py
"""
from __future__ import annotations

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from goldenlib import NUM, UNDEF, CaseBook, T  # noqa: E402

INF = float("inf")


def factories(b: CaseBook) -> None:
    f64 = torch.float64
    b.add("factory/zeros", "torch", "zeros", [[2, 3], {}], lambda _: torch.zeros(2, 3), factory=True)
    b.add("factory/zeros-int64", "torch", "zeros", [[4], {"dtype": "int64"}], lambda _: torch.zeros(4, dtype=torch.int64), factory=True)
    b.add("factory/ones", "torch", "ones", [[3, 1, 2], {}], lambda _: torch.ones(3, 1, 2), factory=True)
    b.add("factory/ones-bool", "torch", "ones", [[2], {"dtype": "bool"}], lambda _: torch.ones(2, dtype=torch.bool), factory=True)
    b.add("factory/ones-scalar-shape", "torch", "ones", [[], {}], lambda _: torch.ones(()), factory=True)
    b.add("factory/full", "torch", "full", [[2, 2], 3.5, {}], lambda _: torch.full((2, 2), 3.5), factory=True)
    b.add("factory/full-int32", "torch", "full", [[3], 7, {"dtype": "int32"}], lambda _: torch.full((3,), 7, dtype=torch.int32), factory=True)
    b.add("factory/full-float64", "torch", "full", [[2], 0.1, {"dtype": "float64"}], lambda _: torch.full((2,), 0.1, dtype=f64), factory=True)
    b.add("factory/empty", "torch", "empty", [[2, 5], {}], lambda _: torch.empty(2, 5), factory=True, check_values=False)
    b.add("factory/empty-bf16", "torch", "empty", [[3], {"dtype": "bfloat16"}], lambda _: torch.empty(3, dtype=torch.bfloat16), factory=True, check_values=False)
    b.add("factory/arange-end", "torch", "arange", [5], lambda _: torch.arange(5))
    b.add("factory/arange-int", "torch", "arange", [2, 9, 3, {}], lambda _: torch.arange(2, 9, 3), factory=True)
    b.add("factory/arange-float-step", "torch", "arange", [0, 1, 0.25, {}], lambda _: torch.arange(0, 1, 0.25), factory=True)
    b.add("factory/arange-float-start", "torch", "arange", [0.5, 3, 1, {}], lambda _: torch.arange(0.5, 3, 1), factory=True)
    b.add("factory/arange-negative-step", "torch", "arange", [5, 0, -1.5, {}], lambda _: torch.arange(5, 0, -1.5), factory=True)
    b.add("factory/arange-dtype", "torch", "arange", [1, 4, 1, {"dtype": "float64"}], lambda _: torch.arange(1, 4, 1, dtype=f64), factory=True)
    b.add("factory/linspace", "torch", "linspace", [0, 1, 5, {}], lambda _: torch.linspace(0, 1, 5), factory=True)
    b.add("factory/linspace-f64", "torch", "linspace", [-1, 1, 4, {"dtype": "float64"}], lambda _: torch.linspace(-1, 1, 4, dtype=f64), factory=True)
    b.add("factory/eye", "torch", "eye", [3], lambda _: torch.eye(3))
    b.add("factory/tensor-scalar", "torch", "tensor", [2.5, {}], lambda _: torch.tensor(2.5), factory=True)
    b.add("factory/full-scalar-shape", "torch", "full", [[], -3, {}], lambda _: torch.full((), -3.0), factory=True)
    b.add("factory/eye-rect-int64", "torch", "eye", [2, 3, {"dtype": "int64"}], lambda _: torch.eye(2, 3, dtype=torch.int64), factory=True)
    b.add("factory/tensor-nested", "torch", "tensor", [[[1, 2.5], [3, -4]], {}], lambda _: torch.tensor([[1, 2.5], [3, -4]]), factory=True)
    b.add("factory/tensor-3d", "torch", "tensor", [[[[1], [2]], [[3], [4]]], {}], lambda _: torch.tensor([[[1], [2]], [[3], [4]]]), factory=True)
    b.add("factory/tensor-int64", "torch", "tensor", [[1, -2, 3], {"dtype": "int64"}], lambda _: torch.tensor([1, -2, 3]), factory=True)
    b.add("factory/tensor-int32", "torch", "tensor", [[[1, 2], [3, 4]], {"dtype": "int32"}], lambda _: torch.tensor([[1, 2], [3, 4]], dtype=torch.int32), factory=True)
    b.add("factory/tensor-uint8", "torch", "tensor", [[0, 200, 255], {"dtype": "uint8"}], lambda _: torch.tensor([0, 200, 255], dtype=torch.uint8), factory=True)
    b.add("factory/tensor-bool", "torch", "tensor", [[True, False, True], {}], lambda _: torch.tensor([True, False, True]), factory=True)
    b.add("factory/tensor-f64", "torch", "tensor", [[0.1, 0.2], {"dtype": "float64"}], lambda _: torch.tensor([0.1, 0.2], dtype=f64), factory=True)
    b.add("factory/tensor-bf16", "torch", "tensor", [[0.1, 1.0, 300.7], {"dtype": "bfloat16"}], lambda _: torch.tensor([0.1, 1.0, 300.7], dtype=torch.bfloat16), factory=True)
    b.add("factory/tensor-f16", "torch", "tensor", [[0.1, 1.0, 300.7], {"dtype": "float16"}], lambda _: torch.tensor([0.1, 1.0, 300.7], dtype=torch.float16), factory=True)
    x = b.rng.randn(2, 3)
    b.add("factory/zerosLike", "torch", "zerosLike", [T("x"), {}], lambda t: torch.zeros_like(t["x"]), {"x": x}, factory=True)
    b.add("factory/onesLike-int64", "torch", "onesLike", [T("x"), {"dtype": "int64"}], lambda t: torch.ones_like(t["x"], dtype=torch.int64), {"x": x}, factory=True)


def unary(b: CaseBook) -> None:
    r = b.rng
    x = r.randn(3, 4)
    pos = r.uniform(3, 4, lo=0.2, hi=3.0)
    nz = r.away_from_zero(3, 4)
    table = [
        ("neg", x, lambda a: -a),
        ("exp", x, torch.exp),
        ("log", pos, torch.log),
        ("sqrt", pos, torch.sqrt),
        ("rsqrt", pos, torch.rsqrt),
        ("tanh", x, torch.tanh),
        ("sigmoid", x, torch.sigmoid),
        ("abs", nz, torch.abs),
        ("sin", x, torch.sin),
        ("cos", x, torch.cos),
        ("reciprocal", nz, torch.reciprocal),
    ]
    for op, inp, fn in table:
        b.add(f"unary/{op}", "method", op, [], (lambda f: lambda t: f(t["x"]))(fn), {"x": inp}, self_="x", grad=("x",))
    b.add("unary/torch.exp", "torch", "exp", [T("x")], lambda t: torch.exp(t["x"]), {"x": x}, grad=("x",))
    b.add("unary/log-nonpositive", "method", "log", [], lambda t: torch.log(t["x"]), {"x": torch.tensor([0.0, -1.0, 1.0])}, self_="x")
    b.add("unary/sqrt-negative", "method", "sqrt", [], lambda t: torch.sqrt(t["x"]), {"x": torch.tensor([-1.0, 4.0])}, self_="x")
    b.add("unary/exp-f64", "method", "exp", [], lambda t: torch.exp(t["x"]), {"x": x.to(torch.float64)}, self_="x", grad=("x",))
    b.add("unary/abs-int64", "method", "abs", [], lambda t: torch.abs(t["x"]), {"x": torch.tensor([-3, 0, 5])}, self_="x")
    b.add("unary/neg-int32", "method", "neg", [], lambda t: -t["x"], {"x": torch.tensor([-3, 0, 5], dtype=torch.int32)}, self_="x")
    b.add("unary/tanh-bf16", "method", "tanh", [], lambda t: torch.tanh(t["x"]), {"x": x.to(torch.bfloat16)}, self_="x")
    b.add("unary/sigmoid-f16", "method", "sigmoid", [], lambda t: torch.sigmoid(t["x"]), {"x": x.to(torch.float16)}, self_="x")
    # clamp
    b.add("unary/clamp", "method", "clamp", [-0.5, 0.7], lambda t: t["x"].clamp(-0.5, 0.7), {"x": x}, self_="x", grad=("x",))
    b.add("unary/clamp-min", "method", "clamp", [0.1], lambda t: t["x"].clamp(min=0.1), {"x": x}, self_="x", grad=("x",))
    b.add("unary/clamp-max", "method", "clamp", [UNDEF, 0.3], lambda t: t["x"].clamp(max=0.3), {"x": x}, self_="x", grad=("x",))
    b.add("unary/clamp-int64", "method", "clamp", [0, 3], lambda t: t["x"].clamp(0, 3), {"x": torch.tensor([-2, 1, 7])}, self_="x")
    b.add("unary/logicalNot", "method", "logicalNot", [], lambda t: torch.logical_not(t["x"]), {"x": r.bool(5)}, self_="x")
    b.add("unary/logicalNot-float", "method", "logicalNot", [], lambda t: torch.logical_not(t["x"]), {"x": torch.tensor([0.0, 1.5, -2.0])}, self_="x")


def binary(b: CaseBook) -> None:
    r = b.rng
    a = r.randn(2, 3, 4)
    same = r.randn(2, 3, 4)
    row = r.randn(3, 1)
    col = r.randn(4)
    nz = r.away_from_zero(3, 1)
    pos = r.uniform(2, 3, 4, lo=0.3, hi=2.0)
    ops = {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
    }
    for op, fn in ops.items():
        other = nz if op == "div" else row
        b.add(f"binary/{op}/same-shape", "method", op, [T("b")], (lambda f: lambda t: f(t["a"], t["b"]))(fn),
              {"a": a, "b": (same.abs() + 0.5) if op == "div" else same}, self_="a", grad=("a", "b"))
        b.add(f"binary/{op}/broadcast", "method", op, [T("b")], (lambda f: lambda t: f(t["a"], t["b"]))(fn),
              {"a": a, "b": other}, self_="a", grad=("a", "b"))
        if op not in ("maximum", "minimum"):
            b.add(f"binary/{op}/scalar", "method", op, [2.5], (lambda f: lambda t: f(t["a"], 2.5))(fn), {"a": a}, self_="a", grad=("a",))
            b.add(f"binary/{op}/torch-fn-broadcast-left", "torch", op, [T("c"), T("a")],
                  (lambda f: lambda t: f(t["c"], t["a"]))(fn), {"c": col.abs() + 0.5, "a": a}, grad=("c", "a"))
    b.add("binary/add/alpha", "method", "add", [T("b"), {"alpha": 2}], lambda t: torch.add(t["a"], t["b"], alpha=2), {"a": a, "b": row}, self_="a", grad=("a", "b"))
    b.add("binary/sub/alpha", "method", "sub", [T("b"), {"alpha": -0.5}], lambda t: torch.sub(t["a"], t["b"], alpha=-0.5), {"a": a, "b": row}, self_="a", grad=("a", "b"))
    b.add("binary/add/rank-expand-both", "method", "add", [T("b")], lambda t: t["a"] + t["b"], {"a": r.randn(3, 1, 2), "b": r.randn(4, 1)}, self_="a", grad=("a", "b"))
    # pow
    b.add("binary/pow/scalar2", "method", "pow", [2], lambda t: t["a"] ** 2, {"a": a}, self_="a", grad=("a",))
    b.add("binary/pow/scalar3", "method", "pow", [3], lambda t: t["a"] ** 3, {"a": a}, self_="a", grad=("a",))
    b.add("binary/pow/scalar-half", "method", "pow", [0.5], lambda t: t["a"] ** 0.5, {"a": pos}, self_="a", grad=("a",))
    b.add("binary/pow/tensor", "method", "pow", [T("e")], lambda t: t["a"] ** t["e"], {"a": pos, "e": row}, self_="a", grad=("a", "e"))
    b.add("binary/pow/torch-fn", "torch", "pow", [T("a"), -1.5], lambda t: torch.pow(t["a"], -1.5), {"a": pos}, grad=("a",))
    # comparisons -> bool
    cmp = {"eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt, "ge": torch.ge}
    ia = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    ib = torch.tensor([2.0, 2.0, 7.0])
    for op, fn in cmp.items():
        b.add(f"compare/{op}/broadcast", "method", op, [T("b")], (lambda f: lambda t: f(t["a"], t["b"]))(fn), {"a": ia, "b": ib}, self_="a")
        b.add(f"compare/{op}/scalar", "method", op, [3], (lambda f: lambda t: f(t["a"], 3))(fn), {"a": ia}, self_="a")
    b.add("compare/eq/int64", "method", "eq", [T("b")], lambda t: t["a"] == t["b"], {"a": torch.tensor([1, 2, 3]), "b": torch.tensor([1, 0, 3])}, self_="a")
    b.add("compare/gt/int-vs-float-scalar", "method", "gt", [1.5], lambda t: t["a"] > 1.5, {"a": torch.tensor([1, 2, 3])}, self_="a")
    # where
    cond = r.bool(3, 4)
    x = r.randn(3, 4)
    y = r.randn(4)
    b.add("where/tensors-broadcast", "torch", "where", [T("c"), T("x"), T("y")], lambda t: torch.where(t["c"], t["x"], t["y"]), {"c": cond, "x": x, "y": y}, grad=("x", "y"))
    b.add("where/scalar-other", "torch", "where", [T("c"), T("x"), 0], lambda t: torch.where(t["c"], t["x"], 0.0), {"c": cond, "x": x}, grad=("x",))
    b.add("where/scalar-both", "torch", "where", [T("c"), 1.5, -2], lambda t: torch.where(t["c"], 1.5, -2.0), {"c": cond})
    b.add("where/cond-from-compare", "torch", "where", [T("c"), T("x"), T("y")], lambda t: torch.where(t["c"], t["x"], t["y"]), {"c": x > 0, "x": x, "y": -x}, grad=("x", "y"))


def promotion(b: CaseBook) -> None:
    """Result dtypes of mixed-dtype operations (values are checked too)."""
    i64 = torch.tensor([1, -2, 3])
    i32 = torch.tensor([4, 5, -6], dtype=torch.int32)
    u8 = torch.tensor([1, 2, 250], dtype=torch.uint8)
    f32 = torch.tensor([0.5, 1.5, -2.5])
    f64s = torch.tensor(0.25, dtype=torch.float64)
    bl = torch.tensor([True, False, True])
    bl2 = torch.tensor([True, True, False])
    f16 = torch.tensor([0.5, 1.25, -3.0], dtype=torch.float16)
    bf16 = torch.tensor([0.5, 1.25, -3.0], dtype=torch.bfloat16)
    cases = [
        ("int64+float32", "add", "a", [T("b")], {"a": i64, "b": f32}, lambda t: t["a"] + t["b"]),
        ("int64+pyfloat", "add", "a", [2.5], {"a": i64}, lambda t: t["a"] + 2.5),
        ("int64*pyint", "mul", "a", [2], {"a": i64}, lambda t: t["a"] * 2),
        ("int32+int64", "add", "a", [T("b")], {"a": i32, "b": i64}, lambda t: t["a"] + t["b"]),
        ("int32*pyint", "mul", "a", [3], {"a": i32}, lambda t: t["a"] * 3),
        ("uint8+int64", "add", "a", [T("b")], {"a": u8, "b": i64}, lambda t: t["a"] + t["b"]),
        ("bool+bool", "add", "a", [T("b")], {"a": bl, "b": bl2}, lambda t: t["a"] + t["b"]),
        ("bool*bool", "mul", "a", [T("b")], {"a": bl, "b": bl2}, lambda t: t["a"] * t["b"]),
        ("bool+pyint", "add", "a", [1], {"a": bl}, lambda t: t["a"] + 1),
        ("bool*pyfloat", "mul", "a", [1.5], {"a": bl}, lambda t: t["a"] * 1.5),
        ("bool+int32", "add", "a", [T("b")], {"a": bl, "b": i32}, lambda t: t["a"] + t["b"]),
        ("int64/int64", "div", "a", [T("b")], {"a": i64, "b": torch.tensor([2, 4, -5])}, lambda t: t["a"] / t["b"]),
        ("int32/pyint", "div", "a", [2], {"a": i32}, lambda t: t["a"] / 2),
        ("float16+float32", "add", "a", [T("b")], {"a": f16, "b": f32}, lambda t: t["a"] + t["b"]),
        ("bfloat16+float16", "add", "a", [T("b")], {"a": bf16, "b": f16}, lambda t: t["a"] + t["b"]),
        ("bfloat16+pyfloat", "add", "a", [1.5], {"a": bf16}, lambda t: t["a"] + 1.5),
        ("float16*int64", "mul", "a", [T("b")], {"a": f16, "b": i64}, lambda t: t["a"] * t["b"]),
        ("float32+float64-0dim", "add", "a", [T("b")], {"a": f32, "b": f64s}, lambda t: t["a"] + t["b"]),
        ("int64+float64-0dim", "add", "a", [T("b")], {"a": i64, "b": f64s}, lambda t: t["a"] + t["b"]),
        ("float32+float64", "add", "a", [T("b")], {"a": f32, "b": f32.to(torch.float64)}, lambda t: t["a"] + t["b"]),
        ("int64-maximum-float32", "maximum", "a", [T("b")], {"a": i64, "b": f32}, lambda t: torch.maximum(t["a"], t["b"])),
        ("int64-pow-pyfloat", "pow", "a", [0.5], {"a": torch.tensor([1, 4, 9])}, lambda t: t["a"] ** 0.5),
        ("int64-pow-pyint", "pow", "a", [2], {"a": i64}, lambda t: t["a"] ** 2),
        ("sum-int32", "sum", "a", [], {"a": i32}, lambda t: t["a"].sum()),
        ("sum-bool", "sum", "a", [], {"a": bl}, lambda t: t["a"].sum()),
        ("sum-uint8", "sum", "a", [], {"a": u8}, lambda t: t["a"].sum()),
        ("mean-float16", "mean", "a", [], {"a": f16}, lambda t: t["a"].mean()),
        ("sum-bfloat16-dim", "sum", "a", [0], {"a": bf16}, lambda t: t["a"].sum(0)),
        ("float32-gt-pyfloat", "gt", "a", [0.5], {"a": f32}, lambda t: t["a"] > 0.5),
        ("exp-int64", "exp", "a", [], {"a": torch.tensor([0, 1, 2])}, lambda t: torch.exp(t["a"])),
        ("sqrt-bool", "sqrt", "a", [], {"a": bl}, lambda t: torch.sqrt(t["a"])),
        ("sigmoid-int32", "sigmoid", "a", [], {"a": i32}, lambda t: torch.sigmoid(t["a"])),
    ]
    for name, op, s, args, inputs, fn in cases:
        b.add(f"promotion/{name}", "method", op, args, fn, inputs, self_=s)
    b.add("promotion/where-int64-float32", "torch", "where", [T("c"), T("a"), T("b")], lambda t: torch.where(t["c"], t["a"], t["b"]), {"c": bl, "a": i64, "b": f32})
    b.add("promotion/where-int64-pyfloat", "torch", "where", [T("c"), T("a"), 0.5], lambda t: torch.where(t["c"], t["a"], 0.5), {"c": bl, "a": i64})
    b.add("promotion/cat-float32-float64", "torch", "cat", [[T("a"), T("b")]], lambda t: torch.cat([t["a"], t["b"]]), {"a": f32, "b": f32.to(torch.float64)})
    b.add("promotion/matmul-float64", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": torch.eye(2, dtype=torch.float64) * 3, "b": torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)}, self_="a")


def conversions(b: CaseBook) -> None:
    r = b.rng
    x = torch.tensor([-2.7, -0.5, 0.0, 0.49, 1.5, 2.9999, 123.456, 1e-3, 65504.0, 7e5])
    targets = ["float64", "bfloat16", "float16", "int64", "int32", "bool"]
    tmap = {"float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16, "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}
    for d in targets:
        b.add(f"to/float32->{d}", "method", "to", [d], (lambda dt: lambda t: t["x"].to(dt))(tmap[d]), {"x": x}, self_="x")
    b.add("to/float32->uint8", "method", "to", ["uint8"], lambda t: t["x"].to(torch.uint8), {"x": torch.tensor([0.0, 1.7, 200.2, 255.0])}, self_="x")
    b.add("to/options-dtype", "method", "to", [{"dtype": "float64"}], lambda t: t["x"].to(torch.float64), {"x": x}, self_="x")
    b.add("to/int64->float32", "method", "to", ["float32"], lambda t: t["x"].float(), {"x": torch.tensor([-3, 0, 2**24 + 1])}, self_="x")
    b.add("to/bool->float32", "method", "to", ["float32"], lambda t: t["x"].float(), {"x": torch.tensor([True, False])}, self_="x")
    bx = r.randn(7, scale=10.0, decimals=5)
    b.add("to/bfloat16->float32", "method", "to", ["float32"], lambda t: t["x"].float(), {"x": bx.to(torch.bfloat16)}, self_="x")
    b.add("to/float16->float64", "method", "to", ["float64"], lambda t: t["x"].double(), {"x": bx.to(torch.float16)}, self_="x")
    b.add("to/grad-through-cast", "method", "to", ["float64"], lambda t: t["x"].to(torch.float64), {"x": r.randn(3)}, self_="x", grad=("x",))
    b.add("to/float", "method", "float", [], lambda t: t["x"].float(), {"x": torch.tensor([1, 2])}, self_="x")
    b.add("to/long", "method", "long", [], lambda t: t["x"].long(), {"x": torch.tensor([1.9, -1.9])}, self_="x")
    b.add("to/contiguous", "method", "contiguous", [], lambda t: t["x"].contiguous(), {"x": r.randn(2, 3)}, self_="x", grad=("x",))
    b.add("to/clone", "method", "clone", [], lambda t: t["x"].clone(), {"x": r.randn(2, 3)}, self_="x", grad=("x",))
    b.add("to/detach", "method", "detach", [], lambda t: t["x"].detach(), {"x": r.randn(2, 3)}, self_="x")


def matmul(b: CaseBook) -> None:
    r = b.rng
    b.add("matmul/2d", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": r.randn(3, 4), "b": r.randn(4, 5)}, self_="a", grad=("a", "b"))
    b.add("matmul/batched-broadcast", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": r.randn(2, 3, 4), "b": r.randn(4, 5)}, self_="a", grad=("a", "b"))
    b.add("matmul/batch-dims-broadcast", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": r.randn(2, 1, 3, 4), "b": r.randn(3, 4, 2)}, self_="a", grad=("a", "b"))
    b.add("matmul/vec-mat", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": r.randn(4), "b": r.randn(4, 5)}, self_="a", grad=("a", "b"))
    b.add("matmul/mat-vec", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": r.randn(3, 4), "b": r.randn(4)}, self_="a", grad=("a", "b"))
    b.add("matmul/dot", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": r.randn(6), "b": r.randn(6)}, self_="a", grad=("a", "b"))
    b.add("matmul/torch-fn", "torch", "matmul", [T("a"), T("b")], lambda t: torch.matmul(t["a"], t["b"]), {"a": r.randn(2, 3), "b": r.randn(3, 2)}, grad=("a", "b"))
    b.add("matmul/f64", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": r.randn(3, 4).double(), "b": r.randn(4, 2).double()}, self_="a", grad=("a", "b"))
    b.add("matmul/int64", "method", "matmul", [T("b")], lambda t: t["a"] @ t["b"], {"a": torch.tensor([[1, 2], [3, 4]]), "b": torch.tensor([[5], [-6]])}, self_="a")
    b.add("matmul/bmm", "method", "bmm", [T("b")], lambda t: torch.bmm(t["a"], t["b"]), {"a": r.randn(2, 3, 4), "b": r.randn(2, 4, 5)}, self_="a", grad=("a", "b"))
    b.add("matmul/bmm-torch-fn", "torch", "bmm", [T("a"), T("b")], lambda t: torch.bmm(t["a"], t["b"]), {"a": r.randn(3, 2, 2), "b": r.randn(3, 2, 3)}, grad=("a", "b"))


def reductions(b: CaseBook) -> None:
    r = b.rng
    x = r.randn(3, 4, 5)
    d = r.distinct(3, 4, 5)
    red = [
        ("sum/all", "sum", [], lambda a: a.sum()),
        ("sum/dim1", "sum", [1], lambda a: a.sum(1)),
        ("sum/dim-neg", "sum", [-1], lambda a: a.sum(-1)),
        ("sum/dims-keepdim", "sum", [[0, 2], {"keepdim": True}], lambda a: a.sum((0, 2), keepdim=True)),
        ("sum/dim-keepdim", "sum", [1, {"keepdim": True}], lambda a: a.sum(1, keepdim=True)),
        ("mean/all", "mean", [], lambda a: a.mean()),
        ("mean/dim0", "mean", [0], lambda a: a.mean(0)),
        ("mean/dims", "mean", [[1, 2]], lambda a: a.mean((1, 2))),
        ("mean/dim-keepdim", "mean", [-1, {"keepdim": True}], lambda a: a.mean(-1, keepdim=True)),
        ("norm/all", "norm", [], lambda a: a.norm()),
        ("norm/p1-dim", "norm", [1, 1], lambda a: a.norm(1, 1)),
        ("norm/p2-dim-keepdim", "norm", [2, -1, {"keepdim": True}], lambda a: a.norm(2, -1, keepdim=True)),
        ("norm/p3-dims", "norm", [3, [0, 1]], lambda a: a.norm(3, (0, 1))),
        ("var/all", "var", [], lambda a: a.var()),
        ("var/dim", "var", [1], lambda a: a.var(1)),
        ("var/correction0-keepdim", "var", [1, {"correction": 0, "keepdim": True}], lambda a: a.var(1, correction=0, keepdim=True)),
        ("var/all-correction0", "var", [UNDEF, {"correction": 0}], lambda a: a.var(correction=0)),
        ("var/dims", "var", [[0, 2]], lambda a: a.var((0, 2))),
        ("std/all", "std", [], lambda a: a.std()),
        ("std/dim-correction0", "std", [0, {"correction": 0}], lambda a: a.std(0, correction=0)),
        ("std/dim-keepdim", "std", [-1, {"keepdim": True}], lambda a: a.std(-1, keepdim=True)),
        ("logsumexp/dim", "logsumexp", [1], lambda a: a.logsumexp(1)),
        ("logsumexp/keepdim", "logsumexp", [-1, {"keepdim": True}], lambda a: a.logsumexp(-1, keepdim=True)),
        ("cumsum/dim1", "cumsum", [1], lambda a: a.cumsum(1)),
        ("cumsum/dim-neg", "cumsum", [-1], lambda a: a.cumsum(-1)),
    ]
    for name, op, args, fn in red:
        b.add(f"reduce/{name}", "method", op, args, (lambda f: lambda t: f(t["x"]))(fn), {"x": x}, self_="x", grad=("x",))
    b.add("reduce/logsumexp/large", "method", "logsumexp", [1], lambda t: t["x"].logsumexp(1), {"x": x[0] * 100}, self_="x", grad=("x",))
    b.add("reduce/sum/torch-fn", "torch", "sum", [T("x"), 0], lambda t: torch.sum(t["x"], 0), {"x": x[0]}, grad=("x",))
    b.add("reduce/sum/int64-dim", "method", "sum", [1], lambda t: t["x"].sum(1), {"x": r.randint(-5, 5, 3, 4)}, self_="x")
    b.add("reduce/mean/f64", "method", "mean", [1], lambda t: t["x"].mean(1), {"x": x[0].double()}, self_="x", grad=("x",))
    # max/min/argmax/argmin/amax/topk: distinct values so indices never tie
    idx = [
        ("max/all", "max", [], lambda a: a.max()),
        ("max/dim", "max", [1], lambda a: a.max(1)),
        ("max/dim-keepdim", "max", [-1, {"keepdim": True}], lambda a: a.max(-1, keepdim=True)),
        ("min/all", "min", [], lambda a: a.min()),
        ("min/dim", "min", [0], lambda a: a.min(0)),
        ("min/dim-keepdim", "min", [2, {"keepdim": True}], lambda a: a.min(2, keepdim=True)),
        ("argmax/all", "argmax", [], lambda a: a.argmax()),
        ("argmax/dim", "argmax", [1], lambda a: a.argmax(1)),
        ("argmax/dim-keepdim", "argmax", [-1, {"keepdim": True}], lambda a: a.argmax(-1, keepdim=True)),
        ("argmin/dim", "argmin", [0], lambda a: a.argmin(0)),
        ("argmin/all", "argmin", [], lambda a: a.argmin()),
        ("amax/dim", "amax", [1], lambda a: a.amax(1)),
        ("amax/dim-keepdim", "amax", [-1, {"keepdim": True}], lambda a: a.amax(-1, keepdim=True)),
        ("topk/last", "topk", [2], lambda a: a.topk(2)),
        ("topk/dim0", "topk", [2, 0], lambda a: a.topk(2, 0)),
    ]
    for name, op, args, fn in idx:
        differentiable = not name.startswith("arg")
        b.add(f"reduce/{name}", "method", op, args, (lambda f: lambda t: f(t["x"]))(fn), {"x": d}, self_="x",
              grad=("x",) if differentiable else ())
    b.add("reduce/max/int64-dim", "method", "max", [1], lambda t: t["x"].max(1), {"x": torch.tensor([[3, 9, -1], [7, 2, 8]])}, self_="x")


def shapes(b: CaseBook) -> None:
    r = b.rng
    x = r.randn(2, 3, 4)
    m = r.randn(4, 5)
    cases = [
        ("view", "view", [[6, 4]], lambda a: a.view(6, 4)),
        ("view-infer", "view", [[-1, 2]], lambda a: a.view(-1, 2)),
        ("reshape", "reshape", [[4, 6]], lambda a: a.reshape(4, 6)),
        ("reshape-infer", "reshape", [[2, -1]], lambda a: a.reshape(2, -1)),
        ("transpose", "transpose", [0, 2], lambda a: a.transpose(0, 2)),
        ("transpose-neg", "transpose", [-1, -2], lambda a: a.transpose(-1, -2)),
        ("permute", "permute", [[2, 0, 1]], lambda a: a.permute(2, 0, 1)),
        ("unsqueeze", "unsqueeze", [1], lambda a: a.unsqueeze(1)),
        ("unsqueeze-neg", "unsqueeze", [-1], lambda a: a.unsqueeze(-1)),
        ("flatten", "flatten", [], lambda a: a.flatten()),
        ("flatten-start", "flatten", [1], lambda a: a.flatten(1)),
        ("flatten-range", "flatten", [0, 1], lambda a: a.flatten(0, 1)),
        ("narrow", "narrow", [2, 1, 2], lambda a: a.narrow(2, 1, 2)),
        ("slice-step", "slice", [2, 0, 4, 2], lambda a: a[:, :, 0:4:2]),
        ("slice-start-only", "slice", [1, 1], lambda a: a[:, 1:]),
        ("slice-negative-start", "slice", [2, -3, UNDEF, 2], lambda a: a[:, :, -3::2]),
        ("slice-end", "slice", [0, UNDEF, 1], lambda a: a[:1]),
        ("slice-end-beyond", "slice", [1, 1, 100], lambda a: a[:, 1:100]),
        ("triu", "triu", [], lambda a: a.triu()),
        ("triu-k1", "triu", [1], lambda a: a.triu(1)),
        ("tril", "tril", [], lambda a: a.tril()),
        ("tril-kneg", "tril", [-1], lambda a: a.tril(-1)),
        ("repeat", "repeat", [[2, 1, 3]], lambda a: a.repeat(2, 1, 3)),
        ("repeat-more-dims", "repeat", [[2, 1, 1, 1]], lambda a: a.repeat(2, 1, 1, 1)),
        ("split-size", "split", [2, 2], lambda a: a.split(2, 2)),
        ("split-uneven", "split", [2, 1], lambda a: a.split(2, 1)),
        ("split-sizes", "split", [[1, 3], 2], lambda a: a.split([1, 3], 2)),
        ("split-default-dim", "split", [1], lambda a: a.split(1)),
        ("chunk", "chunk", [2, 2], lambda a: a.chunk(2, 2)),
        ("chunk-uneven", "chunk", [2, 1], lambda a: a.chunk(2, 1)),
        ("chunk-default-dim", "chunk", [2], lambda a: a.chunk(2)),
    ]
    for name, op, args, fn in cases:
        b.add(f"shape/{name}", "method", op, args, (lambda f: lambda t: f(t["x"]))(fn), {"x": x}, self_="x", grad=("x",))
    b.add("shape/reshape-noncontiguous", "method", "reshape", [[-1]], lambda t: t["x"].t().reshape(-1), {"x": m}, self_="x", grad=("x",),
          pre=[["transpose", [0, 1]]])
    b.add("shape/view-after-contiguous", "method", "view", [[5, 4]], lambda t: t["x"].t().contiguous().view(5, 4), {"x": m}, self_="x", grad=("x",),
          pre=[["transpose", [0, 1]], ["contiguous", []]])
    b.add("shape/sum-of-transposed", "method", "sum", [1], lambda t: t["x"].t().sum(1), {"x": m}, self_="x", grad=("x",), pre=[["transpose", [0, 1]]])
    b.add("shape/matmul-of-transposed", "method", "matmul", [T("y")], lambda t: t["x"].t() @ t["y"], {"x": m, "y": r.randn(4, 2)}, self_="x", grad=("x", "y"),
          pre=[["transpose", [0, 1]]])
    b.add("shape/exp-of-sliced", "method", "exp", [], lambda t: t["x"][:, 1:5:2].exp(), {"x": m}, self_="x", grad=("x",), pre=[["slice", [1, 1, 5, 2]]])
    b.add("shape/reshape-of-expanded", "method", "reshape", [[3, 4]], lambda t: t["x"].expand(3, 4).reshape(3, 4), {"x": r.randn(1, 4)}, self_="x", grad=("x",),
          pre=[["expand", [[3, 4]]]])
    b.add("shape/squeeze-all", "method", "squeeze", [], lambda t: t["x"].squeeze(), {"x": r.randn(1, 3, 1, 2)}, self_="x", grad=("x",))
    b.add("shape/squeeze-dim", "method", "squeeze", [2], lambda t: t["x"].squeeze(2), {"x": r.randn(1, 3, 1, 2)}, self_="x", grad=("x",))
    b.add("shape/squeeze-non-one", "method", "squeeze", [1], lambda t: t["x"].squeeze(1), {"x": r.randn(1, 3, 1, 2)}, self_="x")
    b.add("shape/expand", "method", "expand", [[3, 4]], lambda t: t["x"].expand(3, 4), {"x": r.randn(1, 4)}, self_="x", grad=("x",))
    b.add("shape/expand-new-dims", "method", "expand", [[2, -1, 4]], lambda t: t["x"].expand(2, -1, 4), {"x": r.randn(3, 1)}, self_="x", grad=("x",))
    b.add("shape/triu-batched", "method", "triu", [], lambda t: t["x"].triu(), {"x": r.randn(2, 3, 3)}, self_="x", grad=("x",))
    b.add("shape/tril-rect", "method", "tril", [1], lambda t: t["x"].tril(1), {"x": m}, self_="x", grad=("x",))
    b.add("shape/triu-bool", "method", "triu", [], lambda t: t["x"].triu(), {"x": torch.ones(3, 3, dtype=torch.bool)}, self_="x")
    # index ops
    src = r.randn(4, 5)
    b.add("index/indexSelect-dim0", "method", "indexSelect", [0, T("i")], lambda t: t["x"].index_select(0, t["i"]), {"x": src, "i": torch.tensor([2, 0, 2])}, self_="x", grad=("x",))
    b.add("index/indexSelect-dim1", "method", "indexSelect", [1, T("i")], lambda t: t["x"].index_select(1, t["i"]), {"x": src, "i": torch.tensor([4, 1])}, self_="x", grad=("x",))
    gi = r.randint(0, 5, 4, 3)
    b.add("index/gather-dim1", "method", "gather", [1, T("i")], lambda t: t["x"].gather(1, t["i"]), {"x": src, "i": gi}, self_="x", grad=("x",))
    gi0 = r.randint(0, 4, 2, 5)
    b.add("index/gather-dim0", "method", "gather", [0, T("i")], lambda t: t["x"].gather(0, t["i"]), {"x": src, "i": gi0}, self_="x", grad=("x",))
    # scatter: unique indices per row, so the result is deterministic
    si = torch.stack([r.perm(5)[:3] for _ in range(4)])
    b.add("index/scatter-src", "method", "scatter", [1, T("i"), T("s")], lambda t: t["x"].scatter(1, t["i"], t["s"]), {"x": src, "i": si, "s": r.randn(4, 3)}, self_="x", grad=("x", "s"))
    b.add("index/scatter-value", "method", "scatter", [1, T("i"), 5.5], lambda t: t["x"].scatter(1, t["i"], 5.5), {"x": src, "i": si}, self_="x", grad=("x",))
    si0 = torch.stack([r.perm(4)[:2] for _ in range(5)], dim=1)
    b.add("index/scatter-dim0", "method", "scatter", [0, T("i"), T("s")], lambda t: t["x"].scatter(0, t["i"], t["s"]), {"x": src, "i": si0, "s": r.randn(2, 5)}, self_="x", grad=("x", "s"))
    mask = r.bool(4, 5)
    b.add("index/maskedFill", "method", "maskedFill", [T("m"), 0.5], lambda t: t["x"].masked_fill(t["m"], 0.5), {"x": src, "m": mask}, self_="x", grad=("x",))
    b.add("index/maskedFill-neginf-broadcast", "method", "maskedFill", [T("m"), NUM(-INF)], lambda t: t["x"].masked_fill(t["m"], -INF), {"x": src, "m": mask[0]}, self_="x", grad=("x",))
    b.add("index/maskedFill-causal", "method", "maskedFill", [T("m"), NUM(-INF)], lambda t: t["x"].masked_fill(t["m"], -INF),
          {"x": r.randn(2, 3, 3), "m": torch.ones(3, 3, dtype=torch.bool).triu(1)}, self_="x", grad=("x",))
    # cat / stack
    a, c = r.randn(2, 3), r.randn(2, 1)
    b.add("join/cat-dim1", "torch", "cat", [[T("a"), T("c")], 1], lambda t: torch.cat([t["a"], t["c"]], 1), {"a": a, "c": c}, grad=("a", "c"))
    b.add("join/cat-default", "torch", "cat", [[T("a"), T("b"), T("a")]], lambda t: torch.cat([t["a"], t["b"], t["a"]]), {"a": a, "b": r.randn(1, 3)}, grad=("a", "b"))
    b.add("join/cat-neg-dim", "torch", "cat", [[T("a"), T("c")], -1], lambda t: torch.cat([t["a"], t["c"]], -1), {"a": a, "c": c}, grad=("a", "c"))
    b.add("join/stack", "torch", "stack", [[T("a"), T("b")]], lambda t: torch.stack([t["a"], t["b"]]), {"a": a, "b": r.randn(2, 3)}, grad=("a", "b"))
    b.add("join/stack-last", "torch", "stack", [[T("a"), T("b"), T("a")], -1], lambda t: torch.stack([t["a"], t["b"], t["a"]], -1), {"a": a, "b": r.randn(2, 3)}, grad=("a", "b"))
    b.add("join/stack-mid", "torch", "stack", [[T("a"), T("b")], 1], lambda t: torch.stack([t["a"], t["b"]], 1), {"a": a, "b": r.randn(2, 3)}, grad=("a", "b"))
    b.add("join/cat-int64", "torch", "cat", [[T("a"), T("b")]], lambda t: torch.cat([t["a"], t["b"]]), {"a": torch.tensor([1, 2]), "b": torch.tensor([3])})


def inplace(b: CaseBook) -> None:
    r = b.rng
    x = r.randn(3, 4)
    y = r.randn(3, 4)
    row = r.randn(4)
    cases = [
        ("add_", [T("y")], {"y": y}, lambda t: t["x"].add_(t["y"])),
        ("add_-alpha", [T("y"), {"alpha": -0.5}], {"y": y}, lambda t: t["x"].add_(t["y"], alpha=-0.5)),
        ("add_-scalar", [2], {}, lambda t: t["x"].add_(2)),
        ("add_-broadcast", [T("y")], {"y": row}, lambda t: t["x"].add_(t["y"])),
        ("sub_", [T("y")], {"y": y}, lambda t: t["x"].sub_(t["y"])),
        ("sub_-alpha", [T("y"), {"alpha": 3}], {"y": row}, lambda t: t["x"].sub_(t["y"], alpha=3)),
        ("mul_", [T("y")], {"y": y}, lambda t: t["x"].mul_(t["y"])),
        ("mul_-scalar", [0.5], {}, lambda t: t["x"].mul_(0.5)),
        ("div_", [T("y")], {"y": y.abs() + 0.5}, lambda t: t["x"].div_(t["y"])),
        ("div_-scalar", [4], {}, lambda t: t["x"].div_(4)),
        ("copy_", [T("y")], {"y": y}, lambda t: t["x"].copy_(t["y"])),
        ("copy_-broadcast", [T("y")], {"y": row}, lambda t: t["x"].copy_(t["y"])),
        ("copy_-cast", [T("y")], {"y": torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)}, lambda t: t["x"].copy_(t["y"])),
        ("zero_", [], {}, lambda t: t["x"].zero_()),
        ("fill_", [1.5], {}, lambda t: t["x"].fill_(1.5)),
        ("clamp_", [-0.5, 0.5], {}, lambda t: t["x"].clamp_(-0.5, 0.5)),
        ("addcmul_", [T("a"), T("c"), {"value": 0.3}], {"a": y, "c": row}, lambda t: t["x"].addcmul_(t["a"], t["c"], value=0.3)),
        ("addcmul_-default", [T("a"), T("c")], {"a": y, "c": row}, lambda t: t["x"].addcmul_(t["a"], t["c"])),
        ("addcdiv_", [T("a"), T("c"), {"value": -0.1}], {"a": y, "c": row.abs() + 0.5}, lambda t: t["x"].addcdiv_(t["a"], t["c"], value=-0.1)),
        ("lerp_", [T("e"), 0.25], {"e": y}, lambda t: t["x"].lerp_(t["e"], 0.25)),
    ]
    for name, args, extra, fn in cases:
        b.add(f"inplace/{name}", "method", name.split("-")[0], args, fn, {"x": x, **extra}, self_="x", inplace=True)
    b.add("inplace/add_-int64", "method", "add_", [T("y")], lambda t: t["x"].add_(t["y"]), {"x": torch.tensor([1, 2]), "y": torch.tensor([10, 20])}, self_="x", inplace=True)


def inplace_autograd(b: CaseBook) -> None:
    """In-place ops on a non-leaf inside a graph: gradients flow through them to the leaf."""
    r = b.rng
    x = r.randn(3, 4)
    y = r.away_from_zero(3, 4)
    row = r.randn(4)
    pre = [["mul", [1]]]
    cases = [
        ("add_", [T("y"), {"alpha": -0.5}], {"y": y}, lambda t: (t["x"] * 1).add_(t["y"], alpha=-0.5), ("x", "y")),
        ("sub_", [T("y")], {"y": row}, lambda t: (t["x"] * 1).sub_(t["y"]), ("x", "y")),
        ("mul_", [T("y")], {"y": y}, lambda t: (t["x"] * 1).mul_(t["y"]), ("x", "y")),
        ("mul_-scalar", [3], {}, lambda t: (t["x"] * 1).mul_(3), ("x",)),
        ("div_", [T("y")], {"y": y}, lambda t: (t["x"] * 1).div_(t["y"]), ("x", "y")),
        ("clamp_", [-0.4, 0.6], {}, lambda t: (t["x"] * 1).clamp_(-0.4, 0.6), ("x",)),
        ("copy_", [T("y")], {"y": row}, lambda t: (t["x"] * 1).copy_(t["y"]), ("x", "y")),
        ("addcmul_", [T("a"), T("c"), {"value": 0.5}], {"a": y, "c": row}, lambda t: (t["x"] * 1).addcmul_(t["a"], t["c"], value=0.5), ("x", "a", "c")),
        ("addcdiv_", [T("a"), T("c"), {"value": 2}], {"a": row, "c": y}, lambda t: (t["x"] * 1).addcdiv_(t["a"], t["c"], value=2), ("x", "a", "c")),
        ("lerp_", [T("e"), 0.3], {"e": y}, lambda t: (t["x"] * 1).lerp_(t["e"], 0.3), ("x", "e")),
        ("zero_", [], {}, lambda t: (t["x"] * 1).zero_(), ("x",)),
        ("fill_", [2], {}, lambda t: (t["x"] * 1).fill_(2), ("x",)),
    ]
    for name, args, extra, fn, grad in cases:
        b.add(f"inplace-autograd/{name}", "method", name.split("-")[0], args, fn, {"x": x, **extra}, self_="x",
              inplace=True, grad=grad, pre=pre)


def functional(b: CaseBook) -> None:
    r = b.rng
    x = r.randn(3, 6)
    x3 = r.randn(2, 3, 8)
    fn1 = [
        ("relu", [T("x")], lambda t: F.relu(t["x"])),
        ("gelu", [T("x")], lambda t: F.gelu(t["x"])),
        ("gelu-none", [T("x"), {"approximate": "none"}], lambda t: F.gelu(t["x"], approximate="none")),
        ("gelu-tanh", [T("x"), {"approximate": "tanh"}], lambda t: F.gelu(t["x"], approximate="tanh")),
        ("silu", [T("x")], lambda t: F.silu(t["x"])),
        ("softmax-dim1", [T("x"), 1], lambda t: F.softmax(t["x"], 1)),
        ("softmax-dim0", [T("x"), 0], lambda t: F.softmax(t["x"], 0)),
        ("logSoftmax", [T("x"), -1], lambda t: F.log_softmax(t["x"], -1)),
        ("dropout-p0", [T("x"), {"p": 0}], lambda t: F.dropout(t["x"], p=0.0)),
        ("dropout-eval", [T("x"), {"p": 0.5, "training": False}], lambda t: F.dropout(t["x"], p=0.5, training=False)),
    ]
    for name, args, fn in fn1:
        b.add(f"F/{name}", "F", name.split("-")[0], args, fn, {"x": x}, grad=("x",))
    b.add("F/softmax-large", "F", "softmax", [T("x"), -1], lambda t: F.softmax(t["x"], -1), {"x": x * 80}, grad=("x",))
    b.add("F/softmax-3d", "F", "softmax", [T("x"), -1], lambda t: F.softmax(t["x"], -1), {"x": x3}, grad=("x",))
    b.add("F/logSoftmax-3d-dim1", "F", "logSoftmax", [T("x"), 1], lambda t: F.log_softmax(t["x"], 1), {"x": x3}, grad=("x",))
    b.add("F/softmax-neginf", "F", "softmax", [T("x"), -1], lambda t: F.softmax(t["x"], -1),
          {"x": r.randn(3, 3).masked_fill(torch.ones(3, 3, dtype=torch.bool).triu(1), -INF)})
    b.add("F/relu-bf16", "F", "relu", [T("x")], lambda t: F.relu(t["x"]), {"x": x.bfloat16()})
    b.add("F/gelu-f64", "F", "gelu", [T("x")], lambda t: F.gelu(t["x"]), {"x": x.double()}, grad=("x",))
    # layer norm / rms norm
    w, bias = r.randn(8) * 0.5 + 1, r.randn(8) * 0.1
    b.add("F/layerNorm-affine", "F", "layerNorm", [T("x"), [8], {"weight": T("w"), "bias": T("b")}],
          lambda t: F.layer_norm(t["x"], [8], t["w"], t["b"]), {"x": x3, "w": w, "b": bias}, grad=("x", "w", "b"))
    b.add("F/layerNorm-plain-eps", "F", "layerNorm", [T("x"), [8], {"eps": 1e-3}],
          lambda t: F.layer_norm(t["x"], [8], eps=1e-3), {"x": x3}, grad=("x",))
    b.add("F/layerNorm-weight-only", "F", "layerNorm", [T("x"), [8], {"weight": T("w")}],
          lambda t: F.layer_norm(t["x"], [8], t["w"]), {"x": x3, "w": w}, grad=("x", "w"))
    b.add("F/layerNorm-two-dims", "F", "layerNorm", [T("x"), [3, 8]],
          lambda t: F.layer_norm(t["x"], [3, 8]), {"x": x3}, grad=("x",))
    b.add("F/rmsNorm-weight", "F", "rmsNorm", [T("x"), [8], {"weight": T("w"), "eps": 1e-6}],
          lambda t: F.rms_norm(t["x"], [8], t["w"], eps=1e-6), {"x": x3, "w": w}, grad=("x", "w"))
    b.add("F/rmsNorm-plain", "F", "rmsNorm", [T("x"), [8]], lambda t: F.rms_norm(t["x"], [8], eps=torch.finfo(torch.float32).eps),
          {"x": x3}, grad=("x",))
    b.add("F/rmsNorm-eps-large", "F", "rmsNorm", [T("x"), [8], {"eps": 0.5}], lambda t: F.rms_norm(t["x"], [8], eps=0.5), {"x": x3 * 0.3}, grad=("x",))
    # embedding / linear
    ew = r.randn(10, 4)
    ids = torch.tensor([[1, 3, 3], [9, 0, 1]])
    b.add("F/embedding", "F", "embedding", [T("i"), T("w")], lambda t: F.embedding(t["i"], t["w"]), {"i": ids, "w": ew}, grad=("w",))
    b.add("F/embedding-1d", "F", "embedding", [T("i"), T("w")], lambda t: F.embedding(t["i"], t["w"]), {"i": torch.tensor([4, 4, 2]), "w": ew}, grad=("w",))
    lw, lb = r.randn(5, 8), r.randn(5)
    b.add("F/linear", "F", "linear", [T("x"), T("w"), T("b")], lambda t: F.linear(t["x"], t["w"], t["b"]), {"x": x3, "w": lw, "b": lb}, grad=("x", "w", "b"))
    b.add("F/linear-nobias", "F", "linear", [T("x"), T("w")], lambda t: F.linear(t["x"], t["w"]), {"x": x3, "w": lw}, grad=("x", "w"))
    b.add("F/linear-2d", "F", "linear", [T("x"), T("w"), T("b")], lambda t: F.linear(t["x"], t["w"], t["b"]), {"x": x3[0], "w": lw, "b": lb}, grad=("x", "w", "b"))
    # cross entropy
    logits = r.randn(6, 5) * 2
    tgt = torch.tensor([0, 4, 2, 2, 1, 3])
    tgt_ign = torch.tensor([0, -100, 2, -100, 1, 3])
    ce = [
        ("mean", [], {}, tgt),
        ("sum", [{"reduction": "sum"}], {"reduction": "sum"}, tgt),
        ("none", [{"reduction": "none"}], {"reduction": "none"}, tgt),
        ("ignore-default-mean", [], {}, tgt_ign),
        ("ignore-default-sum", [{"reduction": "sum"}], {"reduction": "sum"}, tgt_ign),
        ("ignore-default-none", [{"reduction": "none"}], {"reduction": "none"}, tgt_ign),
        ("ignoreIndex-2", [{"ignoreIndex": 2}], {"ignore_index": 2}, tgt),
        ("labelSmoothing", [{"labelSmoothing": 0.1}], {"label_smoothing": 0.1}, tgt),
        ("labelSmoothing-ignore", [{"labelSmoothing": 0.2, "reduction": "sum"}], {"label_smoothing": 0.2, "reduction": "sum"}, tgt_ign),
    ]
    for name, opts, kw, target in ce:
        b.add(f"F/crossEntropy-{name}", "F", "crossEntropy", [T("x"), T("t"), *opts],
              (lambda k: lambda t: F.cross_entropy(t["x"], t["t"], **k))(kw), {"x": logits, "t": target}, grad=("x",))
    # scaled dot product attention: (B, H, T, D)
    q, k, v = r.randn(2, 2, 5, 4), r.randn(2, 2, 5, 4), r.randn(2, 2, 5, 4)
    qkv = {"q": q, "k": k, "v": v}
    g3 = ("q", "k", "v")
    sd = lambda **kw: lambda t: F.scaled_dot_product_attention(t["q"], t["k"], t["v"], **kw)  # noqa: E731
    b.add("F/sdpa-plain", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v")], sd(), qkv, grad=g3)
    b.add("F/sdpa-causal", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v"), {"isCausal": True}], sd(is_causal=True), qkv, grad=g3)
    b.add("F/sdpa-scale", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v"), {"scale": 0.3}], sd(scale=0.3), qkv, grad=g3)
    b.add("F/sdpa-causal-scale", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v"), {"isCausal": True, "scale": 1.5}], sd(is_causal=True, scale=1.5), qkv, grad=g3)
    bmask = torch.ones(5, 5, dtype=torch.bool).tril()
    bmask[3, 0] = False
    b.add("F/sdpa-bool-mask", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v"), {"attnMask": T("m")}],
          lambda t: F.scaled_dot_product_attention(t["q"], t["k"], t["v"], attn_mask=t["m"]), {**qkv, "m": bmask}, grad=g3)
    fmask = r.randn(2, 1, 5, 5)
    b.add("F/sdpa-float-mask", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v"), {"attnMask": T("m")}],
          lambda t: F.scaled_dot_product_attention(t["q"], t["k"], t["v"], attn_mask=t["m"]), {**qkv, "m": fmask}, grad=g3 + ("m",))
    b.add("F/sdpa-cross-lengths", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v")], sd(),
          {"q": r.randn(2, 2, 3, 4), "k": r.randn(2, 2, 6, 4), "v": r.randn(2, 2, 6, 3)}, grad=g3)
    b.add("F/sdpa-3d", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v"), {"isCausal": True}], sd(is_causal=True),
          {"q": r.randn(3, 4, 2), "k": r.randn(3, 4, 2), "v": r.randn(3, 4, 2)}, grad=g3)
    b.add("F/sdpa-dropout0", "F", "scaledDotProductAttention", [T("q"), T("k"), T("v"), {"dropoutP": 0}], sd(dropout_p=0.0), qkv, grad=g3)


def main() -> None:
    torch.manual_seed(0)
    book = CaseBook(seed=20240601)
    for section in (factories, unary, binary, promotion, conversions, matmul, reductions, shapes, inplace, inplace_autograd, functional):
        section(book)
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "..", "test", "golden", "ops.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    doc = {"generator": "scripts/golden/make_ops.py", "torch": torch.__version__.split("+")[0], "cases": book.cases}
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    os.replace(tmp, out)
    print(f"wrote {len(book.cases)} cases to {os.path.relpath(out)} ({os.path.getsize(out) // 1024} KB)")


if __name__ == "__main__":
    main()
