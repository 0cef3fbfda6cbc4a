#!/usr/bin/env python3
"""Independent reference for `innerloop analyze` (see docs/analysis.md).

Makes a small random Hugging Face GPT-2 (odd sizes; LayerNorm weights and biases
perturbed away from 1/0 so that they matter), saves it as a Hugging Face directory
(config.json + model.safetensors), writes a nanoGPT-style uint16 token file, and
computes every analysis.json field with transformers and PyTorch autograd in
float64 from the saved float32 weights.

Usage: python3 scripts/oracle/analysis_oracle.py --out DIR [--seed S]
Writes DIR/model/, DIR/tokens.bin and DIR/expected.json (with the settings used:
seqLen, batchSize, maxWindows).
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

# Sizes are deliberately odd: 3 heads of 12, a vocabulary of 97, T = 13, and
# N = 10 windows in batches of 4 so that the last batch holds 2.
VOCAB, N_EMBD, N_HEAD, N_LAYER, N_POS = 97, 36, 3, 3, 32
SEQ_LEN, BATCH, MAX_WINDOWS, WINDOWS_IN_FILE = 13, 4, 10, 12
TOPK, BUCKETS = 8, 4


def make_model(seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_positions=N_POS, n_embd=N_EMBD, n_layer=N_LAYER, n_head=N_HEAD,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        # Non-zero dropout: the analysis must run in eval mode to agree.
        resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
        tie_word_embeddings=True, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1,
    )
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif ".ln_" in name and name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif name.endswith("wte.weight"):
                p.copy_(0.3 * torch.randn_like(p))
            elif name.endswith("wpe.weight"):
                p.copy_(0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
        # A few large embedding coordinates so that the top-k activations are
        # unambiguous (massive-activation style outliers).
        model.transformer.wte.weight[:, 7] += 2.0
    return model


def make_tokens(seed):
    rng = np.random.default_rng(seed)
    # Zipf-like unigram distribution so that frequency buckets are meaningful.
    p = 1.0 / (np.arange(VOCAB) + 1.0)
    p /= p.sum()
    n = WINDOWS_IN_FILE * (SEQ_LEN + 1) + 5
    return rng.choice(VOCAB, size=n, p=p).astype(np.uint16)


def fit_power_law(norms):
    """OLS of log(norm) on log(position) over 1-based positions 2..T."""
    T = len(norms)
    if T < 3:
        return None
    x = np.log(np.arange(2, T + 1, dtype=np.float64))
    y = np.log(np.asarray(norms[1:], dtype=np.float64))
    xm, ym = x.mean(), y.mean()
    sxx = ((x - xm) ** 2).sum()
    sxy = ((x - xm) * (y - ym)).sum()
    slope = sxy / sxx
    intercept = ym - slope * xm
    resid = y - (intercept + slope * x)
    sst = ((y - ym) ** 2).sum()
    r2 = 1.0 - (resid ** 2).sum() / sst if sst > 0 else 1.0
    return {"slope": slope, "intercept": intercept, "r2": r2, "firstPosition": 2, "lastPosition": T}


def cos(a, b):
    num = (a * b).sum(-1)
    den = a.norm(dim=-1) * b.norm(dim=-1)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


def analyse(model, tokens):
    L, T, D, H = N_LAYER, SEQ_LEN, N_EMBD, N_HEAD
    model = model.double().eval()
    N = min(MAX_WINDOWS, len(tokens) // (T + 1))
    win = torch.tensor(tokens[: N * (T + 1)].astype(np.int64)).view(N, T + 1)
    ids_all, tgt_all = win[:, :-1], win[:, 1:]

    blocks = model.transformer.h
    captured = {}

    def pre_hook(mod, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        h.retain_grad()
        captured["h0"] = h

    def post_hook(l):
        def fn(mod, args, kwargs, out):
            h = out[0] if isinstance(out, tuple) else out
            h.retain_grad()
            captured[f"h{l + 1}"] = h
        return fn

    def part_hook(key):
        def fn(mod, args, out):
            captured[key] = (out[0] if isinstance(out, tuple) else out).detach()
        return fn

    hooks = [blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True)]
    for l, blk in enumerate(blocks):
        hooks.append(blk.register_forward_hook(post_hook(l), with_kwargs=True))
        hooks.append(blk.attn.register_forward_hook(part_hook(f"a{l}")))
        hooks.append(blk.mlp.register_forward_hook(part_hook(f"m{l}")))

    per = {k: [] for k in ["hn", "gn", "un", "uc", "an", "ac", "mn", "mc", "lens", "attn0", "absmean"]}
    top = [[] for _ in range(L + 1)]
    sum_ce = 0.0
    block_params = [[p for p in blk.parameters()] for blk in blocks]
    pgrad = [[torch.zeros_like(p) for p in ps] for ps in block_params]
    for start in range(0, N, BATCH):
        ids, tgt = ids_all[start:start + BATCH], tgt_all[start:start + BATCH]
        B = ids.shape[0]
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, output_attentions=True, use_cache=False)
        ce = F.cross_entropy(out.logits.reshape(-1, VOCAB), tgt.reshape(-1), reduction="sum")
        ce.backward()
        sum_ce += ce.item()
        for l in range(L):
            for acc, p in zip(pgrad[l], block_params[l]):
                acc += p.grad
        hs = [captured[f"h{l}"] for l in range(L + 1)]
        gs = [h.grad for h in hs]
        with torch.no_grad():
            per["hn"].append(torch.stack([h.norm(dim=-1) for h in hs]))          # (L+1, B, T)
            per["gn"].append(torch.stack([g.norm(dim=-1) for g in gs]))
            us = [hs[l + 1] - hs[l] for l in range(L)]
            per["un"].append(torch.stack([u.norm(dim=-1) for u in us]))
            per["uc"].append(torch.stack([cos(us[l], -gs[l]) for l in range(L)]))
            per["an"].append(torch.stack([captured[f"a{l}"].norm(dim=-1) for l in range(L)]))
            per["ac"].append(torch.stack([cos(captured[f"a{l}"], -gs[l]) for l in range(L)]))
            per["mn"].append(torch.stack([captured[f"m{l}"].norm(dim=-1) for l in range(L)]))
            per["mc"].append(torch.stack([cos(captured[f"m{l}"], -gs[l]) for l in range(L)]))
            # Logit lens: final LayerNorm + tied unembedding applied to every h^l.
            lens = []
            for h in hs:
                logits = model.lm_head(model.transformer.ln_f(h))
                lens.append(F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1), reduction="sum"))
            per["lens"].append(torch.stack(lens))
            # Attention probability on the first key, for queries t >= 1: (L, B, H, T-1).
            per["attn0"].append(torch.stack([a[:, :, 1:, 0] for a in out.attentions]))
            per["absmean"].append(torch.stack([h.abs().sum() for h in hs]))
            for l, h in enumerate(hs):
                a = h.abs()
                vals, idx = a.reshape(-1).topk(TOPK)
                for v, i in zip(vals.tolist(), idx.tolist()):
                    b, rem = divmod(i, T * D)
                    t, d = divmod(rem, D)
                    top[l].append((v, d, t, start + b))
    for hk in hooks:
        hk.remove()

    hn = torch.cat(per["hn"], dim=1)   # (L+1, N, T)
    gn = torch.cat(per["gn"], dim=1)
    cat = lambda k: torch.cat(per[k], dim=1)
    res = {
        "windows": N, "seqLen": T, "layers": L + 1,
        "loss": sum_ce / (N * T),
        "hiddenNorm": {"mean": hn.mean(1).tolist(), "std": hn.std(1, correction=0).tolist()},
        "gradNorm": {"mean": gn.mean(1).tolist(), "std": gn.std(1, correction=0).tolist()},
        "update": {"normMean": cat("un").mean(1).tolist(), "cosMean": cat("uc").mean(1).tolist()},
        "updateParts": {
            "attnNormMean": cat("an").mean(1).tolist(), "attnCosMean": cat("ac").mean(1).tolist(),
            "mlpNormMean": cat("mn").mean(1).tolist(), "mlpCosMean": cat("mc").mean(1).tolist(),
        },
        "logitLens": {"loss": (torch.stack(per["lens"]).sum(0) / (N * T)).tolist()},
        "paramGradNorm": [
            math.sqrt(sum(((g / (N * T)) ** 2).sum().item() for g in pgrad[l])) for l in range(L)
        ],
    }
    hmean = hn.mean(1).numpy()
    res["normFit"] = [fit_power_law(hmean[l]) for l in range(L + 1)]
    res["firstTokenRatio"] = [float(hmean[l][0] / hmean[l][1:].mean()) for l in range(L + 1)]
    attn0 = torch.cat(per["attn0"], dim=1)  # (L, N, H, T-1)
    res["attnFirstToken"] = {"mean": attn0.mean(dim=(1, 3)).tolist()}
    massive = []
    for l in range(L + 1):
        best = sorted(top[l], key=lambda r: -r[0])[:TOPK]
        massive.append({
            "values": [r[0] for r in best], "dims": [r[1] for r in best],
            "positions": [r[2] for r in best], "windows": [r[3] for r in best],
        })
    absmean = (torch.stack(per["absmean"]).sum(0) / (N * T * D)).tolist()
    res["massive"] = {"k": TOPK, "layers": massive, "meanAbs": absmean}

    # Token-frequency buckets over the analysed input tokens.
    counts = np.bincount(ids_all.reshape(-1).numpy(), minlength=VOCAB)
    order = sorted(range(VOCAB), key=lambda v: (-counts[v], v))
    total = counts.sum()
    bucket_of = np.full(VOCAB, -1)
    before = 0
    for v in order:
        if counts[v] == 0:
            break
        bucket_of[v] = min(BUCKETS - 1, (before * BUCKETS) // total)
        before += counts[v]
    tb = torch.tensor(bucket_of)[ids_all]  # (N, T)
    sums = np.zeros((L + 1, BUCKETS))
    occ = np.zeros(BUCKETS)
    for k in range(BUCKETS):
        mask = (tb == k)
        mask[:, 0] = False
        occ[k] = mask.sum().item()
        for l in range(L + 1):
            sums[l, k] = hn[l][mask].sum().item()
    res["freqBuckets"] = {
        "buckets": BUCKETS,
        "types": [int((bucket_of == k).sum()) for k in range(BUCKETS)],
        "occurrences": occ.astype(int).tolist(),
        "hiddenNormMean": [[(sums[l, k] / occ[k]) if occ[k] > 0 else None for k in range(BUCKETS)] for l in range(L + 1)],
    }
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "model"), exist_ok=True)
    model = make_model(args.seed)
    model.save_pretrained(os.path.join(args.out, "model"), safe_serialization=True)
    tokens = make_tokens(args.seed)
    tokens.tofile(os.path.join(args.out, "tokens.bin"))
    # Reload what was saved, so the reference uses exactly the float32 weights on disk.
    saved = GPT2LMHeadModel.from_pretrained(os.path.join(args.out, "model"), attn_implementation="eager")
    res = analyse(saved, tokens)
    res["settings"] = {"seqLen": SEQ_LEN, "batchSize": BATCH, "maxWindows": MAX_WINDOWS, "topK": TOPK,
                       "freqBuckets": BUCKETS, "tokensInFile": int(len(tokens))}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
