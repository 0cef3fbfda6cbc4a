#!/usr/bin/env python3
"""Golden values for autograd scenarios and the CPU random generator, computed with PyTorch.

Writes test/golden/autograd.json. Each scenario is a small program that
test/autograd.test.ts repeats step by step with the innerloop API; the inputs and every
expected gradient come from here. The "rng" section records what PyTorch's CPU generator
produces after torch.manual_seed, which libtorch (the same library) must reproduce.

Run from the repository root:  python3 scripts/golden/make_autograd.py
"""
from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from goldenlib import Rng, spec  # noqa: E402

f64 = torch.float64


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.to(f64).requires_grad_(True)


def scenarios(r: Rng) -> dict:
    out: dict = {}

    # backward(gradient) on a non-scalar output: y = x * x * w
    x, w, g = r.randn(3, 4), r.randn(3, 4), r.randn(3, 4)
    xl = leaf(x)
    y = xl * xl * w.to(f64)
    y.backward(g.to(f64))
    out["backwardWithGradient"] = {"x": spec(x), "w": spec(w), "gradient": spec(g), "y": spec(y, torch.float32), "xGrad": spec(xl.grad, torch.float32)}

    # retainGraph: two backward passes through one graph accumulate into .grad
    x, w = r.randn(5), r.randn(5)
    xl = leaf(x)
    loss = (xl.tanh() * w.to(f64)).sum()
    loss.backward(retain_graph=True)
    once = xl.grad.clone()
    loss.backward()
    out["retainGraph"] = {"x": spec(x), "w": spec(w), "loss": spec(loss, torch.float32), "gradOnce": spec(once, torch.float32), "gradTwice": spec(xl.grad, torch.float32)}

    # retainGrad on a non-leaf: h = tanh(2x); loss = sum(h^2 * w)
    x, w = r.randn(2, 3), r.randn(2, 3)
    xl = leaf(x)
    h = (xl * 2).tanh()
    h.retain_grad()
    (h.pow(2) * w.to(f64)).sum().backward()
    out["retainGrad"] = {"x": spec(x), "w": spec(w), "hGrad": spec(h.grad, torch.float32), "xGrad": spec(xl.grad, torch.float32)}

    # autograd.grad with gradOutputs, two inputs: y = sin(x) * w (vector-Jacobian product)
    x, w, v = r.randn(4), r.randn(4), r.randn(4)
    xl, wl = leaf(x), leaf(w)
    y = xl.sin() * wl
    gx, gw = torch.autograd.grad(y, [xl, wl], grad_outputs=v.to(f64))
    out["gradWithGradOutputs"] = {"x": spec(x), "w": spec(w), "v": spec(v), "gx": spec(gx, torch.float32), "gw": spec(gw, torch.float32)}

    # double backward: f = sum(tanh(x)^3 * w); g = df/dx (createGraph); z = sum(g * v); dz/dx = H v
    x, w, v = r.randn(4), r.randn(4), r.randn(4)
    xl = leaf(x)
    f = (xl.tanh().pow(3) * w.to(f64)).sum()
    (gx,) = torch.autograd.grad(f, [xl], create_graph=True)
    z = (gx * v.to(f64)).sum()
    (hv,) = torch.autograd.grad(z, [xl], retain_graph=True)
    z.backward()
    out["doubleBackward"] = {"x": spec(x), "w": spec(w), "v": spec(v), "g": spec(gx, torch.float32), "hv": spec(hv, torch.float32), "xGrad": spec(xl.grad, torch.float32)}

    # double backward through matmul and softmax with two leaves: gradient penalty style
    a, b = r.randn(3, 4), r.randn(4, 2)
    al, bl = leaf(a), leaf(b)
    s = torch.softmax(al @ bl, dim=-1)
    f = (s * torch.arange(2, dtype=f64)).sum()
    (ga,) = torch.autograd.grad(f, [al], create_graph=True)
    penalty = ga.pow(2).sum()
    penalty.backward()
    out["gradientPenalty"] = {"a": spec(a), "b": spec(b), "ga": spec(ga, torch.float32), "penalty": spec(penalty, torch.float32),
                              "aGrad": spec(al.grad, torch.float32), "bGrad": spec(bl.grad, torch.float32)}

    # detach stops the gradient: loss = sum(x * detach(x)) -> grad = detach(x)
    x = r.randn(3)
    xl = leaf(x)
    (xl * xl.detach()).sum().backward()
    out["detach"] = {"x": spec(x), "xGrad": spec(xl.grad, torch.float32)}
    return out


def rng() -> dict:
    out: dict = {}
    torch.manual_seed(42)
    out["seed42"] = {
        "randn5": spec(torch.randn(5)),
        "randn2x20": spec(torch.randn(2, 20)),
        "rand6": spec(torch.rand(6)),
        "randint": spec(torch.randint(0, 10, (8,))),
    }
    torch.manual_seed(7)
    out["seed7"] = {"randn5": spec(torch.randn(5)), "randnF64": spec(torch.randn(4, dtype=f64))}
    return out


def main() -> None:
    doc = {"generator": "scripts/golden/make_autograd.py", "torch": torch.__version__.split("+")[0],
           "scenarios": scenarios(Rng(777)), "rng": rng()}
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "test", "golden", "autograd.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
