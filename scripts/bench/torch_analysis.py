"""What a PyTorch user would write to get the design fields of `innerloop analyze`
(docs/analysis.md, "Fields fixed by the design") from transformers' GPT-2: forward hooks that
keep the residual stream h^0 ... h^L with retain_grad, one backward per batch of windows (the
parameters' .grad accumulate over batches for paramGradNorm), and the logit lens under no_grad.
`innerloop bench` runs it beside `innerloop analyze` on the same model folder and token file.

    python3 torch_analysis.py make-model SPEC.json   # a random GPT-2 (seeded) saved as a HF folder
    python3 torch_analysis.py analyze SPEC.json      # fields, timing and peak RSS as one JSON line

SPEC: {"modelDir", "tokensFile" (little-endian uint16 ids), "seqLen", "batchSize", "maxWindows",
"threads" (0: torch's default), and for make-model "model": {nLayer, nEmbd, nHead, vocabSize,
nPositions}, "seed"}.
"""
import json
import math
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def make_model(spec):
    from transformers import GPT2Config, GPT2LMHeadModel

    m = spec["model"]
    torch.manual_seed(spec["seed"])
    cfg = GPT2Config(n_layer=m["nLayer"], n_embd=m["nEmbd"], n_head=m["nHead"], vocab_size=m["vocabSize"],
                     n_positions=m["nPositions"], bos_token_id=m["vocabSize"] - 1, eos_token_id=m["vocabSize"] - 1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    GPT2LMHeadModel(cfg).save_pretrained(spec["modelDir"], safe_serialization=True)
    print(json.dumps({"ok": True}))


def cos(a, b):
    num = (a * b).sum(-1)
    den = a.norm(dim=-1) * b.norm(dim=-1)
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))


def analyze(spec):
    from transformers import GPT2LMHeadModel

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    t_load = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(spec["modelDir"], dtype=torch.float32).eval()
    load_s = time.perf_counter() - t_load

    t0, c0 = time.perf_counter(), time.process_time()
    T, B = spec["seqLen"], spec["batchSize"]
    tokens = np.fromfile(spec["tokensFile"], dtype="<u2")
    N = len(tokens) // (T + 1)
    if spec.get("maxWindows"):
        N = min(N, spec["maxWindows"])
    windows = torch.from_numpy(tokens[: N * (T + 1)].astype(np.int64)).view(N, T + 1)
    blocks, ln_f, lm_head = model.transformer.h, model.transformer.ln_f, model.lm_head
    L, V = len(blocks), model.config.vocab_size

    hs = [None] * (L + 1)

    def keep_input(mod, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        h.retain_grad()
        hs[0] = h

    def keep_output(l):
        def hook(mod, args, out):
            h = out[0] if isinstance(out, tuple) else out
            h.retain_grad()
            hs[l + 1] = h
        return hook

    hooks = [blocks[0].register_forward_pre_hook(keep_input, with_kwargs=True)]
    hooks += [blk.register_forward_hook(keep_output(l)) for l, blk in enumerate(blocks)]

    # Per-window norms and cosines, [layer, window, position], reduced at the end in float64.
    hn = torch.zeros(L + 1, N, T, dtype=torch.float64)
    gn = torch.zeros(L + 1, N, T, dtype=torch.float64)
    un = torch.zeros(L, N, T, dtype=torch.float64)
    uc = torch.zeros(L, N, T, dtype=torch.float64)
    lens = [0.0] * (L + 1)
    sum_ce = 0.0
    for w0 in range(0, N, B):
        w1 = min(N, w0 + B)
        ids, tgt = windows[w0:w1, :-1], windows[w0:w1, 1:].reshape(-1)
        out = model(input_ids=ids, use_cache=False)
        ce = F.cross_entropy(out.logits.view(-1, V), tgt, reduction="sum")
        ce.backward()  # parameters' .grad accumulate the sum over batches
        with torch.no_grad():
            h = torch.stack(hs)
            g = torch.stack([x.grad for x in hs])
            hn[:, w0:w1] = h.norm(dim=-1)
            gn[:, w0:w1] = g.norm(dim=-1)
            u = h[1:] - h[:-1]
            un[:, w0:w1] = u.norm(dim=-1)
            uc[:, w0:w1] = cos(u, -g[:-1])
            for l in range(L):
                lens[l] += F.cross_entropy(lm_head(ln_f(h[l])).view(-1, V), tgt, reduction="sum").item()
            lens[L] += ce.item()
            sum_ce += ce.item()
        del out, ce, h, g, u
        hs[:] = [None] * (L + 1)
    for hk in hooks:
        hk.remove()

    n_targets = N * T
    with torch.no_grad():
        pgn = [math.sqrt(sum(((p.grad.double() / n_targets) ** 2).sum().item() for p in blk.parameters())) for blk in blocks]
    fields = {
        "windows": N, "seqLen": T, "layers": L + 1,
        "loss": sum_ce / n_targets,
        "hiddenNorm": {"mean": hn.mean(1).tolist(), "std": hn.std(1, correction=0).tolist()},
        "gradNorm": {"mean": gn.mean(1).tolist()},
        "update": {"normMean": un.mean(1).tolist(), "cosMean": uc.mean(1).tolist()},
        "logitLens": {"loss": [x / n_targets for x in lens]},
        "paramGradNorm": pgn,
    }
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"side": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "seconds": seconds, "cpuSeconds": cpu_seconds, "loadSeconds": load_s,
                      "maxRssKB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "fields": fields}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make-model", "analyze"):
        sys.exit("usage: torch_analysis.py make-model|analyze SPEC.json")
    spec = json.load(open(sys.argv[2]))
    (make_model if sys.argv[1] == "make-model" else analyze)(spec)
