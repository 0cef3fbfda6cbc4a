#!/usr/bin/env python3
"""PyTorch eager reference for `innerloop bench`.

Runs the same GPT-2 training step as lib/bench/worker.ts: learned positions, pre-LayerNorm blocks,
causal scaled-dot-product attention, tanh-GELU MLP, output layer tied to the token embedding;
cross-entropy in float32; backward; gradient clipping to norm 1.0; AdamW (fused=True, PyTorch's
fastest eager setting) with weight decay on the matrices only; zero_grad(set_to_none=True).

Usage: torch_step.py SPEC.json   (the spec is written by lib/bench/spec.ts)
Prints one JSON object on the last line of stdout; messages go to stderr.
"""
import gc
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def log(*a):
    print("[torch]", *a, file=sys.stderr, flush=True)


def rss_kb():
    """Current resident set size in KiB (from /proc, like the Node side's process.memoryUsage().rss)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return None


def max_rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# --------------------------------------------------------------------------- model
class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["nEmbd"]
        self.n_head = c["nHead"]
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, C))
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        C = c["nEmbd"]
        self.wte = nn.Embedding(c["vocabSize"], C)
        self.wpe = nn.Embedding(c["nPositions"], C)
        self.h = nn.ModuleList([Block(c) for _ in range(c["nLayer"])])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        # GPT-2 initialisation (as lib/models/gpt2.ts): N(0, 0.02), residual projections 0.02/sqrt(2L).
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "ln_" in name:
                nn.init.ones_(p)
            elif name.endswith("proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c["nLayer"]))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe.weight[:T]
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied output layer
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))

    def load_hf(self, path):
        """Loads a Hugging Face GPT-2 state dict (Conv1D weights [in, out]) written by innerloop."""
        sd = read_safetensors(path)
        own = {}
        for name, t in sd.items():
            n = name[len("transformer."):] if name.startswith("transformer.") else name
            n = n.replace("attn.c_attn", "c_attn").replace("attn.c_proj", "attn_proj")
            n = n.replace("mlp.c_fc", "c_fc").replace("mlp.c_proj", "mlp_proj")
            if n.endswith(".weight") and any(k in n for k in ("c_attn", "attn_proj", "c_fc", "mlp_proj")):
                t = t.t().contiguous()
            own[n] = t
        missing, unexpected = self.load_state_dict(own, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"weights {path}: missing {missing}, unexpected {unexpected}")


def read_safetensors(path):
    """float32 tensors of a safetensors file (read directly: the GPU machines may lack the package)."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- the step
def make_step(model, opt, params, clip, autocast_bf16, device):
    def forward_loss(x, y):
        if autocast_bf16:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                return model(x, y)
        return model(x, y)

    def step(x, y):
        # The loss and the gradient norm are read back every step, as a training loop that logs
        # them does (and as innerloop's trainer, whose step the other side times, does).
        loss = forward_loss(x, y)
        loss.backward()
        value = loss.item()
        torch.nn.utils.clip_grad_norm_(params, clip).item()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return value

    return step, forward_loss


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def op_overhead(device):
    """Microseconds per call of small ops from Python (the per-op cost a Python model pays)."""
    a = torch.ones(1, device=device)
    b = torch.ones(1, device=device)
    x = torch.randn(8, 64, device=device)
    w = torch.randn(64, 64, device=device)
    out = {}
    for name, fn in (("add", lambda: a + b), ("add_", lambda: a.add_(b)), ("matmul8x64x64", lambda: x @ w), ("view", lambda: x.view(64, 8))):
        best = float("inf")
        for _ in range(3):
            n = 2000
            sync(device)
            t0 = time.perf_counter_ns()
            for _ in range(n):
                fn()
            sync(device)
            best = min(best, (time.perf_counter_ns() - t0) / 1e3 / n)
        out[name] = best
    return out


def count_calls(step_fn, x, y):
    """Python -> C++ torch calls made by one step (TorchFunctionMode sees every torch function and
    tensor method called from Python), the counterpart of the JS -> native calls counted on the
    innerloop side."""
    from torch.overrides import TorchFunctionMode

    counts = {}

    class Counter(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__qualname__", None) or getattr(func, "__name__", str(func))
            counts[name] = counts.get(name, 0) + 1
            return func(*args, **(kwargs or {}))

    with Counter():
        step_fn(x, y)
    return sum(counts.values()), dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def main():
    spec = json.load(open(sys.argv[1]))
    c = spec["model"]
    device = spec["device"]
    cuda = device.startswith("cuda")
    if spec["threads"] > 0:  # 0: torch's default, what a PyTorch script runs with
        torch.set_num_threads(spec["threads"])
    if spec.get("tf32"):
        torch.set_float32_matmul_precision("high")
    autocast_bf16 = spec["precision"] == "bf16-autocast"
    o = spec["optim"]

    rss_start = rss_kb()
    with open(spec["tokensFile"], "rb") as f:
        raw = bytearray(f.read())
    tokens = torch.frombuffer(raw, dtype=torch.int32).reshape(spec["nBatches"], spec["maxBatch"], c["seqLen"] + 1)
    result = {"side": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
              "deviceName": torch.cuda.get_device_name(0) if cuda else None}
    result["rssAtStartKB"] = rss_start

    for batch in spec["batchCandidates"]:
        try:
            torch.manual_seed(spec["seed"])
            model = GPT(c)
            if spec.get("weightsFile"):
                model.load_hf(spec["weightsFile"])
            model.to(device)
            decay = [p for p in model.parameters() if p.dim() >= 2]
            no_decay = [p for p in model.parameters() if p.dim() < 2]
            opt = torch.optim.AdamW(
                [{"params": decay, "weight_decay": o["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
                lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], fused=True)
            params = list(model.parameters())
            step, forward_loss = make_step(model, opt, params, o["clip"], autocast_bf16, device)
            batches = [(tokens[i, :batch, :-1].to(torch.int64).contiguous().to(device),
                        tokens[i, :batch, 1:].to(torch.int64).contiguous().to(device))
                       for i in range(spec["nBatches"])]
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            rss_ready = rss_kb()
            losses = []
            times = []
            cpu_times = []
            total = spec["warmup"] + spec["reps"]
            for i in range(total):
                x, y = batches[i % len(batches)]
                sync(device)
                c0 = time.process_time_ns()
                t0 = time.perf_counter_ns()
                loss = step(x, y)
                sync(device)
                t1 = time.perf_counter_ns()
                c1 = time.process_time_ns()
                losses.append(loss)
                if i >= spec["warmup"]:
                    times.append((t1 - t0) / 1e6)
                    cpu_times.append((c1 - c0) / 1e6)
            losses = [float(l) for l in losses]
            break
        except torch.cuda.OutOfMemoryError as e:
            log(f"batch {batch}: out of memory ({str(e).splitlines()[0]}); trying a smaller batch")
            model = opt = step = forward_loss = batches = params = decay = no_decay = None
            gc.collect()
            torch.cuda.empty_cache()
            batch = None
    if batch is None:
        raise SystemExit("every batch size ran out of memory")

    result.update({
        "config": {**c, "batch": batch, "precision": spec["precision"], "params": param_count(model),
                   "optimizer": "AdamW(fused=True)", "clip": o["clip"], "weightDecay": o["weightDecay"]},
        "stepMs": times,
        "medianMs": median(times),
        "cpuMs": cpu_times,
        "medianCpuMs": median(cpu_times),
        "losses": losses,
        "rssReadyKB": rss_ready,
        "rssAfterKB": rss_kb(),
        "maxRssKB": max_rss_kb(),
    })
    if cuda:
        result["cudaMaxAllocated"] = torch.cuda.max_memory_allocated()

    if spec.get("profile"):
        prof = {"forwardMs": [], "backwardMs": [], "clipMs": [], "optimMs": [], "zeroGradMs": []}
        for i in range(spec["reps"]):
            x, y = batches[i % len(batches)]
            marks = []
            sync(device); marks.append(time.perf_counter_ns())
            loss = forward_loss(x, y)
            sync(device); marks.append(time.perf_counter_ns())
            loss.backward()
            sync(device); marks.append(time.perf_counter_ns())
            torch.nn.utils.clip_grad_norm_(params, o["clip"])
            sync(device); marks.append(time.perf_counter_ns())
            opt.step()
            sync(device); marks.append(time.perf_counter_ns())
            opt.zero_grad(set_to_none=True)
            sync(device); marks.append(time.perf_counter_ns())
            for k, name in enumerate(prof):
                prof[name].append((marks[k + 1] - marks[k]) / 1e6)
        result["profile"] = {k: median(v) for k, v in prof.items()}
        n, by = count_calls(step, *batches[0])
        result["profile"]["callsPerStep"] = n
        result["profile"]["callsByName"] = by
        result["profile"]["opOverheadUs"] = op_overhead(device)

    soak = spec.get("soakSteps", 0)
    if soak:
        x, y = batches[0]
        gc.collect()
        start = rss_kb()
        t0 = time.perf_counter()
        for i in range(soak):
            x, y = batches[i % len(batches)]
            step(x, y)
        sync(device)
        gc.collect()
        result["soak"] = {"steps": soak, "rssStartKB": start, "rssEndKB": rss_kb(), "seconds": time.perf_counter() - t0}

    print(json.dumps(result))


if __name__ == "__main__":
    main()
