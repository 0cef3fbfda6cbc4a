"""The analysis reference both oracle scripts use (analysis_oracle.py for GPT-2,
pretrained_make.py for the pretrained architectures): the settings, the token file, and every
analysis.json field computed with transformers' forward pass and PyTorch autograd in float64
(docs/analysis.md defines the fields).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

VOCAB = 97
SEQ_LEN, BATCH, MAX_WINDOWS, WINDOWS_IN_FILE = 13, 4, 10, 12
TOPK, BUCKETS = 8, 4


def make_tokens(seed):
    rng = np.random.default_rng(seed)
    p = 1.0 / (np.arange(VOCAB) + 1.0)
    p /= p.sum()
    n = WINDOWS_IN_FILE * (SEQ_LEN + 1) + 5
    return rng.choice(VOCAB, size=n, p=p).astype(np.uint16)



def parts(model):
    """(layers, attention part, mlp part, final norm) accessors for each architecture. The parts are
    the modules whose outputs are added to the residual stream: after the post-norms of Gemma 2/3
    and OLMo 2 (docs/analysis.md)."""
    mt = model.config.model_type
    if mt == "gpt2":
        return model.transformer.h, (lambda b: b.attn), (lambda b: b.mlp), model.transformer.ln_f
    if mt == "gpt_neox":
        return model.gpt_neox.layers, (lambda b: b.attention), (lambda b: b.mlp), model.gpt_neox.final_layer_norm
    if mt in ("gemma2", "gemma3_text", "olmo2"):
        return (model.model.layers, (lambda b: b.post_attention_layernorm), (lambda b: b.post_feedforward_layernorm),
                model.model.norm)
    return model.model.layers, (lambda b: b.self_attn), (lambda b: b.mlp), model.model.norm


def softcap(logits, config):
    """The final logit soft-cap c*tanh(z/c) of models that have one (Gemma 2), as their forward applies it."""
    c = getattr(config, "final_logit_softcapping", None)
    return logits if c is None else torch.tanh(logits / c) * c


def fit_power_law(norms):
    T = len(norms)
    if T < 3:
        return None
    x = np.log(np.arange(2, T + 1, dtype=np.float64))
    y = np.log(np.asarray(norms[1:], dtype=np.float64))
    xm, ym = x.mean(), y.mean()
    slope = ((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum()
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
    """Every analysis.json field, from transformers' forward pass and autograd (model in float64, eval)."""
    layers, attn_of, mlp_of, final_norm = parts(model)
    L, T = len(layers), SEQ_LEN
    D = model.config.hidden_size
    V = model.config.vocab_size
    N = min(MAX_WINDOWS, len(tokens) // (T + 1))
    win = torch.tensor(tokens[: N * (T + 1)].astype(np.int64)).view(N, T + 1)
    ids_all, tgt_all = win[:, :-1], win[:, 1:]
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

    hooks = [layers[0].register_forward_pre_hook(pre_hook, with_kwargs=True)]
    for l, blk in enumerate(layers):
        hooks.append(blk.register_forward_hook(post_hook(l), with_kwargs=True))
        hooks.append(attn_of(blk).register_forward_hook(part_hook(f"a{l}")))
        hooks.append(mlp_of(blk).register_forward_hook(part_hook(f"m{l}")))

    per = {k: [] for k in ["hn", "gn", "un", "uc", "an", "ac", "mn", "mc", "lens", "attn0", "absmean"]}
    top = [[] for _ in range(L + 1)]
    sum_ce = 0.0
    block_params = [list(blk.parameters()) for blk in layers]
    pgrad = [[torch.zeros_like(p) for p in ps] for ps in block_params]
    for start in range(0, N, BATCH):
        ids, tgt = ids_all[start:start + BATCH], tgt_all[start:start + BATCH]
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, output_attentions=True, use_cache=False)
        ce = F.cross_entropy(out.logits.reshape(-1, V), tgt.reshape(-1), reduction="sum")
        ce.backward()
        sum_ce += ce.item()
        for l in range(L):
            for acc, p in zip(pgrad[l], block_params[l]):
                acc += p.grad
        hs = [captured[f"h{l}"] for l in range(L + 1)]
        gs = [h.grad for h in hs]
        with torch.no_grad():
            per["hn"].append(torch.stack([h.norm(dim=-1) for h in hs]))
            per["gn"].append(torch.stack([g.norm(dim=-1) for g in gs]))
            us = [hs[l + 1] - hs[l] for l in range(L)]
            per["un"].append(torch.stack([u.norm(dim=-1) for u in us]))
            per["uc"].append(torch.stack([cos(us[l], -gs[l]) for l in range(L)]))
            per["an"].append(torch.stack([captured[f"a{l}"].norm(dim=-1) for l in range(L)]))
            per["ac"].append(torch.stack([cos(captured[f"a{l}"], -gs[l]) for l in range(L)]))
            per["mn"].append(torch.stack([captured[f"m{l}"].norm(dim=-1) for l in range(L)]))
            per["mc"].append(torch.stack([cos(captured[f"m{l}"], -gs[l]) for l in range(L)]))
            lens = []
            for h in hs:
                logits = softcap(model.get_output_embeddings()(final_norm(h)), model.config)
                lens.append(F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), reduction="sum"))
            per["lens"].append(torch.stack(lens))
            per["attn0"].append(torch.stack([a[:, :, 1:, 0] for a in out.attentions]))
            per["absmean"].append(torch.stack([h.abs().sum() for h in hs]))
            for l, h in enumerate(hs):
                vals, idx = h.abs().reshape(-1).topk(TOPK)
                for v, i in zip(vals.tolist(), idx.tolist()):
                    b, rem = divmod(i, T * D)
                    t, d = divmod(rem, D)
                    top[l].append((v, d, t, start + b))
    for hk in hooks:
        hk.remove()

    hn = torch.cat(per["hn"], dim=1)
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
        "paramGradNorm": [math.sqrt(sum(((g / (N * T)) ** 2).sum().item() for g in pgrad[l])) for l in range(L)],
    }
    hmean = hn.mean(1).numpy()
    res["normFit"] = [fit_power_law(hmean[l]) for l in range(L + 1)]
    res["firstTokenRatio"] = [float(hmean[l][0] / hmean[l][1:].mean()) for l in range(L + 1)]
    attn0 = torch.cat(per["attn0"], dim=1)
    res["attnFirstToken"] = {"mean": attn0.mean(dim=(1, 3)).tolist()}
    massive = []
    for l in range(L + 1):
        best = sorted(top[l], key=lambda r: -r[0])[:TOPK]
        massive.append({"values": [r[0] for r in best], "dims": [r[1] for r in best],
                        "positions": [r[2] for r in best], "windows": [r[3] for r in best]})
    res["massive"] = {"k": TOPK, "layers": massive,
                      "meanAbs": (torch.stack(per["absmean"]).sum(0) / (N * T * D)).tolist()}
    counts = np.bincount(ids_all.reshape(-1).numpy(), minlength=V)
    order = sorted(range(V), key=lambda v: (-counts[v], v))
    total = counts.sum()
    bucket_of = np.full(V, -1)
    before = 0
    for v in order:
        if counts[v] == 0:
            break
        bucket_of[v] = min(BUCKETS - 1, (before * BUCKETS) // total)
        before += counts[v]
    tb = torch.tensor(bucket_of)[ids_all]
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


# ------------------------------------------------------------------ fixtures
