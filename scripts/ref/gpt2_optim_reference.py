#!/usr/bin/env python3
"""Reference optimizer trajectories for innerloop's optimizers (test/optim.test.ts), from torch.optim.

Fixed initial parameters (a matrix, a bias-like vector, a 3-D tensor) and a fixed gradient for each
of STEPS steps. For every case below, torch.optim runs the steps in float32: optionally
torch.nn.utils.clip_grad_norm_ before each step, an optional per-step learning rate (a schedule),
and parameter groups (weight decay on parameters with two or more dimensions only, as nanoGPT).
The parameters after every step and the total gradient norms are stored.

Usage: python3 scripts/ref/gpt2_optim_reference.py [--out test/fixtures/optim]
Writes OUT/reference.json (cases, their settings, learning rates and norms) and
OUT/reference.safetensors: "init.{i}", "grad.{k}.{i}" and "{case}.step{k}.{i}" (float32).
"""
import argparse
import json
import math
import os

import torch
from safetensors.torch import save_file

SHAPES = [[5, 7], [7], [3, 4, 2]]
STEPS = 5


def warmup_cosine(step, lr, min_lr, warmup, decay):
    # The same formula as innerloop's warmupCosine (nanoGPT's get_lr).
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= decay:
        return min_lr
    ratio = (step - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


CASES = [
    {"name": "adamw_groups_clip", "optimizer": "AdamW", "groups": "decay",
     "hyper": {"lr": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weightDecay": 0.1},
     "clip": 1.0, "schedule": {"lr": 0.01, "minLr": 0.001, "warmupSteps": 2, "decaySteps": 5}},
    {"name": "adamw_plain", "optimizer": "AdamW", "groups": "one",
     "hyper": {"lr": 0.003, "beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "weightDecay": 0.01},
     "clip": None, "schedule": None},
    {"name": "sgd_momentum", "optimizer": "SGD", "groups": "decay",
     "hyper": {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "nesterov": False, "weightDecay": 0.01},
     "clip": 0.5, "schedule": None},
    {"name": "sgd_nesterov", "optimizer": "SGD", "groups": "one",
     "hyper": {"lr": 0.02, "momentum": 0.8, "dampening": 0.0, "nesterov": True, "weightDecay": 0.0},
     "clip": None, "schedule": {"lr": 0.02, "minLr": 0.002, "warmupSteps": 0, "decaySteps": 4}},
]


def make_optimizer(case, params):
    h = case["hyper"]
    if case["groups"] == "decay":
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": h["weightDecay"]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params, "weight_decay": h["weightDecay"]}]
    if case["optimizer"] == "AdamW":
        return torch.optim.AdamW(groups, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"], foreach=False)
    return torch.optim.SGD(groups, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                           nesterov=h["nesterov"], foreach=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/fixtures/optim")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    init = [torch.randn(s, generator=g) for s in SHAPES]
    grads = [[torch.randn(s, generator=g) * (0.5 + k) for s in SHAPES] for k in range(STEPS)]

    tensors = {}
    for i, t in enumerate(init):
        tensors[f"init.{i}"] = t.clone()
    for k in range(STEPS):
        for i, t in enumerate(grads[k]):
            tensors[f"grad.{k}.{i}"] = t.clone()

    cases_out = []
    for case in CASES:
        params = [torch.nn.Parameter(t.clone()) for t in init]
        opt = make_optimizer(case, params)
        lrs, norms = [], []
        for k in range(STEPS):
            for p, gr in zip(params, grads[k]):
                p.grad = gr.clone()
            if case["clip"] is not None:
                norms.append(torch.nn.utils.clip_grad_norm_(params, case["clip"], foreach=False).item())
            if case["schedule"] is not None:
                s = case["schedule"]
                lr = warmup_cosine(k, s["lr"], s["minLr"], s["warmupSteps"], s["decaySteps"])
                for group in opt.param_groups:
                    group["lr"] = lr
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            for i, p in enumerate(params):
                tensors[f"{case['name']}.step{k}.{i}"] = p.detach().clone()
        cases_out.append({**case, "lrs": lrs, "norms": norms})

    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "reference.safetensors"))
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump({"shapes": SHAPES, "steps": STEPS, "cases": cases_out}, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(CASES)} cases x {STEPS} steps")


if __name__ == "__main__":
    main()
