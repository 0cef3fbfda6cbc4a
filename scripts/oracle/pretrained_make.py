#!/usr/bin/env python3
"""Reference checkpoints and values for loading pre-trained Hugging Face models.

Writes random tiny causal LMs with transformers' own save_pretrained (so the
files, names and config fields are exactly what users download), then computes,
from the weights as saved and in float64:

  - logits for a fixed batch of ids (expected.json "logits"),
  - every analysis.json field (docs/analysis.md) with transformers + autograd,
    by the same definitions as scripts/oracle/analysis_oracle.py but for any
    architecture (expected.json "analysis").

Models (each in OUT/<name>/model, expected values in OUT/<name>/expected.json):
  gpt2          transformers-5 config, float32
  neox-par      GPT-NeoX, parallel residual, partial rotary 0.25, rope_parameters
                (transformers-5 style), float32
  neox-seq      GPT-NeoX, sequential residual, config rewritten in
                transformers-4 style (rotary_pct, rotary_emb_base), bfloat16
                weights (the reference upcasts them)
  llama         LLaMA, grouped KV heads (4 q / 2 kv), rope llama3 scaling,
                untied head, sharded checkpoint (model.safetensors.index.json)
  llama-v4      LLaMA, transformers-4 style config (rope_theta + rope_scaling
                linear), tied embeddings, attention and MLP biases, float16
  mistral       Mistral with a sliding window shorter than the sequence (logits only)
  qwen2         Qwen2 (q/k/v biases, no o_proj bias; logits only)
  gpt2-gelu, gpt2-relu, gpt2-silu
                GPT-2 with the other activation_function values transformers
                accepts (logits only)
  qwen2-swa     Qwen2 with use_sliding_window and max_window_layers 0: every layer
                slides (window 4; logits only)
  qwen3         Qwen3: q/k RMSNorm per head, head_dim != hidden/heads, attention
                biases, layer 1 sliding (window 4 < the analysis windows' 13)
  gemma2        Gemma 2: scaled embedding, (1+w) norms before and after attention
                and MLP, GeGLU, query_pre_attn_scalar, attention and final logit
                soft-capping (small caps so they bite), sliding layers 0 and 2
  gemma3        Gemma 3 text: q/k norm, local (10,000) and global (linear-scaled)
                RoPE bases, layer_types [sliding, sliding, full], window 5
  gemma3-v4     Gemma 3 text with a transformers-4 config (rope_theta, rope_scaling,
                rope_local_base_freq, sliding_window_pattern), bfloat16 weights
  phi3          Phi-3: fused qkv_proj and gate_up_proj, partial rotary 0.5,
                sliding window 6, untied head
  olmo2         OLMo 2: norms after attention and MLP, q/k norm over all heads,
                attention biases, bfloat16 weights

Also OUT/tokens.bin (uint16 ids for the analysis windows) and tokenizer
fixtures: OUT/tokenizers/{bytelevel,llama}/tokenizer.json with expected
encodings made by the `tokenizers` library.

Usage: python3 scripts/oracle/pretrained_make.py --out test/fixtures/pretrained [--only NAME,...]
(--only remakes just those models and leaves the others and the tokenizers as they are)
"""
import argparse
import json
import os
import shutil

import torch
import transformers
from transformers import (AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig, GPT2Config, GPTNeoXConfig,
                          LlamaConfig, MistralConfig, Olmo2Config, Phi3Config, Qwen2Config, Qwen3Config)

from analysis_reference import (BATCH, BUCKETS, MAX_WINDOWS, SEQ_LEN, TOPK, VOCAB, analyse,
                                make_tokens)

LOGIT_IDS_SHAPE = (2, 11)


def perturb(model, seed):
    """Random weights with norms and biases away from 1/0, so that every parameter matters."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda p: torch.randn(p.shape, generator=g, dtype=p.dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm = any(k in name for k in ("ln_", "layernorm", "layer_norm", ".norm.", "norm.weight", "norm.bias"))
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * rnd(p))
            elif is_norm and name.endswith("bias"):
                p.copy_(0.2 * rnd(p))
            elif "embed" in name or "wte" in name or "wpe" in name:
                p.copy_(0.3 * rnd(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * rnd(p))
            else:
                p.copy_(0.15 * rnd(p))
        emb = model.get_input_embeddings().weight
        emb[:, 7] += 2.0  # a massive-activation style outlier dimension


# ------------------------------------------------------------------ architectures

def specs():
    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=None)
    return [
        ("gpt2", GPT2Config(n_positions=32, n_embd=36, n_layer=3, n_head=3, activation_function="gelu_new",
                            **common), {"dtype": torch.float32}),
        ("neox-par", GPTNeoXConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=112,
                                   max_position_embeddings=32, use_parallel_residual=True,
                                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                    "partial_rotary_factor": 0.25},
                                   hidden_act="gelu", tie_word_embeddings=False, **common), {"dtype": torch.float32}),
        ("neox-seq", GPTNeoXConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                                   max_position_embeddings=32, use_parallel_residual=False,
                                   rope_parameters={"rope_type": "default", "rope_theta": 1000.0,
                                                    "partial_rotary_factor": 0.5},
                                   hidden_act="gelu_new", tie_word_embeddings=False, **common),
         {"dtype": torch.bfloat16, "v4": "neox"}),
        ("llama", LlamaConfig(hidden_size=48, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=80, max_position_embeddings=64, rms_norm_eps=1e-5,
                              rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 8},
                              tie_word_embeddings=False, **common), {"dtype": torch.float32, "shard": "100KB"}),
        ("llama-v4", LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                 intermediate_size=72, max_position_embeddings=32, rms_norm_eps=1e-6,
                                 rope_parameters={"rope_type": "linear", "rope_theta": 5000.0, "factor": 2.0},
                                 attention_bias=True, mlp_bias=True, tie_word_embeddings=True, **common),
         {"dtype": torch.float16, "v4": "llama"}),
        ("mistral", MistralConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                  intermediate_size=64, max_position_embeddings=32, sliding_window=5,
                                  tie_word_embeddings=False, **common), {"dtype": torch.float32, "logitsOnly": True}),
        ("qwen2", Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=64, max_position_embeddings=32, tie_word_embeddings=True,
                              **common), {"dtype": torch.float32, "logitsOnly": True}),
        ("qwen2-swa", Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                  intermediate_size=64, max_position_embeddings=32, use_sliding_window=True,
                                  sliding_window=4, max_window_layers=0, tie_word_embeddings=False, **common),
         {"dtype": torch.float32, "logitsOnly": True}),
        ("qwen3", Qwen3Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              head_dim=12, intermediate_size=64, max_position_embeddings=32, attention_bias=True,
                              use_sliding_window=True, sliding_window=4, max_window_layers=1,
                              rope_parameters={"rope_type": "default", "rope_theta": 1000.0},
                              tie_word_embeddings=False, **common), {"dtype": torch.float32}),
        ("gemma2", Gemma2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                head_dim=16, intermediate_size=48, max_position_embeddings=32,
                                query_pre_attn_scalar=12, sliding_window=4, attn_logit_softcapping=2.0,
                                final_logit_softcapping=5.0, hidden_activation="gelu_pytorch_tanh",
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                                **common), {"dtype": torch.float32}),
        ("gemma3", Gemma3TextConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
                                    head_dim=8, intermediate_size=48, max_position_embeddings=32,
                                    query_pre_attn_scalar=8, sliding_window=5,
                                    layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                    rope_parameters={"full_attention": {"rope_type": "linear", "rope_theta": 1e6,
                                                                        "factor": 2.0},
                                                     "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}},
                                    **common), {"dtype": torch.float32}),
        ("gemma3-v4", Gemma3TextConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                       num_key_value_heads=2, head_dim=8, intermediate_size=48,
                                       max_position_embeddings=32, query_pre_attn_scalar=16, sliding_window=3,
                                       layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                       rope_parameters={"full_attention": {"rope_type": "linear", "rope_theta": 5e5,
                                                                           "factor": 4.0},
                                                        "sliding_attention": {"rope_type": "default",
                                                                              "rope_theta": 1e3}},
                                       **common), {"dtype": torch.bfloat16, "v4": "gemma3"}),
        ("phi3", Phi3Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=48, max_position_embeddings=32, sliding_window=6,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                             "partial_rotary_factor": 0.5},
                            tie_word_embeddings=False, **common), {"dtype": torch.float32}),
        ("olmo2", Olmo2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=48, max_position_embeddings=32, attention_bias=True,
                              tie_word_embeddings=False, **common), {"dtype": torch.bfloat16}),
        *[(f"gpt2-{act}", GPT2Config(n_positions=32, n_embd=24, n_layer=2, n_head=2, activation_function=act,
                                       **common), {"dtype": torch.float32, "logitsOnly": True})
          for act in ("gelu", "relu", "silu")],
    ]


def rewrite_v4(model_dir, kind):
    """Rewrite config.json the way transformers 4.x wrote it (no rope_parameters)."""
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters")
    if kind == "gemma3":
        # 4.x: global base + scaling, the local base on its own, sliding layers by pattern (every 2nd full).
        full, local = rp["full_attention"], rp["sliding_attention"]
        cfg["rope_theta"] = full["rope_theta"]
        cfg["rope_scaling"] = {"rope_type": full["rope_type"], "factor": full["factor"]}
        cfg["rope_local_base_freq"] = local["rope_theta"]
        assert cfg.pop("layer_types") == ["sliding_attention", "full_attention", "sliding_attention"]
        cfg["sliding_window_pattern"] = 2
        cfg.pop("dtype", None)
        cfg["torch_dtype"] = "bfloat16"
        cfg["transformers_version"] = "4.50.0"
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return
    if kind == "neox":
        cfg["rotary_pct"] = rp["partial_rotary_factor"]
        cfg["rotary_emb_base"] = int(rp["rope_theta"])
        cfg["rope_scaling"] = None
    else:
        cfg["rope_theta"] = rp["rope_theta"]
        scaling = {k: v for k, v in rp.items() if k not in ("rope_theta", "rope_type")}
        cfg["rope_scaling"] = {"type": rp["rope_type"], **scaling}
    cfg.pop("dtype", None)
    cfg["torch_dtype"] = {"float16": "float16", "bfloat16": "bfloat16"}.get(str(cfg.get("torch_dtype", "")), "float16" if kind == "llama" else "bfloat16")
    cfg["transformers_version"] = "4.44.2"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def make_model(name, cfg, opts, out, seed, tokens):
    d = os.path.join(out, name)
    mdir = os.path.join(d, "model")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(mdir)
    torch.manual_seed(seed)
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(cfg)
    perturb(model, seed)
    model = model.to(opts["dtype"])
    kw = {"max_shard_size": opts["shard"]} if "shard" in opts else {}
    model.save_pretrained(mdir, safe_serialization=True, **kw)
    if "v4" in opts:
        rewrite_v4(mdir, opts["v4"])
    # The reference reads the files back with transformers (the v4 config included) and runs in float64.
    ref = AutoModelForCausalLM.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float64).eval()
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, VOCAB, LOGIT_IDS_SHAPE, generator=g)
    with torch.no_grad():
        logits = ref(input_ids=ids, use_cache=False).logits
    exp = {
        "modelType": cfg.model_type,
        "storedDtype": str(opts["dtype"]).replace("torch.", ""),
        "ids": ids.tolist(),
        "logits": logits.reshape(-1).tolist(),
        "logitsShape": list(logits.shape),
        "numParameters": sum(p.numel() for p in ref.parameters()),
    }
    if not opts.get("logitsOnly"):
        exp["analysis"] = analyse(ref, tokens)
        exp["analysis"]["settings"] = {"seqLen": SEQ_LEN, "batchSize": BATCH, "maxWindows": MAX_WINDOWS,
                                       "topK": TOPK, "freqBuckets": BUCKETS}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(name, "ok", exp["numParameters"], "parameters")


# ------------------------------------------------------------------ tokenizers

TOK_TEXT = (
    "Call me Ishmael. Some years ago - never mind how long precisely - having little or no money in my purse, "
    "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery "
    "part of the world. It is a way I have of driving off the spleen and regulating the circulation. "
    "Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul. "
)
TOK_CASES = ["Hello world", "Call me Ishmael.", "  leading and  double spaces", "naïve café — ünïcödé 東京 🙂",
             "numbers 12345 and\nnew\tlines", "", "the watery part of the world"]


def make_tokenizers(out):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    base = os.path.join(out, "tokenizers")
    shutil.rmtree(base, ignore_errors=True)
    # Byte-level BPE (GPT-2 / GPT-NeoX / LLaMA-3 kind).
    bl = Tokenizer(models.BPE())
    bl.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bl.decoder = decoders.ByteLevel()
    bl.post_processor = processors.ByteLevel(trim_offsets=False)
    bl.train_from_iterator([TOK_TEXT] * 4, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # LLaMA-1/2 kind: SentencePiece BPE with byte fallback, '▁' for spaces, a BOS token added.
    sp = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    sp.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    sp.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    sp.train_from_iterator([TOK_TEXT] * 4, trainers.BpeTrainer(vocab_size=164, special_tokens=["<unk>", "<s>", "</s>"]))
    # As in LLaMA's vocabulary, the 256 byte tokens <0x00>..<0xFF> are ordinary vocabulary entries
    # (ids 3..258), not special tokens, so that byte fallback decodes them.
    js = json.loads(sp.to_str())
    vocab = js["model"]["vocab"]
    shifted = {t: (i if i < 3 else i + 256) for t, i in vocab.items()}
    for b in range(256):
        shifted[f"<0x{b:02X}>"] = 3 + b
    js["model"]["vocab"] = shifted
    sp = Tokenizer.from_str(json.dumps(js))
    sp.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", sp.token_to_id("<s>"))])
    for name, tok, cfg in [("bytelevel", bl, {"tokenizer_class": "GPT2TokenizerFast", "eos_token": "<|endoftext|>",
                                               "bos_token": "<|endoftext|>", "add_prefix_space": False}),
                           ("llama", sp, {"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>",
                                          "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                                          "legacy": False})]:
        d = os.path.join(base, name)
        os.makedirs(d)
        tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        cases = []
        for text in TOK_CASES:
            enc = tok.encode(text)
            cases.append({"text": text, "ids": enc.ids, "decoded": tok.decode(enc.ids, skip_special_tokens=True)})
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump({"vocabSize": tok.get_vocab_size(), "cases": cases}, f, ensure_ascii=False, indent=1)
        print("tokenizer", name, tok.get_vocab_size())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=4321)
    ap.add_argument("--only", default=None, help="comma-separated model names to (re)make")
    args = ap.parse_args()
    only = None if args.only is None else set(args.only.split(","))
    os.makedirs(args.out, exist_ok=True)
    tokens = make_tokens(args.seed)
    tokens.tofile(os.path.join(args.out, "tokens.bin"))
    for i, (name, cfg, opts) in enumerate(specs()):
        if only is None or name in only:
            make_model(name, cfg, opts, args.out, args.seed + 10 * i, tokens)
    if only is None:
        make_tokenizers(args.out)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("Made by `python3 scripts/oracle/pretrained_make.py --out test/fixtures/pretrained` "
                f"(transformers {transformers.__version__}, torch {torch.__version__}). Do not edit by hand.\n")


if __name__ == "__main__":
    main()
